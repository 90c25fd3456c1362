package engine

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestBlocksAtTheEdgesRapid drives engines whose limits sit at the edges of
// the rendered blocks (metas of 2, 4 and 60 KiB, keys of 1024 bytes that
// need escaping, a capacity of 1, no rendered topics, and the defaults with
// metas long enough that a topic grows into big blocks) with joins,
// updates that change an entry's length, removals from the middle and
// UntrackAll, comparing List with the model after every step. Once every
// entry is gone, no topic may be counted as read from its slots.
func TestBlocksAtTheEdgesRapid(t *testing.T) {
	configs := []Config{
		{MaxMetaLen: 2 << 10, Capacity: 64, MaxPerSocket: 64},
		{MaxMetaLen: 4 << 10, Capacity: 32, MaxPerSocket: 32},
		{MaxMetaLen: 60 << 10, Capacity: 8, MaxPerSocket: 8},
		{MaxKeyLen: 1024, Capacity: 32, MaxPerSocket: 32},
		{Capacity: 1},
		{Capacity: 64, MaxPerSocket: 64, NoRenderedTopics: true},
		{Capacity: 96, MaxPerSocket: 96, Shards: 1},
		{Capacity: 96, MaxPerSocket: 96, Shards: 2, MaxKeyLen: 200, MaxMetaLen: 600},
	}
	rapid.Check(t, func(t *rapid.T) {
		cfg := rapid.SampledFrom(configs).Draw(t, "config")
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(cfg)
		c := e.Config()
		topics := []string{"a", "b", "c"}
		meta := func(label string) []byte {
			n := rapid.IntRange(0, c.MaxMetaLen-len(`{"m":""}`)).Draw(t, label)
			if rapid.Bool().Draw(t, label+" short") {
				n %= 300
			}
			return fmt.Appendf(nil, `{"m":"%s"}`, strings.Repeat(string(rune('a'+n%26)), n))
		}
		key := func(s SocketID) string {
			k := fmt.Sprint("k", s)
			switch rapid.IntRange(0, 3).Draw(t, "key kind") {
			case 0: // as long as allowed, every byte escaped
				k = strings.Repeat("\x01", c.MaxKeyLen-len(k)) + k
			case 1:
				k = `q"\` + k
			}
			return k
		}
		most := 120
		if raceEnabled {
			most = 30
		}
		steps := rapid.IntRange(1, most).Draw(t, "steps")
		for step := range steps {
			topic := rapid.SampledFrom(topics).Draw(t, "topic")
			s := SocketID(rapid.IntRange(1, 40).Draw(t, "socket"))
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 6:
				k, mt := key(s), meta("meta")
				got, want := e.Track(s, topic, k, mt), m.track(s, topic, k, mt)
				if got != want {
					t.Fatalf("step %d: Track = %v, model %v", step, got, want)
				}
			case op < 9:
				if got, want := e.Untrack(s, topic), m.untrack(s, topic); got != want {
					t.Fatalf("step %d: Untrack = %v, model %v", step, got, want)
				}
			default:
				if got, want := e.UntrackAll(s), m.untrackAll(s); got != want {
					t.Fatalf("step %d: UntrackAll = %d, model %d", step, got, want)
				}
			}
			for _, tp := range topics {
				out := e.AppendList(nil, tp)
				// List into a buffer of exactly its length holds it all;
				// one byte less holds nothing.
				if exact, err := e.List(tp, make([]byte, len(out))); err != nil || string(exact) != string(out) {
					t.Fatalf("step %d: List(%s) into %d bytes = %v", step, tp, len(out), err)
				}
				if short, err := e.List(tp, make([]byte, len(out)-1)); !errors.Is(err, io.ErrShortBuffer) || short != nil {
					t.Fatalf("step %d: List(%s) into %d bytes = %v, want io.ErrShortBuffer", step, tp, len(out)-1, err)
				}
				got, err := parseList(out)
				if err != nil {
					t.Fatalf("step %d: List(%s) is not a list (%v): %s", step, tp, err, out)
				}
				if want := m.list(tp); !equalListed(got, want) {
					t.Fatalf("step %d: List(%s) =\n%s\nwant %d entries", step, tp, out, len(want))
				}
			}
		}
		for s := SocketID(1); s <= 40; s++ {
			e.UntrackAll(s)
		}
		if st := e.Stats(); st.UnrenderedTopics != 0 || e.Len() != 0 {
			t.Fatalf("empty engine: %d entries, %d topics read from their slots", e.Len(), st.UnrenderedTopics)
		}
	})
}
