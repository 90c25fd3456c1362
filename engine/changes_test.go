package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

type diffJSON struct {
	Joins  []listed `json:"joins"`
	Leaves []listed `json:"leaves"`
}

func parseDiff(t *testing.T, b []byte) diffJSON {
	t.Helper()
	var d diffJSON
	if err := json.Unmarshal(b, &d); err != nil || d.Joins == nil || d.Leaves == nil {
		t.Fatalf("bad diff %s: %v", b, err)
	}
	return d
}

func keys(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Key)+"="+string(e.Meta))
	}
	return out
}

func TestChangesSinceCursor(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{"s":"on"}`)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	if len(snap.Entries) != 1 || string(snap.Entries[0].Key) != "alice" || snap.Entries[0].Socket != 1 {
		t.Fatalf("Snapshot = %+v", snap.Entries)
	}

	mustTrack(t, e, 2, "room", "bob", `{"s":"on"}`)
	mustTrack(t, e, 3, "other", "carol", `{}`) // another topic: not reported
	mustTrack(t, e, 1, "room", "alice", `{"s":"away"}`)

	var c Changes
	e.ChangesSince(&c, "room", snap.Cursor)
	if c.Full {
		t.Fatal("unexpected full sync")
	}
	if got, want := keys(c.Joins), []string{`bob={"s":"on"}`, `alice={"s":"away"}`}; !slices.Equal(got, want) {
		t.Fatalf("Joins = %v, want %v", got, want)
	}
	if got, want := keys(c.Leaves), []string{`alice={"s":"on"}`}; !slices.Equal(got, want) {
		t.Fatalf("Leaves = %v, want %v (an update leaves the old meta)", got, want)
	}
	if c.Leaves[0].Ref != snap.Entries[0].Ref || c.Joins[1].Ref == snap.Entries[0].Ref {
		t.Fatal("the leave must carry the old ref and the join a new one")
	}

	// Nothing new: an empty diff and the same cursor.
	next := c.Next
	e.ChangesSince(&c, "room", next)
	if len(c.Joins)+len(c.Leaves) != 0 || c.Full || c.Next != next {
		t.Fatalf("no changes: %+v", c)
	}

	e.Untrack(2, "room")
	out, next2, full := e.AppendChanges(nil, "room", next)
	if full {
		t.Fatal("unexpected full sync")
	}
	d := parseDiff(t, out)
	if len(d.Joins) != 0 || len(d.Leaves) != 1 || d.Leaves[0].Key != "bob" || string(d.Leaves[0].Meta) != `{"s":"on"}` {
		t.Fatalf("AppendChanges = %s", out)
	}
	if next2.head <= next.head {
		t.Fatalf("cursor did not advance: %d -> %d", next, next2)
	}
}

func TestChangesJoinThenLeaveCancel(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	mustTrack(t, e, 2, "room", "bob", `{}`)
	mustTrack(t, e, 2, "room", "bob", `{"v":2}`)
	e.Untrack(2, "room")
	mustTrack(t, e, 1, "room", "alice", `{"v":2}`)
	mustTrack(t, e, 1, "room", "alice", `{"v":3}`)

	var c Changes
	e.ChangesSince(&c, "room", snap.Cursor)
	if got, want := keys(c.Joins), []string{`alice={"v":3}`}; !slices.Equal(got, want) {
		t.Fatalf("Joins = %v, want %v", got, want)
	}
	if got, want := keys(c.Leaves), []string{`alice={}`}; !slices.Equal(got, want) {
		t.Fatalf("Leaves = %v, want %v", got, want)
	}
	out, _, _ := e.AppendChanges(nil, "room", snap.Cursor)
	if got, want := string(out), `{"joins":[{"key":"alice","meta":{"v":3}}],"leaves":[{"key":"alice","meta":{}}]}`; got != want {
		t.Fatalf("AppendChanges = %s, want %s", got, want)
	}
}

func TestChangesOldCursorGetsFullSync(t *testing.T) {
	e := mustNew(t, Config{Shards: 1, History: 8})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	for i := range 10 {
		mustTrack(t, e, 2, "room", "bob", fmt.Sprintf(`{"v":%d}`, i))
	}
	var c Changes
	e.ChangesSince(&c, "room", snap.Cursor)
	if !c.Full || len(c.Leaves) != 0 {
		t.Fatalf("old cursor: Full=%v Leaves=%v", c.Full, keys(c.Leaves))
	}
	if got, want := keys(c.Joins), []string{`alice={}`, `bob={"v":9}`}; !slices.Equal(got, want) {
		t.Fatalf("full sync Joins = %v, want %v", got, want)
	}
	out, next, full := e.AppendChanges(nil, "room", snap.Cursor)
	if !full || string(out) != string(e.AppendDiff(nil, "room")) || next != c.Next {
		t.Fatalf("AppendChanges old cursor = %s, %d, %v", out, next, full)
	}
	// The full sync's cursor continues normally.
	mustTrack(t, e, 3, "room", "carol", `{}`)
	e.ChangesSince(&c, "room", c.Next)
	if c.Full || !slices.Equal(keys(c.Joins), []string{`carol={}`}) {
		t.Fatalf("after full sync: %+v", c)
	}
}

func TestChangesBogusCursorGetsFullSync(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	var c Changes
	e.ChangesSince(&c, "room", Cursor{topic: e.pool.HashTopic("room"), head: 1 << 40})
	if !c.Full || len(c.Joins) != 1 {
		t.Fatalf("future cursor: %+v", c)
	}
}

func TestChangesFromZeroCursor(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	mustTrack(t, e, 2, "room", "bob", `{}`)
	e.Untrack(1, "room")
	var c Changes
	e.ChangesSince(&c, "room", Cursor{})
	if c.Full || !slices.Equal(keys(c.Joins), []string{`bob={}`}) || len(c.Leaves) != 0 {
		t.Fatalf("from zero: %+v", c)
	}
}

func TestChangesTopicRemovedAndRecreated(t *testing.T) {
	e := mustNew(t, Config{Shards: 1})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	e.Untrack(1, "room") // the topic is now empty and its record freed
	mustTrack(t, e, 5, "x", "y", `{}`)
	mustTrack(t, e, 2, "room", "bob", `{}`)
	var c Changes
	e.ChangesSince(&c, "room", snap.Cursor)
	if c.Full || !slices.Equal(keys(c.Joins), []string{`bob={}`}) || !slices.Equal(keys(c.Leaves), []string{`alice={}`}) {
		t.Fatalf("across topic recreation: %+v", c)
	}
}

func TestRefsAreUniqueAndChangeOnUpdate(t *testing.T) {
	e := mustNew(t, Config{Shards: 4})
	seen := map[uint64]bool{}
	var snap Snapshot
	for round := range 3 {
		for s := SocketID(1); s <= 50; s++ {
			mustTrack(t, e, s, fmt.Sprint("room", s%5), "k", fmt.Sprintf(`{"r":%d}`, round))
		}
		for i := range 5 {
			e.Snapshot(&snap, fmt.Sprint("room", i))
			for _, ent := range snap.Entries {
				if seen[ent.Ref] {
					t.Fatalf("ref %d seen twice", ent.Ref)
				}
				seen[ent.Ref] = true
			}
		}
	}
	if len(seen) != 150 {
		t.Fatalf("%d distinct refs, want 150", len(seen))
	}
}

// TestApplyingChangesReproducesList replays diffs the way a client does.
func TestApplyingChangesReproducesList(t *testing.T) {
	e := mustNew(t, Config{Shards: 2, History: 64})
	state := map[uint64]string{} // ref -> key=meta
	var cursor Cursor
	var c Changes
	for step := range 500 {
		s := SocketID(step*7%13 + 1)
		switch step % 5 {
		case 0, 1, 2:
			e.Track(s, "room", fmt.Sprint("u", s), []byte(fmt.Sprintf(`{"step":%d}`, step%3)))
		case 3:
			e.Untrack(s, "room")
		case 4:
			e.UntrackAll(s)
		}
		if step%3 == 0 {
			e.ChangesSince(&c, "room", cursor)
			if c.Full {
				clear(state)
			}
			for _, l := range c.Leaves {
				if _, ok := state[l.Ref]; !ok {
					t.Fatalf("step %d: leave of unknown ref %d", step, l.Ref)
				}
				delete(state, l.Ref)
			}
			for _, j := range c.Joins {
				state[j.Ref] = string(j.Key) + "=" + string(j.Meta)
			}
			cursor = c.Next
			var snap Snapshot
			e.Snapshot(&snap, "room")
			want := map[uint64]string{}
			for _, ent := range snap.Entries {
				want[ent.Ref] = string(ent.Key) + "=" + string(ent.Meta)
			}
			if fmt.Sprint(want) != fmt.Sprint(state) {
				t.Fatalf("step %d: replayed %v, want %v", step, state, want)
			}
		}
	}
}

func TestChangesBetweenStopsAtCursor(t *testing.T) {
	e := mustNew(t, Config{})
	var a, b Snapshot
	e.Snapshot(&a, "room")
	mustTrack(t, e, 1, "room", "alice", `{}`)
	e.Snapshot(&b, "room")
	e.Untrack(1, "room") // after b: not in the range
	var c Changes
	e.ChangesBetween(&c, "room", a.Cursor, b.Cursor)
	if c.Full || c.Next != b.Cursor || !slices.Equal(keys(c.Joins), []string{`alice={}`}) || len(c.Leaves) != 0 {
		t.Fatalf("between a and b: %+v", c)
	}
	e.ChangesBetween(&c, "room", b.Cursor, Cursor{topic: e.pool.HashTopic("room"), head: 1 << 60}) // a later bound stops at the latest change
	if c.Full || len(c.Joins) != 0 || !slices.Equal(keys(c.Leaves), []string{`alice={}`}) {
		t.Fatalf("after b: %+v", c)
	}
}

// topicsBySharing returns a topic in the same shard as "room" and one in
// another shard.
func topicsBySharing(t *testing.T, e *Engine) (same, other string) {
	t.Helper()
	shards := uint64(e.cfg.Shards)
	home := e.pool.HashTopic("room") & (shards - 1)
	for i := 0; same == "" || other == ""; i++ {
		topic := fmt.Sprint("topic", i)
		if e.pool.HashTopic(topic)&(shards-1) == home {
			if same == "" {
				same = topic
			}
		} else if other == "" {
			other = topic
		}
	}
	return same, other
}

// TestForeignCursorGetsFullSync passes the cursor of one topic to another,
// in the same shard and in another: the diff must be a full sync, never a
// diff against the wrong state.
func TestForeignCursorGetsFullSync(t *testing.T) {
	e := mustNew(t, Config{Shards: 4, History: 64})
	same, other := topicsBySharing(t, e)
	for _, topic := range []string{same, other} {
		mustTrack(t, e, 1, "room", "alice", `{}`)
		mustTrack(t, e, 2, topic, "bob", `{}`)
		var snap Snapshot
		e.Snapshot(&snap, topic)
		mustTrack(t, e, 3, "room", "carol", `{}`)
		mustTrack(t, e, 4, topic, "dave", `{}`)

		var c Changes
		e.ChangesSince(&c, "room", snap.Cursor)
		if !c.Full || !slices.Equal(keys(c.Joins), []string{`alice={}`, `carol={}`}) || len(c.Leaves) != 0 {
			t.Fatalf("cursor of %s used for room: %+v", topic, c)
		}
		out, next, full := e.AppendChanges(nil, "room", snap.Cursor)
		if !full || string(out) != string(e.AppendDiff(nil, "room")) {
			t.Fatalf("AppendChanges with the cursor of %s = %s, %v", topic, out, full)
		}
		// The full sync's cursor is room's own, and continues normally.
		mustTrack(t, e, 5, "room", "erin", `{}`)
		e.ChangesSince(&c, "room", next)
		if c.Full || !slices.Equal(keys(c.Joins), []string{`erin={}`}) {
			t.Fatalf("after the full sync: %+v", c)
		}
		// ChangesBetween with a foreign until ends at the latest change.
		e.ChangesBetween(&c, "room", next, snap.Cursor)
		if c.Full || !slices.Equal(keys(c.Joins), []string{`erin={}`}) {
			t.Fatalf("ChangesBetween with a foreign until: %+v", c)
		}
		for s := SocketID(1); s <= 5; s++ {
			e.UntrackAll(s)
		}
	}
}

// TestCursorPosition decodes cursors at small and huge heads, and rejects
// cursors ahead of the head, older than the history, and of other topics.
func TestCursorPosition(t *testing.T) {
	e := mustNew(t, Config{Shards: 8})
	hash := e.pool.HashTopic("room")
	same, other := topicsBySharing(t, e)
	for _, at := range []uint64{5, 1 << 40, 1<<62 + 3} {
		for _, ahead := range []uint64{0, 1, 2, uint64(e.cfg.History)} {
			c := e.makeCursor(hash, at)
			if got, ok := e.position(c, hash, at+ahead); !ok || got != at {
				t.Fatalf("cursor of %d read at head %d: %d, %v", at, at+ahead, got, ok)
			}
		}
		if _, ok := e.position(e.makeCursor(hash, at), hash, at+uint64(e.cfg.History)+1); ok {
			t.Fatalf("a cursor older than the history at head %d was accepted", at)
		}
		if _, ok := e.position(e.makeCursor(hash, at+1), hash, at); ok {
			t.Fatalf("a cursor ahead of head %d was accepted", at)
		}
		for _, topic := range []string{same, other} {
			if _, ok := e.position(e.makeCursor(e.pool.HashTopic(topic), at), hash, at); ok {
				t.Fatalf("a cursor of %s was accepted for room", topic)
			}
		}
	}
	if got, ok := e.position(Cursor{}, hash, 1<<40+5); !ok || got != 0 {
		t.Fatalf("zero cursor: %d, %v", got, ok)
	}
}

// TestForeignCursorNeverCollides passes one cursor of topic a to
// ChangesSince of 2^20 other topics of the same shard: every one must
// answer with a full sync. With 14 bits of the topic's hash in a cursor,
// about 64 of them answered with a diff.
func TestForeignCursorNeverCollides(t *testing.T) {
	n := 1 << 20
	if testing.Short() {
		n = 1 << 16
	}
	e := mustNew(t, Config{Shards: 1, History: 1024})
	mustTrack(t, e, 1, "a", "alice", `{}`)
	var snap Snapshot
	e.Snapshot(&snap, "a")
	var ch Changes
	var name []byte
	diffs := 0
	for i := range n {
		name = fmt.Appendf(name[:0], "topic-%d", i)
		e.ChangesSince(&ch, string(name), snap.Cursor)
		if !ch.Full {
			diffs++
		}
	}
	if diffs != 0 {
		t.Fatalf("%d of %d topics took topic a's cursor for their own", diffs, n)
	}
}

// TestCursorTextForm round-trips cursors through their text and JSON forms,
// and decodes the old numeric form: 0 as the zero cursor, any other number
// as a cursor that gives a full sync.
func TestCursorTextForm(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{}`)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	mustTrack(t, e, 2, "room", "bob", `{}`)
	for _, c := range []Cursor{{}, snap.Cursor, {topic: ^uint64(0), head: 1<<63 + 7}} {
		text, err := c.MarshalText()
		if err != nil || len(text) != 32 || c.String() != string(text) {
			t.Fatalf("MarshalText(%#v) = %q, %v", c, text, err)
		}
		var back Cursor
		if err := back.UnmarshalText(text); err != nil || back != c {
			t.Fatalf("UnmarshalText(%q) = %#v, %v; want %#v", text, back, err, c)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back = Cursor{}
		if err := json.Unmarshal(js, &back); err != nil || back != c {
			t.Fatalf("JSON %s gives %#v, %v; want %#v", js, back, err, c)
		}
	}
	var c Cursor
	if err := json.Unmarshal([]byte(`0`), &c); err != nil || c != (Cursor{}) {
		t.Fatalf("old form 0: %#v, %v", c, err)
	}
	var ch Changes
	for _, old := range []string{`1`, `123456789`, `18446744073709551615`} {
		if err := json.Unmarshal([]byte(old), &c); err != nil {
			t.Fatalf("old form %s: %v", old, err)
		}
		e.ChangesSince(&ch, "room", c)
		if !ch.Full || len(ch.Joins) != 2 {
			t.Fatalf("old form %s: %+v, want a full sync", old, ch)
		}
	}
	for _, bad := range []string{``, `x`, `-1`, `18446744073709551616`, strings.Repeat("g", 32), strings.Repeat("a", 31)} {
		if err := c.UnmarshalText([]byte(bad)); !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("UnmarshalText(%q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
	if testing.AllocsPerRun(100, func() { _, _ = snap.Cursor.AppendText(make([]byte, 0, 32)[:0]) }) > 1 {
		t.Fatal("AppendText allocates")
	}
}
