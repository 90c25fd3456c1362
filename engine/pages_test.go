package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fataler is what the page helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// pageKeys returns the keys of a page, each once, and fails if a key's
// entries are not adjacent.
func pageKeys(t fataler, p *Page) []string {
	t.Helper()
	var keys []string
	for i, en := range p.Entries {
		if i > 0 && string(p.Entries[i-1].Key) == string(en.Key) {
			continue
		}
		for _, k := range keys {
			if k == string(en.Key) {
				t.Fatalf("key %q split within a page: %v", en.Key, entryKeys(p.Entries))
			}
		}
		keys = append(keys, string(en.Key))
	}
	if len(keys) != p.Keys {
		t.Fatalf("page holds %d keys, says %d", len(keys), p.Keys)
	}
	return keys
}

func entryKeys(es []Entry) string {
	var b strings.Builder
	for _, en := range es {
		fmt.Fprintf(&b, "%s/%d ", en.Key, en.Socket)
	}
	return b.String()
}

// walkPages pages through topic with limit and returns the keys in order.
func walkPages(t fataler, e *Engine, topic string, limit int) []string {
	t.Helper()
	var p Page
	var all []string
	var after PageCursor
	for range 1 << 20 {
		if err := e.ListPage(&p, topic, after, limit); err != nil {
			t.Fatal(err)
		}
		all = append(all, pageKeys(t, &p)...)
		if p.Next.IsZero() {
			return all
		}
		after = p.Next
	}
	t.Fatal("pages never end")
	return nil
}

func TestListPageKeyOrder(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64})
	// Keys join with their first entry: a, b, c. a's second entry comes
	// after b's, yet a keeps its place.
	mustTrack(t, e, 1, "room", "a", `{"n":1}`)
	mustTrack(t, e, 2, "room", "b", `{}`)
	mustTrack(t, e, 3, "room", "a", `{"n":3}`)
	mustTrack(t, e, 4, "room", "c", `{}`)
	var p Page
	if err := e.ListPage(&p, "room", PageCursor{}, 10); err != nil {
		t.Fatal(err)
	}
	if got := entryKeys(p.Entries); got != "a/1 a/3 b/2 c/4 " {
		t.Fatalf("page = %s", got)
	}
	if p.Keys != 3 || p.TopicKeys != 3 || p.TopicEntries != 4 || !p.Next.IsZero() {
		t.Fatalf("page %+v", p)
	}
	// a keeps its place while one entry stays; b leaves and comes back
	// at the end; socket 4 moves from c to a, so c leaves.
	e.Untrack(1, "room")
	e.Untrack(2, "room")
	mustTrack(t, e, 2, "room", "b", `{}`)
	mustTrack(t, e, 4, "room", "a", `{"n":4}`)
	if err := e.ListPage(&p, "room", PageCursor{}, 10); err != nil {
		t.Fatal(err)
	}
	if got := entryKeys(p.Entries); got != "a/3 a/4 b/2 " {
		t.Fatalf("page after churn = %s", got)
	}
	if k, n := e.CountKeys("room"); k != 2 || n != 3 {
		t.Fatalf("CountKeys = %d, %d, want 2, 3", k, n)
	}
	// Pages of one key: a's entries stay together however small the limit.
	if err := e.ListPage(&p, "room", PageCursor{}, 1); err != nil {
		t.Fatal(err)
	}
	if got := entryKeys(p.Entries); got != "a/3 a/4 " || p.Next.IsZero() {
		t.Fatalf("first page of 1 = %s, next %v", got, p.Next)
	}
	next := p.Next
	if err := e.ListPage(&p, "room", next, 1); err != nil {
		t.Fatal(err)
	}
	if got := entryKeys(p.Entries); got != "b/2 " || !p.Next.IsZero() {
		t.Fatalf("second page of 1 = %s, next %v", got, p.Next)
	}
	// An empty topic: no entries, no next.
	if err := e.ListPage(&p, "empty", PageCursor{}, 10); err != nil || len(p.Entries) != 0 || p.Keys != 0 || !p.Next.IsZero() || p.TopicKeys != 0 {
		t.Fatalf("empty topic: %v %+v", err, p)
	}
	if k, n := e.CountKeys("empty"); k != 0 || n != 0 {
		t.Fatalf("CountKeys(empty) = %d, %d", k, n)
	}
}

// TestListPageCursorOfLeftKeys pages on after the keys a cursor names
// have left: from the next key when only the page's last key left, and by
// the fallback walk when both did.
func TestListPageCursorOfLeftKeys(t *testing.T) {
	for _, leave := range [][]int{nil, {1}, {2}, {1, 2}, {1, 2, 3}, {0, 1, 2, 3, 4, 5}} {
		t.Run(fmt.Sprint(leave), func(t *testing.T) {
			e := mustNew(t, Config{Capacity: 64})
			for i := range 6 {
				mustTrack(t, e, SocketID(i+1), "room", fmt.Sprint("k", i), `{}`)
			}
			var p Page
			if err := e.ListPage(&p, "room", PageCursor{}, 2); err != nil {
				t.Fatal(err)
			}
			// The cursor names k1, the last key of the page, and k2.
			for _, i := range leave {
				e.Untrack(SocketID(i+1), "room")
			}
			// A new key joins at the end, and takes a freed record; it
			// joined after the walk began, so the walk ends before it.
			mustTrack(t, e, 9, "room", "new", `{}`)
			if err := e.ListPage(&p, "room", p.Next, 10); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 2; i < 6; i++ {
				if !containsInt(leave, i) {
					want = append(want, fmt.Sprint("k", i))
				}
			}
			if got := pageKeys(t, &p); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after %v left: page %v, want %v", leave, got, want)
			}
			if !p.Next.IsZero() {
				t.Fatalf("after %v left: Next %v past the walk's horizon", leave, p.Next)
			}
		})
	}
}

// TestListPageWalkHorizon checks that a walk ends at the keys present at
// its first page: a key paged and then gone and back, and a key that joins
// after the first page, are not paged again, and Next is zero on the page
// that reaches the last key of the first page's instant.
func TestListPageWalkHorizon(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			e := mustNew(t, Config{Capacity: 64})
			for i := range 6 {
				mustTrack(t, e, SocketID(i+1), "room", fmt.Sprint("k", i), `{}`)
			}
			var p Page
			var got []string
			var after PageCursor
			for page := 0; ; page++ {
				if err := e.ListPage(&p, "room", after, limit); err != nil {
					t.Fatal(err)
				}
				got = append(got, pageKeys(t, &p)...)
				if page == 0 {
					// k0 was paged: it leaves and comes back, at the
					// end; a new key joins; k5, the last key, gains an
					// entry and stays.
					e.Untrack(1, "room")
					mustTrack(t, e, 1, "room", "k0", `{"back":true}`)
					mustTrack(t, e, 7, "room", "new", `{}`)
					mustTrack(t, e, 8, "room", "k5", `{}`)
				}
				if p.Next.IsZero() {
					break
				}
				if page > 10 {
					t.Fatal("pages never end")
				}
				after = p.Next
			}
			if fmt.Sprint(got) != "[k0 k1 k2 k3 k4 k5]" {
				t.Fatalf("walk = %v, want each key present at the first page once", got)
			}
			// A new walk sees the keys as they are now.
			if got := walkPages(t, e, "room", limit); fmt.Sprint(got) != "[k1 k2 k3 k4 k5 k0 new]" {
				t.Fatalf("new walk = %v", got)
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestListPageBadInput(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64})
	other := mustNew(t, Config{Capacity: 64})
	for i := range 5 {
		mustTrack(t, e, SocketID(i+1), "room", fmt.Sprint("k", i), `{}`)
		mustTrack(t, e, SocketID(i+1), "lobby", fmt.Sprint("k", i), `{}`)
		mustTrack(t, other, SocketID(i+1), "room", fmt.Sprint("k", i), `{}`)
	}
	var p, lobby, foreign Page
	if err := e.ListPage(&lobby, "lobby", PageCursor{}, 2); err != nil {
		t.Fatal(err)
	}
	if err := other.ListPage(&foreign, "room", PageCursor{}, 2); err != nil {
		t.Fatal(err)
	}
	if err := e.ListPage(&p, "room", PageCursor{}, 2); err != nil {
		t.Fatal(err)
	}
	before := entryKeys(p.Entries)
	check := func(name string, after PageCursor, limit int, want error) {
		t.Helper()
		if err := e.ListPage(&p, "room", after, limit); !errors.Is(err, want) {
			t.Fatalf("%s: ListPage = %v, want %v", name, err, want)
		}
		if got := entryKeys(p.Entries); got != before || p.Keys != 2 {
			t.Fatalf("%s: the refused ListPage changed the page: %s", name, got)
		}
		out, next, err := e.AppendListPage([]byte("x"), "room", after, limit)
		if !errors.Is(err, want) || string(out) != "x" || !next.IsZero() {
			t.Fatalf("%s: AppendListPage = %q, %v, %v", name, out, next, err)
		}
	}
	for _, limit := range []int{-1, 0, MaxPageLimit + 1, math.MaxInt} {
		check(fmt.Sprint("limit ", limit), PageCursor{}, limit, ErrInvalidPageLimit)
	}
	check("another topic's cursor", lobby.Next, 2, ErrInvalidCursor)
	check("another engine's cursor", foreign.Next, 2, ErrInvalidCursor)
	// Forged cursors: right topic, marks out of range or of another shard.
	good := p.Next
	for _, forge := range []func(*PageCursor){
		func(c *PageCursor) { c.pos.First.Key = 0 },
		func(c *PageCursor) { c.pos.Last.Key = 1 << 31 },
		func(c *PageCursor) { c.pos.First.Gen = 0 },
		func(c *PageCursor) { c.pos.Last.Gen ^= 1 },
		func(c *PageCursor) { c.pos.Last.Gen, c.pos.First.Gen = c.pos.First.Gen, c.pos.Last.Gen },
		func(c *PageCursor) { c.pos.Horizon = 0 },
		func(c *PageCursor) { c.pos.Horizon = c.pos.First.Gen - 1<<10 }, // before the next key
		func(c *PageCursor) { c.pos.Horizon ^= 1 },                      // another shard's
		func(c *PageCursor) { c.pos.Horizon += 1 << 30 },                // ahead of every key join
	} {
		c := good
		forge(&c)
		check(fmt.Sprintf("forged %v", c), c, 2, ErrInvalidCursor)
	}
	// Nothing changed: the good cursor still pages on.
	if err := e.ListPage(&p, "room", good, 2); err != nil || p.Keys != 2 {
		t.Fatalf("good cursor after the refusals: %v, %d keys", err, p.Keys)
	}
}

func TestPageCursorText(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64})
	for i := range 3 {
		mustTrack(t, e, SocketID(i+1), "room", fmt.Sprint("k", i), `{}`)
	}
	var p Page
	if err := e.ListPage(&p, "room", PageCursor{}, 1); err != nil {
		t.Fatal(err)
	}
	txt, err := p.Next.MarshalText()
	if err != nil || len(txt) != pageCursorLen || p.Next.String() != string(txt) {
		t.Fatalf("MarshalText = %q, %v; String %q", txt, err, p.Next.String())
	}
	var c PageCursor
	if err := c.UnmarshalText(txt); err != nil || c != p.Next {
		t.Fatalf("UnmarshalText(%q) = %v, %v", txt, c, err)
	}
	if z, _ := (PageCursor{}).MarshalText(); len(z) != 0 {
		t.Fatalf("zero cursor's text = %q", z)
	}
	if err := c.UnmarshalText(nil); err != nil || !c.IsZero() {
		t.Fatalf("empty text = %v, %v", c, err)
	}
	for _, bad := range []string{"x", string(txt[:pageCursorLen-1]), string(txt) + "0", strings.Repeat("g", pageCursorLen), strings.Repeat("0", pageCursorLen), string(txt[:64]), "\"" + string(txt[1:])} {
		c = p.Next
		if err := c.UnmarshalText([]byte(bad)); !errors.Is(err, ErrInvalidCursor) || c != p.Next {
			t.Fatalf("UnmarshalText(%q) = %v, cursor %v", bad, err, c)
		}
	}
}

// TestListPageRemoteEntries checks that entries of remote sockets page and
// count like local ones.
func TestListPageRemoteEntries(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64, LocalCapacity: 8})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	mustTrack(t, e, FirstRemoteSocket+1, "room", "bob", `{"node":"b"}`)
	mustTrack(t, e, FirstRemoteSocket+2, "room", "alice", `{"node":"c"}`)
	mustTrack(t, e, ^SocketID(0), "room", "carol", `{}`)
	if k, n := e.CountKeys("room"); k != 3 || n != 4 {
		t.Fatalf("CountKeys = %d, %d, want 3, 4", k, n)
	}
	if got := walkPages(t, e, "room", 1); fmt.Sprint(got) != "[alice bob carol]" {
		t.Fatalf("pages = %v", got)
	}
	out, next, err := e.AppendListPage(nil, "room", PageCursor{}, 2)
	want := `[{"key":"alice","meta":{}},{"key":"alice","meta":{"node":"c"}},{"key":"bob","meta":{"node":"b"}}]`
	if err != nil || string(out) != want || next.IsZero() {
		t.Fatalf("AppendListPage = %s, %v, %v", out, next, err)
	}
	out, next, err = e.AppendListPage(out[:0], "room", next, 2)
	if err != nil || string(out) != `[{"key":"carol","meta":{}}]` || !next.IsZero() {
		t.Fatalf("second AppendListPage = %s, %v, %v", out, next, err)
	}
}

// TestAppendListPageEscapes writes keys that need escaping as AppendList
// does.
func TestAppendListPageEscapes(t *testing.T) {
	e := mustNew(t, Config{Capacity: 8})
	mustTrack(t, e, 1, "room", "q\"u\u2028", `{"a":1}`)
	mustTrack(t, e, 2, "room", "plain", `{}`)
	out, _, err := e.AppendListPage(nil, "room", PageCursor{}, 10)
	if err != nil || string(out) != string(e.AppendList(nil, "room")) {
		t.Fatalf("AppendListPage = %s, %v; AppendList %s", out, err, e.AppendList(nil, "room"))
	}
}

// TestCountKeysIsOnePair reads CountKeys while a writer cycles the topic
// through states whose (keys, entries) are (1,1), (1,2), (2,2), (2,3) and
// (2,2) again: a pair mixed from two instants, such as (1,3) or (2,1),
// fails.
func TestCountKeysIsOnePair(t *testing.T) {
	e := mustNew(t, Config{Capacity: 16})
	mustTrack(t, e, 1, "room", "a", `{}`)
	valid := map[[2]int]bool{{1, 1}: true, {1, 2}: true, {2, 2}: true, {2, 3}: true}
	var stop atomic.Bool
	done := make(chan struct{})
	var cycles atomic.Int64
	go func() {
		defer close(done)
		for i := 0; i < 1_000_000 && !stop.Load(); i++ {
			for _, err := range []error{
				e.Track(2, "room", "a", nil), // (1,2)
				e.Track(2, "room", "b", nil), // (2,2): the entry moves to b
				e.Track(3, "room", "b", nil), // (2,3)
			} {
				if err != nil {
					t.Error(err)
					return
				}
			}
			e.Untrack(2, "room") // (2,2)
			e.Untrack(3, "room") // (1,1)
			cycles.Add(1)
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	reads := 0
	for ; time.Now().Before(deadline) || cycles.Load() < 100; reads++ {
		if k, n := e.CountKeys("room"); !valid[[2]int{k, n}] {
			stop.Store(true)
			<-done
			t.Fatalf("CountKeys = %d keys, %d entries: not a state the topic was in (read %d)", k, n, reads)
		}
		if reads > 100_000_000 {
			break
		}
	}
	stop.Store(true)
	<-done
	t.Logf("%d reads over %d cycles", reads, cycles.Load())
}

// FuzzPageCursor decodes arbitrary text as a PageCursor and pages with
// whatever it accepts: a cursor is refused with ErrInvalidCursor or reads
// a page, never panics, and what decodes encodes back to the same text.
func FuzzPageCursor(f *testing.F) {
	e := mustNew(f, Config{Capacity: 64, Shards: 2})
	for i := range 40 {
		mustTrack(f, e, SocketID(i+1), "room", fmt.Sprint("k", i%30), `{}`)
	}
	var p Page
	if err := e.ListPage(&p, "room", PageCursor{}, 3); err != nil {
		f.Fatal(err)
	}
	good := p.Next.String()
	f.Add(good)
	f.Add("")
	f.Add(strings.Repeat("f", pageCursorLen))
	f.Add(good[:32] + strings.Repeat("0", pageCursorLen-32))
	f.Add(good[:16] + "ffffffff" + good[24:])
	f.Add(good[:pageCursorLen-16] + strings.Repeat("f", 16)) // a horizon ahead
	f.Add(good[:64])                                         // a cursor of the old form
	f.Fuzz(func(t *testing.T, text string) {
		var c PageCursor
		if err := c.UnmarshalText([]byte(text)); err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("UnmarshalText(%q) = %v", text, err)
			}
			return
		}
		if back := c.String(); back != strings.ToLower(text) {
			t.Fatalf("UnmarshalText(%q) then String = %q", text, back)
		}
		var p Page
		err := e.ListPage(&p, "room", c, 5)
		if err != nil && !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("ListPage(%q) = %v", text, err)
		}
		if err == nil && (p.Keys > 5 || len(p.Entries) > 40) {
			t.Fatalf("ListPage(%q) read %d keys, %d entries", text, p.Keys, len(p.Entries))
		}
	})
}

// TestListPageForgedCursorStaysInItsTopic forges a cursor that names live
// keys of another topic of the same shard under this topic's hash: the
// page must hold only this topic's keys, never the other's.
func TestListPageForgedCursorStaysInItsTopic(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64, Shards: 1})
	for i := range 6 {
		mustTrack(t, e, SocketID(i+1), "lobby", fmt.Sprint("lobby", i), `{}`)
		mustTrack(t, e, SocketID(i+1), "room", fmt.Sprint("room", i), `{}`)
	}
	var p Page
	if err := e.ListPage(&p, "lobby", PageCursor{}, 2); err != nil {
		t.Fatal(err)
	}
	forged := p.Next
	forged.topic = e.pool.HashTopic("room")
	if err := e.ListPage(&p, "room", forged, 10); err != nil {
		t.Fatalf("forged cursor: %v", err)
	}
	for _, en := range p.Entries {
		if !strings.HasPrefix(string(en.Key), "room") {
			t.Fatalf("a page of room holds %q of lobby", en.Key)
		}
	}
}
