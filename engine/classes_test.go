package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// remote is the i-th remote socket.
func remote(i int) SocketID { return FirstRemoteSocket + SocketID(i) }

func TestLocalCapacityLeavesReserveForRemoteSockets(t *testing.T) {
	e := mustNew(t, Config{Capacity: 4, LocalCapacity: 2, MaxPerSocket: 4})
	mustTrack(t, e, 1, "a", "k1", "")
	mustTrack(t, e, 2, "b", "k2", "")
	if err := e.Track(3, "a", "k3", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("third local entry: %v, want ErrFull", err)
	}
	mustTrack(t, e, remote(0), "a", "r0", "")
	mustTrack(t, e, remote(1), "c", "r1", "")
	if err := e.Track(remote(2), "a", "r2", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth entry: %v, want ErrFull", err)
	}
	// Updates of present pairs are never refused.
	mustTrack(t, e, 1, "a", "k1", `{"v":2}`)
	mustTrack(t, e, remote(0), "a", "r0", `{"v":2}`)

	st := e.Stats()
	if st.Len != 4 || st.Local != 2 || st.Remote != 2 || st.Cap != 4 || st.LocalCapacity != 2 ||
		st.FullLocal != 1 || st.FullRemote != 1 {
		t.Fatalf("Stats = %+v", st)
	}

	// A remote removal frees room for remote sockets, not for local ones
	// beyond LocalCapacity.
	e.Untrack(remote(1), "c")
	if err := e.Track(3, "a", "k3", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("local entry past LocalCapacity: %v, want ErrFull", err)
	}
	mustTrack(t, e, remote(2), "a", "r2", "")
	// A local removal frees room for either class.
	e.Untrack(2, "b")
	mustTrack(t, e, 3, "a", "k3", "")
	if got := e.Stats(); got.Local != 2 || got.Remote != 2 || got.FullLocal != 2 {
		t.Fatalf("Stats = %+v", got)
	}
}

func TestRemoteSocketsMayUseAllOfCapacity(t *testing.T) {
	e := mustNew(t, Config{Capacity: 3, LocalCapacity: 1, MaxPerSocket: 3})
	for i := range 3 {
		mustTrack(t, e, remote(0), fmt.Sprint("t", i), "r", "")
	}
	if err := e.Track(1, "t0", "k", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("local Track in a full engine: %v, want ErrFull", err)
	}
	if n := e.UntrackAll(remote(0)); n != 3 {
		t.Fatalf("UntrackAll(remote) = %d, want 3", n)
	}
	if st := e.Stats(); st.Len != 0 || st.Local != 0 || st.Remote != 0 {
		t.Fatalf("Stats after UntrackAll = %+v", st)
	}
}

func TestSocketLimitIsCheckedBeforeCapacity(t *testing.T) {
	e := mustNew(t, Config{Capacity: 2, MaxPerSocket: 1})
	mustTrack(t, e, 1, "a", "k", "")
	mustTrack(t, e, 2, "a", "k", "")
	if err := e.Track(1, "b", "k", nil); !errors.Is(err, ErrSocketLimit) {
		t.Fatalf("socket at its limit in a full engine: %v, want ErrSocketLimit", err)
	}
	if st := e.Stats(); st.FullLocal != 0 {
		t.Fatalf("a socket-limit refusal counted as ErrFull: %+v", st)
	}
}

func TestLocalCapacityDefaultsToCapacity(t *testing.T) {
	if c := mustNew(t, Config{Capacity: 10}).Config(); c.LocalCapacity != 10 {
		t.Fatalf("LocalCapacity = %d, want 10", c.LocalCapacity)
	}
	if c := mustNew(t, Config{}).Config(); c.LocalCapacity != DefaultCapacity {
		t.Fatalf("LocalCapacity = %d, want %d", c.LocalCapacity, DefaultCapacity)
	}
}

func TestConfigErrorsAreOneLine(t *testing.T) {
	for _, cfg := range []Config{
		{Capacity: -1},
		{Shards: 3},
		{LocalCapacity: -1},
		{Capacity: 4, LocalCapacity: 5},
		{LocalCapacity: DefaultCapacity + 1},
		{RefTag: 1 << 16},
	} {
		_, err := New(cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, ErrInvalidConfig.Error()+": ") {
			t.Fatalf("New(%+v) error %q is not one line starting with %q", cfg, msg, ErrInvalidConfig)
		}
	}
}

func TestTrackWithRefRoundTrip(t *testing.T) {
	e := mustNew(t, Config{Capacity: 8, RefTag: 7})
	const ref = 2<<48 | 12345 // as another node's engine would generate it
	s := remote(5)
	if out, err := e.TrackWithRef(s, "room", "alice", []byte(`{"a":1}`), ref); err != nil || out != Added {
		t.Fatalf("TrackWithRef = %v, %v, want Added", out, err)
	}
	var snap Snapshot
	e.Snapshot(&snap, "room")
	if len(snap.Entries) != 1 || snap.Entries[0].Ref != ref || snap.Entries[0].Socket != s ||
		string(snap.Entries[0].Key) != "alice" || string(snap.Entries[0].Meta) != `{"a":1}` {
		t.Fatalf("Snapshot = %+v", snap.Entries)
	}
	if out, err := e.TrackWithRef(s, "room", "alice", []byte(` {"a":1} `), ref); err != nil || out != Unchanged {
		t.Fatalf("same key, meta and ref: %v, %v, want Unchanged", out, err)
	}
	// The same key and meta under a new ref is an update to that ref.
	if out, err := e.TrackWithRef(s, "room", "alice", []byte(`{"a":1}`), ref+1); err != nil || out != Updated {
		t.Fatalf("new ref: %v, %v, want Updated", out, err)
	}
	var ch Changes
	e.ChangesSince(&ch, "room", snap.Cursor)
	if ch.Full || len(ch.Leaves) != 1 || ch.Leaves[0].Ref != ref || len(ch.Joins) != 1 || ch.Joins[0].Ref != ref+1 {
		t.Fatalf("changes of a ref update = %+v", ch)
	}
	// A generated ref replaces a caller's ref on an update, and carries the
	// engine's tag.
	out, got, err := e.TrackRef(s, "room", "alice", []byte(`{"a":2}`))
	if err != nil || out != Updated || got>>48 != 7 || got == ref+1 {
		t.Fatalf("TrackRef after TrackWithRef = %v, %#x, %v", out, got, err)
	}
	before := e.AppendList(nil, "room")
	if _, err := e.TrackWithRef(s, "room", "alice", nil, 0); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("ref 0: %v, want ErrInvalidRef", err)
	}
	if _, err := e.TrackWithRef(remote(6), "room", "bob", nil, 0); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("ref 0: %v, want ErrInvalidRef", err)
	}
	if after := e.AppendList(nil, "room"); string(after) != string(before) || e.Len() != 1 {
		t.Fatalf("a refused TrackWithRef changed %s into %s", before, after)
	}
}

func TestRefTagSeparatesEngines(t *testing.T) {
	refs := map[uint64]uint64{}
	for _, tag := range []uint64{0, 1, 1<<16 - 1} {
		e := mustNew(t, Config{Capacity: 64, Shards: 4, RefTag: tag})
		for i := range 200 {
			_, ref, err := e.TrackRef(SocketID(i%8+1), fmt.Sprint("t", i%7), "k", []byte(fmt.Sprintf(`{"i":%d}`, i)))
			if err != nil {
				t.Fatal(err)
			}
			if ref>>48 != tag || ref == 0 {
				t.Fatalf("RefTag %d: ref %#x", tag, ref)
			}
			if other, dup := refs[ref]; dup {
				t.Fatalf("ref %#x generated by engines tagged %d and %d", ref, other, tag)
			}
			refs[ref] = tag
		}
	}
}

func TestSocketEntriesListsWhatASocketHolds(t *testing.T) {
	e := mustNew(t, Config{Capacity: 256, MaxPerSocket: 256, Shards: 8})
	want := map[string]string{}
	for i := range 100 {
		topic := fmt.Sprint("topic", i)
		mustTrack(t, e, remote(1), topic, fmt.Sprint("k", i), fmt.Sprintf(`{"i":%d}`, i))
		want[topic] = fmt.Sprintf(`k%d={"i":%d}`, i, i)
		mustTrack(t, e, 2, topic, "other", "")
	}
	refs := map[string]uint64{}
	var snap Snapshot
	for topic := range want {
		e.Snapshot(&snap, topic)
		for _, ent := range snap.Entries {
			if ent.Socket == remote(1) {
				refs[topic] = ent.Ref
			}
		}
	}
	got := map[string]string{}
	e.SocketEntries(remote(1), func(topic, key string, meta []byte, ref uint64) bool {
		if _, dup := got[topic]; dup {
			t.Fatalf("%s reported twice", topic)
		}
		if refs[topic] != ref {
			t.Fatalf("%s: ref %d, Snapshot says %d", topic, ref, refs[topic])
		}
		got[topic] = key + "=" + string(meta)
		return true
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("SocketEntries = %v, want %v", got, want)
	}

	// fn may stop the walk, and may call the Engine: removing every entry
	// as it goes still reports each once.
	n := 0
	e.SocketEntries(remote(1), func(string, string, []byte, uint64) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("walk stopped after %d entries, want 10", n)
	}
	var seen []string
	e.SocketEntries(remote(1), func(topic, _ string, _ []byte, _ uint64) bool {
		seen = append(seen, topic)
		if !e.Untrack(remote(1), topic) {
			t.Fatalf("%s: reported but not present", topic)
		}
		return true
	})
	if len(seen) != 100 || e.SocketLen(remote(1)) != 0 || e.SocketLen(2) != 100 {
		t.Fatalf("removed %d while walking; SocketLen %d and %d", len(seen), e.SocketLen(remote(1)), e.SocketLen(2))
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != 100 {
		t.Fatal("a topic reported twice")
	}
	e.SocketEntries(remote(1), func(string, string, []byte, uint64) bool {
		t.Fatal("an empty socket reported an entry")
		return false
	})
}

// TestSocketEntriesUnderConcurrentWrites walks a socket while other
// goroutines add and remove its entries: every entry held throughout is
// reported once, and none that was added during the walk.
func TestSocketEntriesUnderConcurrentWrites(t *testing.T) {
	e := mustNew(t, Config{Capacity: 1024, MaxPerSocket: 1024, Shards: 4})
	s := remote(9)
	for i := range 200 {
		mustTrack(t, e, s, fmt.Sprint("stable", i), "k", "")
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			topic := fmt.Sprint("churn", i%50)
			if err := e.Track(s, topic, "k", nil); err != nil {
				t.Error(err)
				return
			}
			e.Untrack(s, fmt.Sprint("churn", (i+25)%50))
			e.Track(s, fmt.Sprint("stable", i%200), "k", []byte(fmt.Sprintf(`{"v":%d}`, i)))
		}
	}()
	for range 50 {
		stable := map[string]int{}
		e.SocketEntries(s, func(topic, key string, meta []byte, ref uint64) bool {
			if strings.HasPrefix(topic, "stable") {
				stable[topic]++
			}
			return true
		})
		if len(stable) != 200 {
			t.Errorf("walk saw %d of the 200 stable entries", len(stable))
			break
		}
		for topic, n := range stable {
			if n != 1 {
				t.Errorf("%s reported %d times", topic, n)
			}
		}
	}
	close(stop)
	<-done
}

// TestLinearizableAtCapacityPerClass is TestLinearizableAtCapacity with a
// local and a remote class: local sockets share 2 of 4 entries.
func TestLinearizableAtCapacityPerClass(t *testing.T) {
	l := capLimits{capacity: 4, localCap: 2, perSocket: 2, firstRemote: FirstRemoteSocket}
	sockets := []SocketID{1, 2, 3, remote(0), remote(1)}
	for _, shards := range []int{1, 4} {
		for round := range 3 {
			t.Run(fmt.Sprintf("shards=%d/round=%d", shards, round), func(t *testing.T) {
				e := mustNew(t, Config{Capacity: l.capacity, LocalCapacity: l.localCap, MaxPerSocket: l.perSocket, Shards: shards, History: 16})
				history := recordCapHistory(t, e, sockets, 4, *linOps/2, uint64(round*10+shards+100))
				if res := checkLinearizable(t, capModel(l), history); res != porcupine.Ok {
					t.Fatalf("history of %d operations: %s", len(history), res)
				}
			})
		}
	}
}
