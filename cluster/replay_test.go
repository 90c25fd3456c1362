package cluster

import (
	"fmt"
	"slices"
	"testing"

	"github.com/presencekit/presence/engine"
)

// countingStore counts the engine writes the core makes through it.
type countingStore struct {
	store
	writes int
}

func (s *countingStore) TrackWithRef(sock engine.SocketID, topic, key string, meta []byte, ref uint64) (engine.TrackResult, error) {
	s.writes++
	return s.store.TrackWithRef(sock, topic, key, meta, ref)
}

func (s *countingStore) Untrack(sock engine.SocketID, topic string) bool {
	s.writes++
	return s.store.Untrack(sock, topic)
}

func (s *countingStore) UntrackAll(sock engine.SocketID) int {
	s.writes++
	return s.store.UntrackAll(sock)
}

// bigEngines gives the nodes of s engines that hold n entries and more.
func bigEngines(t *testing.T, s *sim, n int, nodes ...int) {
	for _, i := range nodes {
		e, err := engine.New(engine.Config{Capacity: 2*n + 1000, MaxPerSocket: 4, RefTag: s.nodes[i].tag})
		if err != nil {
			t.Fatal(err)
		}
		s.nodes[i].e, s.nodes[i].c.e = e, e
	}
}

// trackMany tracks n entries on node i, the j-th with socket first+j+1,
// key prefix+j and meta {} in room(j), and marks their topics for the
// node's next flush.
func (s *sim) trackMany(i, first, n int, prefix string, room func(int) string) {
	node := s.nodes[i]
	for j := range n {
		topic := room(j)
		if err := node.e.Track(engine.SocketID(first+j+1), topic, fmt.Sprint(prefix, j), []byte(`{}`)); err != nil {
			s.t.Fatal(err)
		}
		node.dirty[topic] = true
	}
}

// deliverUntil delivers the network's messages to node to, one at a time,
// advancing the clock half a heartbeat whenever none is on its way, until
// done reports true; past idle such advances it fails the test with what.
func (s *sim) deliverUntil(t *testing.T, to, idle int, done func() bool, what string) {
	t.Helper()
	for ticks := 0; !done(); {
		if len(s.net) == 0 {
			if ticks++; ticks > idle {
				t.Fatal(what)
			}
			s.advance(simH / 2)
			continue
		}
		s.deliver(to)
	}
}

// pageInFlight reports whether a sync page from node from to node to is
// on its way.
func (s *sim) pageInFlight(from, to int) bool {
	return slices.ContainsFunc(s.net, func(m simMsg) bool {
		return m.from == from && m.subject == s.subj.reply(s.nodes[to].name)
	})
}

// The shape of bigReplay: the owner's entries in its snapshot, and the
// topics they and the deltas after it are in.
const replayBefore, replayTopics = 1000, 50

// bigReplay sets up, on three simulated nodes, node 0 (c) having received
// node 2's (the owner's) snapshot of replayBefore entries, and buffered n
// of its deltas newer than the snapshot and one that changes an entry of
// it, all not yet applied: the next steps apply the snapshot and replay
// the deltas. counter counts c's engine writes.
func bigReplay(t *testing.T, n int) (s *sim, c *simNode, p *peer, counter *countingStore) {
	s = newSim(t, 3)
	bigEngines(t, s, n, 1, 2)
	s.kill(0, true)
	owner := s.nodes[2]
	c = s.nodes[0]
	room := func(i int) string { return fmt.Sprintf("room:%d", i%replayTopics) }
	s.trackMany(2, 0, replayBefore, "u", room)
	s.flush(2)
	s.settle()
	s.start(0) // c comes back, empty, and fetches the owner's snapshot
	bigEngines(t, s, n, 0)
	c.c.piece = applyPiece
	counter = &countingStore{store: c.e}
	c.c.e = counter
	s.stepwise = true
	s.deliverUntil(t, 0, 8, func() bool { return s.pageInFlight(2, 0) }, "the owner never answered c's sync request")
	// The snapshot is taken: what the owner writes now is newer, and
	// reaches c while it syncs.
	s.trackMany(2, replayBefore, n, "v", room)
	s.track(2, 1, "room:0", "u0", `{"v":1}`) // an entry of the snapshot, changed
	s.settle()
	p = c.c.peers[owner.name]
	if p == nil {
		t.Fatal("c never heard of the owner")
	}
	if p.fin == nil || p.bufOps != n+1 || c.e.Len() != 0 {
		t.Fatalf("c should hold %d ops buffered and nothing applied: applying %v, %d buffered, %d entries",
			n+1, p.fin != nil, p.bufOps, c.e.Len())
	}
	return s, c, p, counter
}

// Deltas buffered while a snapshot was on its way, 50,000 of them, are
// replayed a piece at a time after it: no step writes more than a piece
// into the engine, another node's deltas are applied and the clock
// heartbeats between pieces, the owner's batches that arrive during the
// replay wait behind it and are applied in order after it, and the
// mirror ends equal to the owner.
func TestBigReplayAppliedInBoundedPieces(t *testing.T) {
	n := 50_000
	if raceEnabled {
		n = 10_000 // the same pieces, fewer of them
	}
	s, c, p, counter := bigReplay(t, n)
	gaps, resyncs := c.c.st.gaps, c.c.st.resyncs
	steps, replaying, midway := 0, 0, false
	for ; ; steps++ {
		w := counter.writes
		inReplay := p.fin != nil && p.fin.phase == finReplay
		more := c.c.step()
		if d := counter.writes - w; d > applyPiece {
			t.Fatalf("step %d wrote %d times into the engine, more than a piece (%d)", steps, d, applyPiece)
		}
		if inReplay {
			replaying++
		}
		if !more {
			break
		}
		if inReplay && !midway && c.e.Len() > replayBefore+n/2 {
			midway = true
			// The owner changes the entry again: the batch waits behind
			// the replay...
			s.track(2, 1, "room:0", "u0", `{"v":2}`)
			// ...while another node's delta is applied at once...
			s.track(1, 1, "room:b", "bob", `{}`)
			s.settle()
			if c.e.Count("room:b") != 1 || p.fin == nil || len(p.buf) != 1 {
				t.Fatalf("between pieces: room:b holds %d, replaying %v, %d batches buffered behind the replay (want 1)", c.e.Count("room:b"), p.fin != nil, len(p.buf))
			}
			// ...and the clock's tick heartbeats.
			hb := c.c.st.heartbeatsSent
			s.now += simH
			c.c.tick(s.now)
			if c.c.st.heartbeatsSent == hb || p.fin == nil {
				t.Fatal("no heartbeat between pieces of the replay")
			}
		}
	}
	if !midway || replaying < n/applyPiece || p.state != StateUp || p.fin != nil || len(p.buf) != 0 {
		t.Fatalf("midway %v, %d of %d steps replaying, owner %v, buffered %d", midway, replaying, steps, p.state, len(p.buf))
	}
	if c.c.st.gaps != gaps || c.c.st.resyncs != resyncs {
		t.Fatalf("the replay found %d gaps and asked %d snapshots: batches went out of order", c.c.st.gaps-gaps, c.c.st.resyncs-resyncs)
	}
	for i := range replayTopics {
		topic := fmt.Sprintf("room:%d", i)
		if got, want := s.entries(0, topic, false), s.entries(2, topic, true); !slices.Equal(got, want) {
			t.Fatalf("c lists %d entries in %s, the owner %d, or they differ", len(got), topic, len(want))
		}
	}
	if c.e.Len() != replayBefore+n+1 {
		t.Fatalf("c holds %d entries, want %d", c.e.Len(), replayBefore+n+1)
	}
}

// A replay cut short by its owner's restart, silence or goodbye leaves
// nothing of the old incarnation: its entries, the batches buffered
// behind the replay and the rest of the replay go at once, and the node
// then lists exactly what the live owner holds.
func TestReplayCutShort(t *testing.T) {
	const n = 5000
	for _, end := range []string{"restart", "down", "goodbye"} {
		t.Run(end, func(t *testing.T) {
			s, c, p, _ := bigReplay(t, n)
			for p.fin == nil || p.fin.phase != finReplay || c.e.Len() < replayBefore+n/2 {
				if !c.c.step() {
					t.Fatal("the replay ended before it was halfway")
				}
			}
			s.track(2, 1, "room:0", "u0", `{"v":2}`)
			s.settle()
			if len(p.buf) != 1 {
				t.Fatalf("%d batches buffered behind the replay, want 1", len(p.buf))
			}
			old := s.nodes[2].tag
			switch end {
			case "restart":
				s.kill(2, false)
				s.start(2)
				s.track(2, 7, "room:1", "new", `{}`)
				s.settle()
			case "down":
				s.kill(2, false)
				s.advance(simD + simH)
			case "goodbye":
				s.kill(2, true)
				s.settle()
			}
			// What is left of the owner here is of its new incarnation.
			stale := 0
			for _, b := range p.buf {
				for _, o := range b.ops {
					if o.ref>>48 == old {
						stale++
					}
				}
			}
			for _, e := range p.want {
				if e.ref>>48 == old {
					stale++
				}
			}
			if p.fin != nil && p.fin.phase == finReplay || stale > 0 {
				t.Fatalf("after the %s: replaying %v, %d ops and entries of the old incarnation left", end, p.fin != nil, stale)
			}
			if got := s.heldOf(0, old); got != 0 {
				t.Fatalf("after the %s, c still lists %d entries of the old incarnation", end, got)
			}
			s.quiesce()
			for i := range replayTopics {
				topic := fmt.Sprintf("room:%d", i)
				var want []string
				if s.nodes[2].alive {
					want = s.entries(2, topic, true)
				}
				if got := s.entries(0, topic, false); !slices.Equal(got, want) {
					t.Fatalf("c lists %q in %s, want %q", got, topic, want)
				}
			}
			if p := c.c.peers[s.nodes[2].name]; p == nil || p.fin != nil || len(p.buf) != 0 || p.bufOps != 0 {
				t.Fatalf("the owner's peer after the %s: %+v", end, p)
			}
		})
	}
}

// heldOf counts the entries node x lists of the incarnation whose RefTag
// is tag, in replayTopics.
func (s *sim) heldOf(x int, tag uint64) int {
	var snap engine.Snapshot
	n := 0
	for i := range replayTopics {
		s.nodes[x].e.Snapshot(&snap, fmt.Sprintf("room:%d", i))
		for _, e := range snap.Entries {
			if e.Ref>>48 == tag {
				n++
			}
		}
	}
	return n
}

// A gap found while a snapshot is being applied, in a bucket being
// fetched (found at the replay) or in another followed bucket (found at
// once), makes the node fetch those buckets again after it, and only
// those: not every bucket, nor the other buckets it follows.
func TestGapDuringApplyRefetchesItsBucketsOnly(t *testing.T) {
	for _, mode := range []Replication{Interest, All} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newSimWith(t, 2, []Replication{mode, Interest}, numBuckets)
			c, owner := s.nodes[0], s.nodes[1]
			ka, kb, kc := c.c.bucketOf("room:a"), c.c.bucketOf("room:b"), c.c.bucketOf("room:c")
			if ka == kb || kb == kc || ka == kc {
				t.Fatal("the topics share buckets")
			}
			s.settle()
			for i := range 20 {
				s.track(1, engine.SocketID(i+1), "room:a", fmt.Sprintf("u%d", i), `{}`)
			}
			s.track(1, 1, "room:b", "bob", `{}`)
			s.track(1, 1, "room:c", "carol", `{}`)
			s.settle()
			s.advance(simH)
			s.settle()
			s.stepwise = true
			if mode == Interest {
				s.join(0, "room:b")
				s.join(0, "room:c")
				for i := 0; !c.c.fetched("room:b") || !c.c.fetched("room:c"); i++ {
					if i > 8 {
						t.Fatal("c never fetched room:b and room:c")
					}
					s.settle()
					for c.c.step() {
					}
				}
				if c.e.Count("room:b") != 1 || c.e.Count("room:c") != 1 {
					t.Fatalf("c holds %d of room:b, %d of room:c", c.e.Count("room:b"), c.e.Count("room:c"))
				}
				s.join(0, "room:a") // fetches room:a's bucket alone
			} else {
				s.kill(0, true)
				s.settle()
				s.start(0) // fetches every bucket
			}
			var p *peer
			s.deliverUntil(t, 0, 8, func() bool {
				p = c.c.peers[owner.name]
				return p != nil && p.fin != nil
			}, "c never received the owner's snapshot")
			c.c.step() // c applies the snapshot, a piece at a time
			// The owner's next batches in room:a and room:b are lost, and
			// the ones after arrive.
			s.settle()
			s.track(1, 1, "room:a", "u0", `{"v":1}`)
			s.track(1, 1, "room:b", "bob", `{"v":1}`)
			s.net = s.net[:0]
			gaps := c.c.st.gaps
			s.track(1, 1, "room:a", "u0", `{"v":2}`)
			s.track(1, 1, "room:b", "bob", `{"v":2}`)
			s.settle()
			if p.fin == nil {
				t.Fatal("the snapshot was applied before the batches came")
			}
			for c.c.step() {
			}
			var asked []syncReq
			for _, m := range s.net {
				if m.from == 0 && m.subject == s.subj.syncReq(owner.name) {
					r := reader{b: m.data}
					readHeader(&r)
					asked = append(asked, readSyncReq(&r))
				}
			}
			if c.c.st.gaps != gaps+2 || len(asked) != 1 || asked[0].all {
				t.Fatalf("%d gaps, c asks %+v: want 2 gaps and one request of room:a's and room:b's buckets", c.c.st.gaps-gaps, asked)
			}
			got := slices.Sorted(slices.Values(asked[0].buckets))
			if want := slices.Sorted(slices.Values([]uint32{ka, kb})); !slices.Equal(got, want) {
				t.Fatalf("c asks for buckets %v, want %v (room:a's and room:b's; room:c's is %d)", got, want, kc)
			}
			s.quiesce()
			for _, topic := range []string{"room:a", "room:b", "room:c"} {
				if got, want := s.entries(0, topic, false), s.entries(1, topic, true); !slices.Equal(got, want) {
					t.Fatalf("c lists %q in %s, want %q", got, topic, want)
				}
			}
		})
	}
}
