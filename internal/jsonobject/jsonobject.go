// Package jsonobject checks that bytes hold exactly one JSON object that is
// safe to store and to embed in other JSON as it is.
//
// Check is stricter than encoding/json.Valid: it rejects invalid UTF-8,
// escaped lone surrogates, raw control characters, nesting deeper than
// MaxDepth, and objects that repeat a key (compared after unescaping).
// It allocates nothing, holds no state, and is safe for concurrent use.
package jsonobject

import (
	"errors"
	"unicode/utf8"
)

// Limits on what Check accepts.
const (
	MaxDepth = 32 // deepest nesting of objects and arrays
	MaxKeys  = 64 // keys held by all open objects at once
)

// Errors returned by Check.
var (
	ErrNotObject    = errors.New("jsonobject: top-level value is not an object")
	ErrSyntax       = errors.New("jsonobject: invalid JSON")
	ErrTrailingData = errors.New("jsonobject: data after the object")
	ErrUTF8         = errors.New("jsonobject: invalid UTF-8 or lone surrogate")
	ErrTooDeep      = errors.New("jsonobject: nested too deeply")
	ErrTooManyKeys  = errors.New("jsonobject: too many keys")
	ErrDuplicateKey = errors.New("jsonobject: duplicate key")
)

// plain marks the bytes that stand for themselves inside a string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

type keyRef struct {
	start, end int32 // the key's contents, without quotes
	hash       uint32
}

// escapedBit is set in keyRef.hash when the key holds escapes.
const escapedBit = 1 << 31

func (k keyRef) escaped() bool { return k.hash&escapedBit != 0 }

// checker's arrays live on the caller's stack; Check does not allocate.
type checker struct {
	b     []byte
	i     int
	depth int
	// inObj has bit d set when the container at depth d is an object.
	inObj uint64
	keys  []keyRef // on the caller's stack
	nkeys int
	// firstKey[d] is the index in keys of the first key of the object at depth d.
	firstKey [MaxDepth + 1]int32
}

// Check reports whether b is one JSON object, optionally surrounded by
// whitespace, and returns the bounds of the object itself.
func Check(b []byte) (start, end int, err error) {
	if start, end, ok := checkFlat(b); ok {
		return start, end, nil
	}
	return checkGeneral(b)
}

// checkGeneral is Check without the fast path.
func checkGeneral(b []byte) (start, end int, err error) {
	// Most objects hold a few keys; zeroing room for MaxKeys on every call
	// costs more than checking the rare large object twice.
	var few [8]keyRef
	c := checker{b: b, keys: few[:]}
	start, end, err = c.run()
	if err == errMoreKeys {
		return checkMany(b)
	}
	return start, end, err
}

func checkMany(b []byte) (start, end int, err error) {
	var many [MaxKeys]keyRef
	c := checker{b: b, keys: many[:]}
	return c.run()
}

// errMoreKeys asks Check to start again with room for MaxKeys keys.
var errMoreKeys = errors.New("jsonobject: more keys than the fast path holds")

func (c *checker) run() (start, end int, err error) {
	b := c.b
	c.skipWS()
	if c.i == len(b) || b[c.i] != '{' {
		return 0, 0, ErrNotObject
	}
	start = c.i
	if err := c.value(); err != nil {
		return 0, 0, err
	}
	end = c.i
	c.skipWS()
	if c.i != len(b) {
		return 0, 0, ErrTrailingData
	}
	return start, end, nil
}

func (c *checker) skipWS() {
	if c.i < len(c.b) && c.b[c.i] > ' ' {
		return
	}
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *checker) peek() (byte, bool) {
	c.skipWS()
	if c.i >= len(c.b) {
		return 0, false
	}
	return c.b[c.i], true
}

// value checks the value at c.i, iteratively, so that hostile nesting cannot
// grow the stack.
func (c *checker) value() error {
	for {
		ch, ok := c.peek()
		if !ok {
			return ErrSyntax
		}
		switch ch {
		case '{':
			if err := c.push(true); err != nil {
				return err
			}
			if ch, ok = c.peek(); ok && ch == '}' {
				c.i++
				c.pop()
				break
			}
			if err := c.key(); err != nil {
				return err
			}
			continue // the member's value
		case '[':
			if err := c.push(false); err != nil {
				return err
			}
			if ch, ok = c.peek(); ok && ch == ']' {
				c.i++
				c.pop()
				break
			}
			continue // the first element
		case '"':
			if _, _, err := c.str(); err != nil {
				return err
			}
		case 't':
			if err := c.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := c.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := c.literal("null"); err != nil {
				return err
			}
		default:
			if err := c.number(); err != nil {
				return err
			}
		}
		// A value is complete: close containers or move to the next member.
		for {
			if c.depth == 0 {
				return nil
			}
			ch, ok := c.peek()
			if !ok {
				return ErrSyntax
			}
			obj := c.inObj&(1<<(c.depth-1)) != 0
			switch {
			case ch == ',':
				c.i++
				if obj {
					if err := c.key(); err != nil {
						return err
					}
				}
			case ch == '}' && obj, ch == ']' && !obj:
				c.i++
				c.pop()
				continue
			default:
				return ErrSyntax
			}
			break
		}
	}
}

func (c *checker) push(obj bool) error {
	if c.depth == MaxDepth {
		return ErrTooDeep
	}
	c.i++
	c.depth++
	if obj {
		c.inObj |= 1 << (c.depth - 1)
		c.firstKey[c.depth] = int32(c.nkeys)
	} else {
		c.inObj &^= 1 << (c.depth - 1)
	}
	return nil
}

func (c *checker) pop() {
	if c.inObj&(1<<(c.depth-1)) != 0 {
		c.nkeys = int(c.firstKey[c.depth])
	}
	c.depth--
}

// key checks an object key and the colon after it, and rejects a key that
// the same object already holds.
func (c *checker) key() error {
	if ch, ok := c.peek(); !ok || ch != '"' {
		return ErrSyntax
	}
	start, escaped, err := c.str()
	if err != nil {
		return err
	}
	k := keyRef{start: int32(start), end: int32(c.i - 1)}
	if escaped {
		k.hash = escapedBit
	}
	k.hash |= c.hashKey(k)
	for j := int(c.firstKey[c.depth]); j < c.nkeys; j++ {
		if (c.keys[j].hash^k.hash)&^escapedBit == 0 && c.sameKey(c.keys[j], k) {
			return ErrDuplicateKey
		}
	}
	if c.nkeys == len(c.keys) {
		if len(c.keys) < MaxKeys {
			return errMoreKeys
		}
		return ErrTooManyKeys
	}
	c.keys[c.nkeys] = k
	c.nkeys++
	if ch, ok := c.peek(); !ok || ch != ':' {
		return ErrSyntax
	}
	c.i++
	return nil
}

// str checks the string that starts at c.i and leaves c.i after its closing
// quote. It returns where the contents start and whether they hold escapes.
func (c *checker) str() (start int, escaped bool, err error) {
	b := c.b
	i := c.i + 1
	start = i
	for {
		if i = plainRun(b, i); i == len(b) {
			break
		}
		ch := b[i]
		switch {
		case ch == '"':
			c.i = i + 1
			return start, escaped, nil
		case ch == '\\':
			escaped = true
			c.i = i
			if err := c.escape(); err != nil {
				return 0, false, err
			}
			i = c.i
		case ch < 0x20:
			return 0, false, ErrSyntax
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, ErrUTF8
			}
			i += size
		}
	}
	return 0, false, ErrSyntax
}

// escape checks the escape sequence at c.i.
func (c *checker) escape() error {
	b := c.b
	if c.i+1 >= len(b) {
		return ErrSyntax
	}
	switch b[c.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		c.i += 2
		return nil
	case 'u':
	default:
		return ErrSyntax
	}
	r, ok := hex4(b, c.i+2)
	if !ok {
		return ErrSyntax
	}
	c.i += 6
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return ErrUTF8
	case r >= 0xD800 && r <= 0xDBFF:
		if c.i+1 >= len(b) || b[c.i] != '\\' || b[c.i+1] != 'u' {
			return ErrUTF8
		}
		lo, ok := hex4(b, c.i+2)
		if !ok {
			return ErrSyntax
		}
		if lo < 0xDC00 || lo > 0xDFFF {
			return ErrUTF8
		}
		c.i += 6
	}
	return nil
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[i : i+4] {
		var v byte
		switch {
		case ch >= '0' && ch <= '9':
			v = ch - '0'
		case ch >= 'a' && ch <= 'f':
			v = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			v = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func (c *checker) literal(lit string) error {
	if len(c.b)-c.i < len(lit) || string(c.b[c.i:c.i+len(lit)]) != lit {
		return ErrSyntax
	}
	c.i += len(lit)
	return nil
}

func (c *checker) number() error {
	i := numberAt(c.b, c.i)
	if i < 0 {
		return ErrSyntax
	}
	c.i = i
	return nil
}

// keyBytes yields the unescaped bytes of a key one at a time.
type keyBytes struct {
	b        []byte
	i, end   int
	pend     [utf8.UTFMax]byte
	np, pos  int
	unescape bool
}

func (c *checker) keyReader(k keyRef) keyBytes {
	return keyBytes{b: c.b, i: int(k.start), end: int(k.end), unescape: k.escaped()}
}

func (r *keyBytes) next() (byte, bool) {
	if r.pos < r.np {
		r.pos++
		return r.pend[r.pos-1], true
	}
	if r.i >= r.end {
		return 0, false
	}
	ch := r.b[r.i]
	if !r.unescape || ch != '\\' {
		r.i++
		return ch, true
	}
	esc := r.b[r.i+1]
	r.i += 2
	var ru rune
	switch esc {
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		ru, _ = hex4(r.b, r.i)
		r.i += 4
		if ru >= 0xD800 && ru <= 0xDBFF {
			lo, _ := hex4(r.b, r.i+2)
			r.i += 6
			ru = 0x10000 + (ru-0xD800)<<10 + (lo - 0xDC00)
		}
	default: // '"', '\\', '/'
		return esc, true
	}
	r.np = utf8.EncodeRune(r.pend[:], ru)
	r.pos = 1
	return r.pend[0], true
}

// hashKey summarizes the unescaped key by its length and its first and last
// bytes: a cheap filter before an exact comparison, O(1) for keys without
// escapes.
func (c *checker) hashKey(k keyRef) uint32 {
	if !k.escaped() {
		if k.end == k.start {
			return 0
		}
		return uint32((k.end-k.start)&0x7fff)<<16 | uint32(c.b[k.start])<<8 | uint32(c.b[k.end-1])
	}
	var n int
	var first, last byte
	r := c.keyReader(k)
	for {
		ch, ok := r.next()
		if !ok {
			break
		}
		if n == 0 {
			first = ch
		}
		last = ch
		n++
	}
	if n == 0 {
		return 0
	}
	return uint32(n&0x7fff)<<16 | uint32(first)<<8 | uint32(last)
}

func (c *checker) sameKey(a, b keyRef) bool {
	if !a.escaped() && !b.escaped() {
		return string(c.b[a.start:a.end]) == string(c.b[b.start:b.end])
	}
	ra, rb := c.keyReader(a), c.keyReader(b)
	for {
		ca, oka := ra.next()
		cb, okb := rb.next()
		if oka != okb || ca != cb {
			return false
		}
		if !oka {
			return true
		}
	}
}
