package jsonwriter

import (
	"encoding/json"
	"errors"
	"io"
	"testing"
)

func TestWriterStructure(t *testing.T) {
	var w Writer
	w.BeginObject()
	w.Key("joins")
	w.BeginArray()
	w.BeginObject()
	w.Key("key")
	w.String("a\"b")
	w.Key("meta")
	w.RawValue([]byte(`{"x":1}`))
	w.EndObject()
	w.Uint(7)
	w.Int(-3)
	w.Bool(true)
	w.Null()
	w.EndArray()
	w.Key("leaves")
	w.BeginArray()
	w.EndArray()
	w.EndObject()
	want := `{"joins":[{"key":"a\"b","meta":{"x":1}},7,-3,true,null],"leaves":[]}`
	if got := string(w.Bytes()); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterNeverGrowsPastLimit(t *testing.T) {
	const doc = `["0123456789","0123456789"]`
	for limit := 0; limit <= len(doc)+1; limit++ {
		buf := make([]byte, 0, limit)
		var w Writer
		w.Reset(buf, limit)
		w.BeginArray()
		w.String("0123456789")
		w.String("0123456789")
		w.EndArray()
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

func TestWriterRewindRecovers(t *testing.T) {
	buf := make([]byte, 0, 8)
	var w Writer
	w.Reset(buf, 8)
	w.BeginArray()
	mark := w.Mark()
	w.String("far too long for eight")
	if w.Err() == nil {
		t.Fatal("expected short buffer")
	}
	w.Rewind(mark)
	w.String("ok")
	w.EndArray()
	if err := w.Err(); err != nil || string(w.Bytes()) != `["ok"]` {
		t.Fatalf("got %q, %v", w.Bytes(), err)
	}
}

func TestWriterExtend(t *testing.T) {
	var w Writer
	copy(w.Extend(3), "abc")
	copy(w.Extend(2), "de")
	if string(w.Bytes()) != "abcde" {
		t.Fatalf("got %q", w.Bytes())
	}
	w.Reset(make([]byte, 0, 4), 4)
	if w.Extend(5) != nil || w.Err() == nil {
		t.Fatal("Extend past the limit succeeded")
	}
}

func TestWriterAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 512)
	var w Writer
	n := testing.AllocsPerRun(100, func() {
		w.Reset(buf, cap(buf))
		w.BeginArray()
		w.BeginObject()
		w.Key("key")
		w.String("user\"42")
		w.Key("n")
		w.Uint(12345)
		w.EndObject()
		w.EndArray()
	})
	if n != 0 {
		t.Fatalf("Writer allocated %v times", n)
	}
	if !json.Valid(w.Bytes()) {
		t.Fatalf("invalid output %s", w.Bytes())
	}
}
