package shard

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/presencekit/presence/jsonwriter"
)

// TestJSONEntriesMatchEncodingJSON writes members with plain, long and
// escaped keys and compares AppendEntries' JSON with encoding/json's
// rendering of the same entries, in join order.
func TestJSONEntriesMatchEncodingJSON(t *testing.T) {
	p := NewPool(Config{Slots: 16, Shards: 1, MaxTopic: 32, MaxKey: 24, MaxMeta: 64, History: 16, Seed: 1})
	type entry struct {
		Key  string          `json:"key"`
		Meta json.RawMessage `json:"meta"`
	}
	var want []entry
	hash := p.HashTopic("t")
	sh := p.ShardFor(hash)
	for i, key := range []string{"k", "exactly8", "nine_char", "a\"quote", "a_key_of_twenty_four_b", "line\u2028sep", "z"} {
		meta := strings.Repeat(`{"a":[`, i%3) + `{"n":"` + strings.Repeat("x", 5*i) + `"}` + strings.Repeat(`]}`, i%3)
		if _, _, err := sh.Track(uint64(i+1), "t", hash, key, jsonwriter.NeedsEscape(key), []byte(meta), 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, entry{key, json.RawMessage(meta)})
	}
	wantJSON, _ := json.Marshal(want)
	var w jsonwriter.Writer
	w.Byte('[')
	if n, _ := sh.AppendEntries(&w, JSON, "t", hash); n != len(want) {
		t.Fatalf("wrote %d entries, want %d", n, len(want))
	}
	w.Byte(']')
	if string(w.Bytes()) != string(wantJSON) {
		t.Fatalf("got  %s\nwant %s", w.Bytes(), wantJSON)
	}

	// A bounded writer either holds all of it or reports that it ran short.
	full := len(wantJSON) - 2
	for limit := 0; limit <= full; limit++ {
		w.Reset(make([]byte, 0, limit), limit)
		sh.AppendEntries(&w, JSON, "t", hash)
		if limit < full && !errors.Is(w.Err(), io.ErrShortBuffer) {
			t.Fatalf("limit %d: Err = %v, want io.ErrShortBuffer", limit, w.Err())
		}
		if limit == full && (w.Err() != nil || string(w.Bytes()) != string(wantJSON[1:len(wantJSON)-1])) {
			t.Fatalf("limit %d: got %s, %v", limit, w.Bytes(), w.Err())
		}
	}
}
