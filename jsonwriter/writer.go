package jsonwriter

import (
	"io"
	"strconv"
)

// Unbounded is the limit that lets a Writer grow its buffer like append.
const Unbounded = -1

// maxDepth is the deepest nesting a Writer tracks commas for.
const maxDepth = 64

// Writer appends JSON to a buffer and never grows it past a limit.
//
// Once a write does not fit, the Writer is short: that write and every later
// one are dropped, and Err reports io.ErrShortBuffer. Callers check Err once
// at the end, so output is either complete or reported as failed, never
// silently cut.
//
// The structural methods (BeginArray, Key, String, ...) insert commas
// themselves. Raw and the other low-level methods write exactly what they are
// given.
//
// The zero Writer is unbounded and ready to use. A Writer must not be copied
// after first use.
type Writer struct {
	buf     []byte
	limit   int // the largest len(buf) allowed, when bounded
	bounded bool
	short   bool
	depth   int
	// comma has bit d set when the container at depth d already holds a value;
	// afterKey is set between a Key and its value.
	comma    uint64
	afterKey bool
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

// Mark records the Writer's state, for Rewind.
type Mark struct {
	n, depth int
	comma    uint64
	afterKey bool
}

// Mark returns the current state.
func (w *Writer) Mark() Mark {
	return Mark{n: len(w.buf), depth: w.depth, comma: w.comma, afterKey: w.afterKey}
}

// Rewind returns to a Mark: the buffer is cut back, the nesting restored and
// the short state cleared, so that a failed attempt can be written again.
func (w *Writer) Rewind(m Mark) {
	w.buf = w.buf[:m.n]
	w.depth, w.comma, w.afterKey = m.depth, m.comma, m.afterKey
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

// QuotedString appends s as a JSON string with no comma handling.
func (w *Writer) QuotedString(s string) {
	if w.room(EscapedLen(s) + 2) {
		w.buf = AppendString(w.buf, s)
	}
}

// sep writes the comma that separates this value from the previous one.
func (w *Writer) sep() {
	if w.afterKey {
		w.afterKey = false
		return
	}
	if w.depth == 0 || w.depth > maxDepth {
		return
	}
	bit := uint64(1) << (w.depth - 1)
	if w.comma&bit != 0 {
		w.Byte(',')
	}
	w.comma |= bit
}

func (w *Writer) open(c byte) {
	w.sep()
	w.Byte(c)
	w.depth++
	if w.depth <= maxDepth {
		w.comma &^= uint64(1) << (w.depth - 1)
	}
}

func (w *Writer) close(c byte) {
	if w.depth > 0 {
		w.depth--
	}
	w.Byte(c)
}

// BeginArray writes '['.
func (w *Writer) BeginArray() { w.open('[') }

// EndArray writes ']'.
func (w *Writer) EndArray() { w.close(']') }

// BeginObject writes '{'.
func (w *Writer) BeginObject() { w.open('{') }

// EndObject writes '}'.
func (w *Writer) EndObject() { w.close('}') }

// Key writes an object key and the colon after it.
func (w *Writer) Key(k string) {
	w.sep()
	w.QuotedString(k)
	w.Byte(':')
	w.afterKey = true
}

// RawKey writes an object key that is already a quoted JSON string.
func (w *Writer) RawKey(quoted []byte) {
	w.sep()
	w.Raw(quoted)
	w.Byte(':')
	w.afterKey = true
}

// String writes s as a JSON string value.
func (w *Writer) String(s string) {
	w.sep()
	w.QuotedString(s)
}

// RawValue writes a value that is already valid JSON.
func (w *Writer) RawValue(v []byte) {
	w.sep()
	w.Raw(v)
}

// Uint writes an unsigned integer value.
func (w *Writer) Uint(v uint64) {
	w.sep()
	var tmp [20]byte
	w.Raw(strconv.AppendUint(tmp[:0], v, 10))
}

// Int writes a signed integer value.
func (w *Writer) Int(v int64) {
	w.sep()
	var tmp [20]byte
	w.Raw(strconv.AppendInt(tmp[:0], v, 10))
}

// Bool writes true or false.
func (w *Writer) Bool(v bool) {
	w.sep()
	if v {
		w.RawString("true")
	} else {
		w.RawString("false")
	}
}

// Null writes null.
func (w *Writer) Null() {
	w.sep()
	w.RawString("null")
}
