package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestModelRapid drives the engine and the model with random sequences of
// every operation, valid and invalid, over tiny and ordinary capacities and
// every shard count, and compares them after each step: List, Count, Len,
// the socket counts, and the incremental diff, which applied to a client's
// state must reproduce the topic's entries.
func TestModelRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.SampledFrom([]int{1, 2, 3, 4, 7, 16}).Draw(t, "capacity")
		shards := 1 << rapid.IntRange(0, 10).Draw(t, "log2(shards)")
		cfg := Config{
			Capacity:     capacity,
			Shards:       shards,
			MaxTopicLen:  8,
			MaxKeyLen:    6,
			MaxMetaLen:   24,
			MaxPerSocket: rapid.IntRange(1, capacity).Draw(t, "maxPerSocket"),
			History:      rapid.SampledFrom([]int{2, 4, 8, 64}).Draw(t, "history"),
			// Local sockets may be held to less than Capacity, so that
			// remote ones have a reserve.
			LocalCapacity: rapid.IntRange(0, capacity).Draw(t, "localCapacity"),
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(cfg)

		validTopics := []string{"a", "b", "🙂", "12345678"}
		topic := rapid.SampledFrom(append(slices.Clone(validTopics), "", "\xff", "123456789"))
		sockets := []SocketID{1, 2, 3, FirstRemoteSocket, FirstRemoteSocket + 1, ^SocketID(0)}
		socket := rapid.SampledFrom(sockets)
		key := rapid.SampledFrom([]string{"k", "k2", `q"u`, "\u2028", "123456", "", "\xff", "1234567"})
		meta := rapid.SampledFrom([]string{"", "{}", `{"a":1}`, ` {"b":"x"} `, `{"n":{"x":[1]}}`,
			`[1]`, `{"a":1,"a":2}`, `{"a":`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `{"long":"` + strings.Repeat("x", 20) + `"}`, `"s"`})

		// A client per topic that follows the incremental diff.
		type client struct {
			cursor Cursor
			state  map[uint64]string // ref -> key=meta
		}
		clients := map[string]*client{}
		for _, tp := range validTopics {
			clients[tp] = &client{state: map[uint64]string{}}
		}
		var ch Changes
		var snap Snapshot
		// A pager per topic walks its pages one step at a time between
		// the other operations.
		type pager struct {
			on       bool
			cursor   PageCursor
			lastJoin uint64            // the model's join of the last key paged
			start    map[string]uint64 // the keys at the first page, by join
		}
		pagers := map[string]*pager{}
		for _, tp := range validTopics {
			pagers[tp] = &pager{}
		}
		var page Page

		t.Repeat(map[string]func(*rapid.T){
			"track": func(t *rapid.T) {
				s, tp, k, mt := socket.Draw(t, "s"), topic.Draw(t, "topic"), key.Draw(t, "key"), meta.Draw(t, "meta")
				got, want := e.Track(s, tp, k, []byte(mt)), m.track(s, tp, k, []byte(mt))
				if !sameErr(got, want) {
					t.Fatalf("Track(%d, %q, %q, %q) = %v, model %v", s, tp, k, mt, got, want)
				}
			},
			"untrack": func(t *rapid.T) {
				s, tp := socket.Draw(t, "s"), topic.Draw(t, "topic")
				if got, want := e.Untrack(s, tp), m.untrack(s, tp); got != want {
					t.Fatalf("Untrack(%d, %q) = %v, model %v", s, tp, got, want)
				}
			},
			"untrackAll": func(t *rapid.T) {
				s := socket.Draw(t, "s")
				if got, want := e.UntrackAll(s), m.untrackAll(s); got != want {
					t.Fatalf("UntrackAll(%d) = %d, model %d", s, got, want)
				}
			},
			"socketEntries": func(t *rapid.T) {
				s := socket.Draw(t, "s")
				var got []string
				e.SocketEntries(s, func(topic, key string, meta []byte, ref uint64) bool {
					got = append(got, topic+" "+key+"="+string(meta))
					return true
				})
				var want []string
				for p, ent := range m.pairs {
					if p.s == s {
						want = append(want, p.topic+" "+ent.key+"="+ent.meta)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("SocketEntries(%d) = %q, model %q", s, got, want)
				}
			},
			"changes": func(t *rapid.T) {
				tp := rapid.SampledFrom(validTopics).Draw(t, "topic")
				c := clients[tp]
				e.ChangesSince(&ch, tp, c.cursor)
				if ch.Full {
					clear(c.state)
				}
				for _, l := range ch.Leaves {
					if _, ok := c.state[l.Ref]; !ok {
						t.Fatalf("%q: leave of ref %d the client never saw", tp, l.Ref)
					}
					delete(c.state, l.Ref)
				}
				for _, j := range ch.Joins {
					c.state[j.Ref] = string(j.Key) + "=" + string(j.Meta)
				}
				c.cursor = ch.Next
				e.Snapshot(&snap, tp)
				want := map[uint64]string{}
				for _, ent := range snap.Entries {
					want[ent.Ref] = string(ent.Key) + "=" + string(ent.Meta)
				}
				if fmt.Sprint(want) != fmt.Sprint(c.state) {
					t.Fatalf("%q: diffs give %v, snapshot %v", tp, c.state, want)
				}
				// From the start of history, onto an empty set.
				e.ChangesSince(&ch, tp, Cursor{})
				fresh := map[uint64]string{}
				for _, j := range ch.Joins {
					fresh[j.Ref] = string(j.Key) + "=" + string(j.Meta)
				}
				if !ch.Full {
					for _, l := range ch.Leaves {
						t.Fatalf("%q: a diff from cursor 0 holds a leave of %s", tp, l.Key)
					}
				}
				if fmt.Sprint(fresh) != fmt.Sprint(want) {
					t.Fatalf("%q: diffs from cursor 0 give %v, snapshot %v", tp, fresh, want)
				}
			},
			"page": func(t *rapid.T) {
				tp := rapid.SampledFrom(validTopics).Draw(t, "topic")
				limit := rapid.SampledFrom([]int{-1, 0, 1, 2, 3, MaxPageLimit, MaxPageLimit + 1}).Draw(t, "limit")
				pg := pagers[tp]
				if !pg.on {
					*pg = pager{on: true, start: map[string]uint64{}}
					for _, k := range m.keyOrder(tp) {
						pg.start[k.key] = k.join
					}
				}
				before := page
				err := e.ListPage(&page, tp, pg.cursor, limit)
				if limit < 1 || limit > MaxPageLimit {
					if !errors.Is(err, ErrInvalidPageLimit) || page.Keys != before.Keys || page.Next != before.Next || len(page.Entries) != len(before.Entries) {
						t.Fatalf("ListPage(%q, limit %d) = %v, page changed: %v", tp, limit, err, page.Keys != before.Keys)
					}
					return
				}
				if err != nil {
					t.Fatalf("ListPage(%q, %v, %d) = %v", tp, pg.cursor, limit, err)
				}
				// The page is the model's keys that joined after the last
				// key paged, the first limit of them.
				order := m.keyOrder(tp)
				var want []listed
				var wantKeys int
				var last mkey
				rest := 0
				for _, k := range order {
					if k.join <= pg.lastJoin {
						continue
					}
					if wantKeys == limit {
						rest++
						continue
					}
					want = append(want, k.entries...)
					wantKeys++
					last = k
				}
				var got []listed
				for _, en := range page.Entries {
					got = append(got, listed{Key: string(en.Key), Meta: json.RawMessage(en.Meta)})
				}
				if !equalListed(got, want) || page.Keys != wantKeys {
					t.Fatalf("ListPage(%q, after join %d, limit %d) = %d keys %v, model %d keys %v", tp, pg.lastJoin, limit, page.Keys, got, wantKeys, want)
				}
				if page.TopicKeys != len(order) || page.TopicEntries != m.count(tp) {
					t.Fatalf("ListPage(%q) counts %d keys %d entries, model %d, %d", tp, page.TopicKeys, page.TopicEntries, len(order), m.count(tp))
				}
				if (rest == 0) != page.Next.IsZero() {
					t.Fatalf("ListPage(%q): Next %v with %d keys after the page", tp, page.Next, rest)
				}
				// The text form round-trips.
				var back PageCursor
				if txt, _ := page.Next.MarshalText(); back.UnmarshalText(txt) != nil || back != page.Next {
					t.Fatalf("cursor %v does not round-trip its text %q", page.Next, txt)
				}
				if wantKeys > 0 {
					pg.lastJoin = last.join
				}
				pg.cursor = page.Next
				if page.Next.IsZero() {
					// Every key present from the first page to the last
					// (the same join: a key that left and came back is
					// another) was paged, once, since pages follow joins.
					for _, k := range order {
						if j, ok := pg.start[k.key]; ok && j == k.join && j > pg.lastJoin {
							t.Fatalf("%q: key %q present throughout was not paged", tp, k.key)
						}
					}
					pg.on = false
					pg.cursor = PageCursor{}
				}
			},
			"": func(t *rapid.T) {
				for _, tp := range validTopics {
					if k, n := e.CountKeys(tp); k != len(m.keyOrder(tp)) || n != m.count(tp) {
						t.Fatalf("CountKeys(%q) = %d, %d, model %d, %d", tp, k, n, len(m.keyOrder(tp)), m.count(tp))
					}
					got, err := parseList(e.AppendList(nil, tp))
					if err != nil {
						t.Fatal(err)
					}
					if want := m.list(tp); !equalListed(got, want) {
						t.Fatalf("List(%q) = %v, model %v", tp, got, want)
					}
					if e.Count(tp) != m.count(tp) {
						t.Fatalf("Count(%q) = %d, model %d", tp, e.Count(tp), m.count(tp))
					}
				}
				if e.Len() != len(m.pairs) || e.Len() > e.Cap() {
					t.Fatalf("Len = %d, model %d, Cap %d", e.Len(), len(m.pairs), e.Cap())
				}
				if st := e.Stats(); st.Local != m.localLen() || st.Local+st.Remote != st.Len || st.Len != len(m.pairs) {
					t.Fatalf("Stats = %+v, model: %d local of %d", st, m.localLen(), len(m.pairs))
				}
				for _, s := range sockets {
					if e.SocketLen(s) != m.socketLen(s) {
						t.Fatalf("SocketLen(%d) = %d, model %d", s, e.SocketLen(s), m.socketLen(s))
					}
				}
			},
		})
	})
}
