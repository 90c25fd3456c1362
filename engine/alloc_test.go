package engine

import (
	"fmt"
	"testing"
)

// TestHotPathAllocatesNothing checks the promise in the package doc: after
// New, no operation allocates (Append* only to grow dst).
func TestHotPathAllocatesNothing(t *testing.T) {
	e := mustNew(t, Config{Capacity: 1024, MaxPerSocket: 1})
	meta := []byte(`{"name":"Alice","status":"online"}`)
	meta2 := []byte(`{"name":"Alice","status":"away"}`)
	for s := SocketID(1); s <= 128; s++ {
		mustTrack(t, e, s, "room", fmt.Sprint("user_", s), string(meta))
	}
	mustTrack(t, e, 500, "room", "esc\"aped\u2028", `{}`)
	buf := make([]byte, 0, 64<<10)
	var snap Snapshot
	var ch Changes
	e.Snapshot(&snap, "room")
	e.ChangesSince(&ch, "room", Cursor{})
	cursor := snap.Cursor
	var page Page
	if err := e.ListPage(&page, "room", PageCursor{}, 50); err != nil || page.Next.IsZero() {
		t.Fatalf("ListPage = %v, next %v", err, page.Next)
	}
	mid := page.Next

	if err := e.Track(3, "x", "k", meta); err != ErrSocketLimit {
		t.Fatalf("Track past the socket limit = %v", err)
	}
	var tog bool
	checks := []struct {
		name string
		fn   func()
	}{
		{"Track update", func() {
			tog = !tog
			if tog {
				e.Track(1, "room", "user_1", meta2)
			} else {
				e.Track(1, "room", "user_1", meta)
			}
		}},
		{"Track unchanged", func() { e.Track(2, "room", "user_2", meta) }},
		{"TrackWithRef update", func() {
			tog = !tog
			ref := uint64(1 << 48)
			if tog {
				ref++
			}
			e.TrackWithRef(FirstRemoteSocket, "room", "remote", meta, ref)
		}},
		{"refused Track", func() {
			e.Track(3, "x", "k", meta) // socket 3 is at its limit of 1
		}},
		{"Track new + Untrack", func() { e.Track(999, "room", "new", meta); e.Untrack(999, "room") }},
		{"Track new topic + UntrackAll", func() { e.Track(998, "fresh", "new", meta); e.UntrackAll(998) }},
		{"Track remote + UntrackAll", func() { e.Track(FirstRemoteSocket+1, "fresh", "new", meta); e.UntrackAll(FirstRemoteSocket + 1) }},
		{"rejected Track", func() {
			e.Track(1, "room", "", meta)
			e.Track(1, "room", "k", []byte(`{"a":1,"a":2}`))
			e.Track(1, "room", "k", []byte(`[`))
		}},
		{"Count", func() { e.Count("room") }},
		{"AppendList", func() { buf = e.AppendList(buf[:0], "room") }},
		{"List", func() { e.List("room", buf[:cap(buf)]) }},
		{"List short", func() { e.List("room", buf[:10]) }},
		{"AppendDiff", func() { buf = e.AppendDiff(buf[:0], "room") }},
		{"Diff", func() { e.Diff("room", buf[:cap(buf)]) }},
		{"Snapshot", func() { e.Snapshot(&snap, "room") }},
		{"ChangesSince", func() { e.ChangesSince(&ch, "room", cursor) }},
		{"ChangesSince full", func() { e.ChangesSince(&ch, "room", Cursor{head: 1 << 50}) }},
		{"AppendChanges", func() { buf, _, _ = e.AppendChanges(buf[:0], "room", cursor) }},
		{"Len Cap Stats", func() { e.Len(); e.Cap(); e.Stats() }},
		{"ListPage", func() { e.ListPage(&page, "room", mid, 50) }},
		{"ListPage first", func() { e.ListPage(&page, "room", PageCursor{}, MaxPageLimit) }},
		{"ListPage refused", func() { e.ListPage(&page, "room", mid, 0) }},
		{"AppendListPage", func() { buf, _, _ = e.AppendListPage(buf[:0], "room", mid, 50) }},
		{"CountKeys", func() { e.CountKeys("room") }},
		{"PageCursor AppendText", func() { buf, _ = mid.AppendText(buf[:0]) }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(200, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
}
