package jsonwriter

import "io"

// Unbounded is the limit that lets a Writer grow its buffer like append.
const Unbounded = -1

// Writer appends JSON to a buffer and never grows it past a limit.
//
// It writes exactly what it is given: the caller places brackets, commas
// and keys, and QuotedString quotes and escapes a string. Extend hands out
// bytes to fill in place, for callers that write fixed parts themselves.
//
// Once a write does not fit, the Writer is short: that write and every later
// one are dropped, and Err reports io.ErrShortBuffer. Callers check Err once
// at the end, so output is either complete or reported as failed, never
// silently cut. Mark and Rewind let a caller discard a failed attempt and
// write it again.
//
// The zero Writer is unbounded and ready to use. A Writer must not be copied
// after first use, nor used by two goroutines at once.
type Writer struct {
	buf     []byte
	limit   int // the largest len(buf) allowed, when bounded
	bounded bool
	short   bool
}

// Reset makes w append to dst, never past limit bytes in total; Unbounded
// lets it grow. A limit of cap(dst) or less guarantees that dst's array is
// never reallocated.
func (w *Writer) Reset(dst []byte, limit int) {
	*w = Writer{buf: dst, limit: limit, bounded: limit >= 0}
}

// Bytes returns the buffer with everything written so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the length of the buffer.
func (w *Writer) Len() int { return len(w.buf) }

// Err returns io.ErrShortBuffer if a write did not fit, or nil.
func (w *Writer) Err() error {
	if w.short {
		return io.ErrShortBuffer
	}
	return nil
}

// Mark records how much a Writer holds, for Rewind.
type Mark struct{ n int }

// Mark returns the current position.
func (w *Writer) Mark() Mark { return Mark{n: len(w.buf)} }

// Rewind returns to a Mark taken from w since its last Reset: the buffer is
// cut back to it and the short state cleared, so that a failed attempt can
// be written again.
func (w *Writer) Rewind(m Mark) {
	w.buf = w.buf[:m.n]
	w.short = false
}

// room reports whether n more bytes fit, marking w short if not.
func (w *Writer) room(n int) bool {
	if w.short {
		return false
	}
	if w.bounded && len(w.buf)+n > w.limit {
		w.short = true
		return false
	}
	return true
}

// Extend grows the buffer by n bytes and returns them for the caller to fill,
// or nil if they do not fit.
func (w *Writer) Extend(n int) []byte {
	if !w.room(n) {
		return nil
	}
	l := len(w.buf)
	if cap(w.buf)-l < n {
		w.buf = append(w.buf[:cap(w.buf)], make([]byte, l+n-cap(w.buf))...)
	}
	w.buf = w.buf[:l+n]
	return w.buf[l:]
}

// Byte appends one raw byte.
func (w *Writer) Byte(c byte) {
	if w.room(1) {
		w.buf = append(w.buf, c)
	}
}

// Raw appends p unchanged.
func (w *Writer) Raw(p []byte) {
	if w.room(len(p)) {
		w.buf = append(w.buf, p...)
	}
}

// RawString appends s unchanged.
func (w *Writer) RawString(s string) {
	if w.room(len(s)) {
		w.buf = append(w.buf, s...)
	}
}

// QuotedString appends s as a JSON string, quoted and escaped as
// AppendString does.
func (w *Writer) QuotedString(s string) {
	if w.room(EscapedLen(s) + 2) {
		w.buf = AppendString(w.buf, s)
	}
}
