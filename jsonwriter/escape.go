// Package jsonwriter appends JSON to byte slices without allocating.
//
// The Append functions follow strconv's style: they append to dst and return
// the extended slice. Writer adds a bound, so that output can go into a
// caller's fixed buffer without the silent reallocation of append.
//
// The package knows JSON and nothing else. It holds no global mutable state;
// every function may be called from any number of goroutines, and a Writer
// may be used by one goroutine at a time.
package jsonwriter

import (
	"unicode/utf8"
	"unsafe"
)

const hex = "0123456789abcdef"

// safe[c] is true for ASCII bytes that appear unchanged inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s to dst as a quoted JSON string.
//
// It escapes quotes, backslashes and control characters, and also U+2028 and
// U+2029 so that the output is safe inside JavaScript source. Invalid UTF-8
// bytes become U+FFFD, as in encoding/json.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// AppendStringBytes is AppendString for a byte slice.
func AppendStringBytes(dst []byte, s []byte) []byte {
	return AppendString(dst, b2s(s))
}

// AppendEscaped appends the escaped contents of s without the quotes.
func AppendEscaped(dst []byte, s string) []byte {
	return appendEscaped(dst, s)
}

// b2s views b as a string without copying; the string must not outlive a
// change to b.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendASCIIEscape(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

func appendASCIIEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}

// EscapedLen returns the length of AppendEscaped's output for s.
func EscapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case safe[c]:
				n++
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			default:
				n += 6
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// unsafeByte returns a nonzero word if any byte of x is a quote, a
// backslash, a control character or not ASCII.
func unsafeByte(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x - lsb*0x20) | x) & msb
}

// NeedsEscape reports whether AppendEscaped would change s: false means s is
// valid UTF-8 that can stand between quotes as it is.
func NeedsEscape(s string) bool {
	// Eight bytes at a time while they are all safe ASCII; the loop below
	// decides from the first word that holds anything else. This halves the
	// time for a 36-byte UUID key (BenchmarkNeedsEscapeUUID, AMD EPYC).
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if unsafeByte(x) != 0 {
			break
		}
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !safe[c] {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return true
		}
		i += size
	}
	return false
}
