package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A follower keeps a topic's state as a client of the incremental diff does:
// from a Snapshot, then by applying each diff (leaves first, then joins).

// followState is a client's copy of a topic, by identity: a ref for the
// Changes follower, key+meta for the AppendChanges one.
type followState map[string]string // identity -> key

func (st followState) canonical() string {
	ids := make([]string, 0, len(st))
	for id := range st {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, "|")
}

func refID(e Entry) string { return fmt.Sprintf("%d", e.Ref) }

func jsonID(l listed) string { return l.Key + "=" + string(l.Meta) }

// applyChanges applies ch to st and reports an error for a leave of an
// entry st does not hold.
func (st followState) applyChanges(ch *Changes) error {
	if ch.Full {
		clear(st)
		for _, j := range ch.Joins {
			st[refID(j)] = string(j.Key)
		}
		return nil
	}
	for _, l := range ch.Leaves {
		if _, ok := st[refID(l)]; !ok {
			return fmt.Errorf("leave of ref %d that the client does not hold", l.Ref)
		}
		delete(st, refID(l))
	}
	for _, j := range ch.Joins {
		st[refID(j)] = string(j.Key)
	}
	return nil
}

// applyJSON applies one AppendChanges output to st.
func (st followState) applyJSON(b []byte, full bool) error {
	var d diffJSON
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("bad diff %s: %v", b, err)
	}
	if full {
		clear(st)
	}
	for _, l := range d.Leaves {
		if _, ok := st[jsonID(l)]; !ok {
			return fmt.Errorf("leave of %s that the client does not hold", jsonID(l))
		}
		delete(st, jsonID(l))
	}
	for _, j := range d.Joins {
		st[jsonID(j)] = j.Key
	}
	return nil
}

func (st followState) distinctKeys() int {
	seen := map[string]bool{}
	for _, k := range st {
		seen[k] = true
	}
	return len(seen)
}

// TestFollowerNeverLosesAnUpdatedEntry follows a topic whose 8 entries are
// only ever updated in place, at full speed: after every diff the client
// must still hold all 8 keys. A diff that carried an update's leave without
// its join dropped one for the length of a diff.
func TestFollowerNeverLosesAnUpdatedEntry(t *testing.T) {
	const sockets = 8
	for _, form := range []string{"ChangesSince", "AppendChanges"} {
		t.Run(form, func(t *testing.T) {
			e := mustNew(t, Config{Capacity: 64, History: 1024})
			for s := SocketID(1); s <= sockets; s++ {
				mustTrack(t, e, s, "room", fmt.Sprintf("user%d", s), `{"v":0}`)
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var meta []byte
				for v := 1; !stop.Load(); v++ {
					s := SocketID(v%sockets + 1)
					meta = fmt.Appendf(meta[:0], `{"v":%d}`, v)
					if err := e.Track(s, "room", fmt.Sprintf("user%d", s), meta); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			defer func() { stop.Store(true); wg.Wait() }()

			st := followState{}
			var snap Snapshot
			var ch Changes
			e.Snapshot(&snap, "room")
			for _, en := range snap.Entries {
				if form == "ChangesSince" {
					st[refID(en)] = string(en.Key)
				} else {
					st[string(en.Key)+"="+string(en.Meta)] = string(en.Key)
				}
			}
			cur := snap.Cursor
			var buf []byte
			nonEmpty := 0
			deadline := time.Now().Add(2 * time.Second)
			for nonEmpty < 300 && time.Now().Before(deadline) {
				var err error
				var changed bool
				if form == "ChangesSince" {
					e.ChangesSince(&ch, "room", cur)
					cur, changed = ch.Next, ch.Full || len(ch.Joins)+len(ch.Leaves) > 0
					err = st.applyChanges(&ch)
				} else {
					var full bool
					buf, cur, full = e.AppendChanges(buf[:0], "room", cur)
					changed = full || !strings.HasPrefix(string(buf), `{"joins":[],"leaves":[]}`)
					err = st.applyJSON(buf, full)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !changed {
					continue
				}
				nonEmpty++
				if n := st.distinctKeys(); n != sockets || len(st) != sockets {
					t.Fatalf("after non-empty diff %d the client holds %d keys in %d entries, want %d", nonEmpty, n, len(st), sockets)
				}
				if nonEmpty%16 == 0 {
					time.Sleep(50 * time.Microsecond) // let the writer run ahead
				}
			}
			if nonEmpty < 20 {
				t.Fatalf("only %d non-empty diffs", nonEmpty)
			}
		})
	}
}

// TestFollowerReplaysToStatesTheTopicWentThrough follows a churning topic
// (tracks, updates in place, untracks, blocks running dry) from a snapshot
// with diffs. After each diff the client must hold exactly a state the
// topic went through, never an older one than it held before, and never
// one older than every operation that returned before the read began.
func TestFollowerReplaysToStatesTheTopicWentThrough(t *testing.T) {
	ops := 20000
	if testing.Short() || raceEnabled {
		ops = 5000 // the race detector makes each op some ten times dearer
	}
	for _, form := range []string{"ChangesSince", "AppendChanges"} {
		t.Run(form, func(t *testing.T) {
			// A small pool with little history: blocks run dry and the ring
			// laps the follower now and then.
			e := mustNew(t, Config{Capacity: 24, History: 64, MaxPerSocket: 24})
			// states[i] is the topic after op i, by identity, written before
			// done reaches i; done counts the ops that have returned.
			states := make([]string, ops+1)
			var done atomic.Int64
			identity := func(en Entry) string {
				if form == "ChangesSince" {
					return refID(en)
				}
				return string(en.Key) + "=" + string(en.Meta)
			}
			record := func(i int) {
				var snap Snapshot
				e.Snapshot(&snap, "room")
				st := followState{}
				for _, en := range snap.Entries {
					st[identity(en)] = string(en.Key)
				}
				states[i] = st.canonical()
			}
			record(0)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(1, 2))
				var meta []byte
				for i := 1; i <= ops; i++ {
					s := SocketID(rng.IntN(16) + 1)
					key := fmt.Sprintf("user%d", s)
					switch r := rng.IntN(10); {
					case r < 6: // a track, most often an update in place
						meta = fmt.Appendf(meta[:0], `{"v":%d,"pad":"%s"}`, i, strings.Repeat("x", rng.IntN(200)))
						if err := e.Track(s, "room", key, meta); err != nil && !errors.Is(err, ErrFull) {
							t.Error(err)
							done.Store(int64(ops))
							return
						}
					case r < 9:
						e.Untrack(s, "room")
					default: // another topic takes blocks and ring space
						meta = fmt.Appendf(meta[:0], `{"v":%d,"pad":"%s"}`, i, strings.Repeat("y", 200))
						if e.Track(s, "other", key, meta) != nil {
							e.Untrack(s, "other")
						}
					}
					record(i)
					done.Store(int64(i))
				}
			}()

			st := followState{}
			var snap Snapshot
			var ch Changes
			e.Snapshot(&snap, "room")
			for _, en := range snap.Entries {
				st[identity(en)] = string(en.Key)
			}
			cur := snap.Cursor
			var buf []byte
			held := 0 // the index of the state the client matched last
			diffs := 0
			for {
				before := int(done.Load())
				var err error
				if form == "ChangesSince" {
					e.ChangesSince(&ch, "room", cur)
					cur = ch.Next
					err = st.applyChanges(&ch)
				} else {
					var full bool
					buf, cur, full = e.AppendChanges(buf[:0], "room", cur)
					err = st.applyJSON(buf, full)
				}
				if err != nil {
					t.Fatal(err)
				}
				after := int(done.Load())
				// Op after+1 may be under way; its state is recorded only
				// when it returns.
				got := st.canonical()
				lo := max(before, held)
				found := -1
				for i := lo; i <= after; i++ {
					if states[i] == got {
						found = i
						break
					}
				}
				if found < 0 && after < ops {
					// The op running when the read ended may have been read
					// whole; no later one had begun. Wait for it to return
					// (a loaded machine may hold the writer off for long).
					for wait := time.Now().Add(10 * time.Second); int(done.Load()) <= after && time.Now().Before(wait); {
						time.Sleep(10 * time.Microsecond)
					}
					if int(done.Load()) > after && states[after+1] == got {
						found = after + 1
					}
				}
				if found < 0 {
					t.Fatalf("diff %d: the client holds a state the topic did not go through from op %d (held %d, %d ops returned before the read): %q",
						diffs, lo, held, before, got)
				}
				held = found
				diffs++
				if before == ops {
					break
				}
			}
			wg.Wait()
			t.Logf("%d diffs over %d ops", diffs, ops)
		})
	}
}
