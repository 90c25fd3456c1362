package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	"testing"

	"pgregory.net/rapid"
)

// rapidPager walks one topic's pages a step at a time, between the other
// operations of a rapid test, and checks each page against the model: the
// keys that joined after the last key paged and before the walk's first
// page, the first limit of them. No key is paged twice in a walk, though
// keys leave and come back.
type rapidPager struct {
	on       bool
	cursor   PageCursor
	lastJoin uint64            // the model's join of the last key paged
	horizon  uint64            // the model's last join at the first page
	start    map[string]uint64 // the keys at the first page, by join
	paged    map[string]bool   // the keys paged in this walk
}

func (pg *rapidPager) step(t *rapid.T, e *Engine, m *model, page *Page, tp string) {
	limit := rapid.SampledFrom([]int{1, 1, 1, 2, 2, 3, MaxPageLimit, -1, 0, MaxPageLimit + 1}).Draw(t, "limit")
	before := *page
	err := e.ListPage(page, tp, pg.cursor, limit)
	if limit < 1 || limit > MaxPageLimit {
		if !errors.Is(err, ErrInvalidPageLimit) || page.Keys != before.Keys || page.Next != before.Next || len(page.Entries) != len(before.Entries) {
			t.Fatalf("ListPage(%q, limit %d) = %v, page changed: %v", tp, limit, err, page.Keys != before.Keys)
		}
		return
	}
	if err != nil {
		t.Fatalf("ListPage(%q, %v, %d) = %v", tp, pg.cursor, limit, err)
	}
	if !pg.on {
		*pg = rapidPager{on: true, horizon: m.seq, start: map[string]uint64{}, paged: map[string]bool{}}
		for _, k := range m.keyOrder(tp) {
			pg.start[k.key] = k.join
		}
	}
	// The page is the model's keys that joined after the last key
	// paged and before the walk began, the first limit of them.
	order := m.keyOrder(tp)
	var want []listed
	var wantKeys int
	var last mkey
	rest := 0
	for _, k := range order {
		if k.join <= pg.lastJoin || k.join > pg.horizon {
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
	for _, k := range pageKeys(t, page) {
		if pg.paged[k] {
			t.Fatalf("%q: key %q paged twice in one walk", tp, k)
		}
		pg.paged[k] = true
	}
	var got []listed
	for _, en := range page.Entries {
		got = append(got, listed{Key: string(en.Key), Meta: json.RawMessage(en.Meta)})
	}
	if !equalListed(got, want) || page.Keys != wantKeys {
		t.Fatalf("ListPage(%q, after join %d, horizon %d, limit %d) = %d keys %v, model %d keys %v", tp, pg.lastJoin, pg.horizon, limit, page.Keys, got, wantKeys, want)
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
}

// TestListPageRapid pages one busy topic a step at a time while keys join,
// leave, gain and lose entries and entries move between keys, against the
// model's key order; walks span many writes, and cursors whose keys left
// take the fallback.
func TestListPageRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{Capacity: 32, MaxPerSocket: 32, Shards: 1 << rapid.IntRange(0, 3).Draw(t, "log2(shards)")}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(cfg)
		var sockets []SocketID
		for i := range 10 {
			sockets = append(sockets, SocketID(i+1), FirstRemoteSocket+SocketID(i))
		}
		socket := rapid.SampledFrom(sockets)
		key := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h"})
		var pg rapidPager
		var page Page
		t.Repeat(map[string]func(*rapid.T){
			"track": func(t *rapid.T) {
				s, k := socket.Draw(t, "s"), key.Draw(t, "key")
				meta := fmt.Sprintf(`{"n":%d}`, rapid.IntRange(0, 3).Draw(t, "meta"))
				if got, want := e.Track(s, "room", k, []byte(meta)), m.track(s, "room", k, []byte(meta)); !sameErr(got, want) {
					t.Fatalf("Track = %v, model %v", got, want)
				}
			},
			"untrack": func(t *rapid.T) {
				s := socket.Draw(t, "s")
				if got, want := e.Untrack(s, "room"), m.untrack(s, "room"); got != want {
					t.Fatalf("Untrack = %v, model %v", got, want)
				}
			},
			"page": func(t *rapid.T) { pg.step(t, e, m, &page, "room") },
			"": func(t *rapid.T) {
				if k, n := e.CountKeys("room"); k != len(m.keyOrder("room")) || n != m.count("room") {
					t.Fatalf("CountKeys = %d, %d, model %d, %d", k, n, len(m.keyOrder("room")), m.count("room"))
				}
			},
		})
	})
}
