package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// FuzzTrackList drives the engine and the model with the same operations,
// built from arbitrary keys and meta, and checks after each one that List is
// valid JSON and equal to the model's.
func FuzzTrackList(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0x80, 0xa0, 0xc0}, "user_42", []byte(`{"name":"Alice"}`))
	f.Add([]byte{0, 8, 16, 24, 32, 40, 48, 56, 64}, "quote\"\\\u2028", []byte(`{"a":"\u2029"}`))
	f.Add([]byte{1, 1, 1, 0x81}, "\x00ctrl", []byte(`{"a":1,"a":2}`))
	f.Add([]byte{2, 0x22, 0x42}, "bad\xff", []byte("{\"a\":\"\xff\"}"))
	f.Add([]byte{3}, "", []byte(` {"deep":[[[[]]]]} `))
	f.Fuzz(func(t *testing.T, ops []byte, key string, meta []byte) {
		cfg := Config{Capacity: 6, Shards: 2, MaxPerSocket: 4, MaxKeyLen: 16, MaxMetaLen: 64, History: 8}
		e := mustNew(t, cfg)
		m := newModel(cfg)
		topics := []string{"a", "b", "c", "a\u2028"}
		if len(ops) > 64 {
			ops = ops[:64]
		}
		for i, op := range ops {
			s := SocketID(op & 7)
			topic := topics[op>>3&3]
			switch op >> 5 {
			case 0, 1, 2, 3:
				k, mt := key, meta
				if op&32 != 0 {
					k = fmt.Sprint(key, i%3)
				}
				if op&64 != 0 {
					mt = nil
				}
				got, want := e.Track(s, topic, k, mt), m.track(s, topic, k, mt)
				if !sameErr(got, want) {
					t.Fatalf("op %d: Track(%d, %q, %q, %q) = %v, model %v", i, s, topic, k, mt, got, want)
				}
			case 4, 5:
				if got, want := e.Untrack(s, topic), m.untrack(s, topic); got != want {
					t.Fatalf("op %d: Untrack = %v, model %v", i, got, want)
				}
			default:
				if got, want := e.UntrackAll(s), m.untrackAll(s); got != want {
					t.Fatalf("op %d: UntrackAll = %d, model %d", i, got, want)
				}
			}
			for _, tp := range topics {
				out := e.AppendList(nil, tp)
				if !json.Valid(out) {
					t.Fatalf("op %d: List(%q) is not valid JSON: %q", i, tp, out)
				}
				got, err := parseList(out)
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				if want := m.list(tp); !equalListed(got, want) {
					t.Fatalf("op %d: List(%q) = %v, model %v", i, tp, got, want)
				}
				if e.Count(tp) != m.count(tp) {
					t.Fatalf("op %d: Count(%q) = %d, model %d", i, tp, e.Count(tp), m.count(tp))
				}
			}
			if e.Len() != len(m.pairs) {
				t.Fatalf("op %d: Len = %d, model %d", i, e.Len(), len(m.pairs))
			}
		}
	})
}

// sameErr compares errors by their sentinel.
func sameErr(got, want error) bool {
	if want == nil || got == nil {
		return got == want
	}
	return errors.Is(got, want)
}
