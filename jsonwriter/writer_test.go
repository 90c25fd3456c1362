package jsonwriter

import (
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// writeEntry writes {"key":K,"meta":M} with every method of Writer that
// appends.
func writeEntry(w *Writer, key string, meta []byte) {
	w.Byte('{')
	w.RawString(`"key":`)
	w.QuotedString(key)
	w.RawString(`,"meta":`)
	w.Raw(meta)
	copy(w.Extend(1), "}")
}

func TestWriterWritesWhatItIsGiven(t *testing.T) {
	var w Writer
	w.Byte('[')
	writeEntry(&w, "a\"b\u2028", []byte(`{"x":1}`))
	w.Byte(',')
	writeEntry(&w, "", []byte(`{}`))
	w.Byte(']')
	want := `[{"key":"a\"b\u2028","meta":{"x":1}},{"key":"","meta":{}}]`
	if got := string(w.Bytes()); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if w.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", w.Len(), len(want))
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterResetAppendsToDst(t *testing.T) {
	var w Writer
	w.Reset([]byte("prefix:"), Unbounded)
	w.RawString("x")
	if string(w.Bytes()) != "prefix:x" {
		t.Fatalf("got %q", w.Bytes())
	}
}

func TestWriterNeverGrowsPastLimit(t *testing.T) {
	const doc = `[{"key":"0123456789","meta":{}}]`
	for limit := 0; limit <= len(doc)+1; limit++ {
		buf := make([]byte, 0, limit)
		var w Writer
		w.Reset(buf, limit)
		w.Byte('[')
		writeEntry(&w, "0123456789", []byte(`{}`))
		w.Byte(']')
		if limit < len(doc) {
			if !errors.Is(w.Err(), io.ErrShortBuffer) {
				t.Fatalf("limit %d: Err = %v, want io.ErrShortBuffer", limit, w.Err())
			}
		} else if err := w.Err(); err != nil || string(w.Bytes()) != doc {
			t.Fatalf("limit %d: got %q, %v", limit, w.Bytes(), err)
		}
		if w.Len() > limit {
			t.Fatalf("limit %d: wrote %d bytes", limit, w.Len())
		}
		if limit > 0 && &w.Bytes()[:1][0] != &buf[:1][0] {
			t.Fatalf("limit %d: buffer was reallocated", limit)
		}
	}
}

// TestWriterShortDropsLaterWrites checks that nothing is written after the
// first write that did not fit, even writes that would fit.
func TestWriterShortDropsLaterWrites(t *testing.T) {
	var w Writer
	w.Reset(make([]byte, 0, 4), 4)
	w.RawString("ab")
	w.RawString("cde") // does not fit
	w.Byte('f')        // would fit, but w is short
	if string(w.Bytes()) != "ab" || w.Err() == nil {
		t.Fatalf("got %q, %v", w.Bytes(), w.Err())
	}
}

func TestWriterRewindRecovers(t *testing.T) {
	buf := make([]byte, 0, 8)
	var w Writer
	w.Reset(buf, 8)
	w.Byte('[')
	mark := w.Mark()
	w.QuotedString("far too long for eight")
	if w.Err() == nil {
		t.Fatal("expected short buffer")
	}
	w.Rewind(mark)
	if w.Err() != nil || w.Len() != 1 {
		t.Fatalf("after Rewind: Len %d, Err %v", w.Len(), w.Err())
	}
	w.QuotedString("ok")
	w.Byte(']')
	if err := w.Err(); err != nil || string(w.Bytes()) != `["ok"]` {
		t.Fatalf("got %q, %v", w.Bytes(), err)
	}
	// Rewinding a Writer that did not run short cuts what followed the mark.
	w.Rewind(mark)
	w.Byte(']')
	if string(w.Bytes()) != `[]` {
		t.Fatalf("got %q", w.Bytes())
	}
}

func TestWriterExtend(t *testing.T) {
	var w Writer
	copy(w.Extend(3), "abc")
	copy(w.Extend(2), "de")
	if string(w.Bytes()) != "abcde" {
		t.Fatalf("got %q", w.Bytes())
	}
	if len(w.Extend(0)) != 0 || w.Err() != nil {
		t.Fatal("Extend(0)")
	}
	w.Reset(make([]byte, 0, 4), 4)
	if w.Extend(5) != nil || w.Err() == nil {
		t.Fatal("Extend past the limit succeeded")
	}
}

func TestWriterAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 512)
	meta := []byte(`{"n":12345}`)
	var w Writer
	n := testing.AllocsPerRun(100, func() {
		w.Reset(buf, cap(buf))
		w.Byte('[')
		m := w.Mark()
		writeEntry(&w, "user\"42", meta)
		w.Rewind(m)
		writeEntry(&w, "user\"42", meta)
		w.Byte(']')
	})
	if n != 0 {
		t.Fatalf("Writer allocated %v times", n)
	}
	if !json.Valid(w.Bytes()) {
		t.Fatalf("invalid output %s", w.Bytes())
	}
}
