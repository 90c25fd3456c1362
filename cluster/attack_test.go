package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// Attacks on the interest guarantees, in the model: each names the
// guarantee it checks.

// A node that publishes in a bucket for the first time, after the last
// heartbeat the joiner heard: the joiner's first join of a topic in that
// bucket still holds the entry.
func TestJoinSeesEntryOfBucketFirstPublishedSinceLastHeartbeat(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH) // both know each other; a has published nothing
	s.settle()
	s.track(0, 1, "room:a", "alice", `{}`) // a's first entry in the bucket
	s.settle()
	s.join(1, "room:a")
	s.settle() // the clock stands still: no heartbeat comes between
	want := s.entries(0, "room:a", true)
	if got := s.entries(1, "room:a", false); !slices.Equal(got, want) {
		t.Fatalf("b lists %q after its first join, want %q", got, want)
	}
}

// A node's first join right after its Start, before it heard the other
// nodes, still holds their entries when Subscribe returns.
func TestNATSJoinRightAfterStartHoldsTheCluster(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	a := startNode(t, ss[0], "a", replicate(Interest))
	a.track(t, 1, "room:s", "alice", `{}`)
	waitUntil(t, "a publishes", 5*time.Second, func() bool { return a.n.Stats().DeltasSent == 1 })
	b := startNode(t, ss[0], "b", replicate(Interest))
	b.n.Subscribe("room:s")
	if got, want := list(b.e, "room:s", false), list(a.e, "room:s", true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q when its first Subscribe returns, want %q", got, want)
	}
}

// deliverFirst delivers the first message on subject still in the network.
func (s *sim) deliverFirst(subject string) {
	for k, m := range s.net {
		if m.subject == subject {
			s.deliver(k)
			return
		}
	}
	s.t.Fatalf("no message on %s", subject)
}

// A heartbeat that comes right after the regular one, as after a first
// batch in a bucket, judges no batch lost: those the regular one announced
// have a heartbeat's time to arrive.
func TestEarlyHeartbeatJudgesNoGap(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	s.join(1, "room:a")
	s.track(0, 1, "room:a", "alice", `{"v":1}`)
	s.settle()
	s.advance(simH)
	s.settle()
	b := s.nodes[1].c
	gaps, resyncs := b.st.gaps, b.st.resyncs
	s.track(0, 1, "room:a", "alice", `{"v":2}`) // on its way
	s.advance(simH)                             // a's regular heartbeat announces it
	s.deliverFirst(s.subj.stream("a"))
	s.track(0, 2, otherBucket("room:a"), "yan", `{}`) // a's first batch there, and a heartbeat
	s.deliverFirst(s.subj.stream("a"))
	if b.st.gaps != gaps || b.st.resyncs != resyncs {
		t.Fatalf("b counted %d gaps and started %d resyncs for a batch still on its way", b.st.gaps-gaps, b.st.resyncs-resyncs)
	}
	s.settle()
	if got, want := s.entries(1, "room:a", false), s.entries(0, "room:a", true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q, want %q", got, want)
	}
}

// sameBucket returns a topic other than topic in topic's bucket.
func sameBucket(topic string) string {
	c := &core{nbuckets: numBuckets}
	for i := 0; ; i++ {
		if o := fmt.Sprintf("room:z%d", i); c.bucketOf(o) == c.bucketOf(topic) {
			return o
		}
	}
}

// flapStore counts the writes a core makes to topic's entries.
type flapStore struct {
	store
	topic  string
	writes int
}

func (f *flapStore) TrackWithRef(s engine.SocketID, topic, key string, meta []byte, ref uint64) (engine.TrackResult, error) {
	res, err := f.store.TrackWithRef(s, topic, key, meta, ref)
	if topic == f.topic && res != engine.Unchanged {
		f.writes++
	}
	return res, err
}

func (f *flapStore) Untrack(s engine.SocketID, topic string) bool {
	if topic == f.topic {
		f.writes++
	}
	return f.store.Untrack(s, topic)
}

func (f *flapStore) UntrackAll(s engine.SocketID) int {
	f.writes++
	return f.store.UntrackAll(s)
}

// Two topics in one bucket, one followed throughout and one joined, left
// and lingering out: the entries of the one left go after its linger, its
// later deltas stay away, and the followed one is never written again.
func TestTwoTopicsOneBucketLingerNoFlap(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	t1, t2 := "room:a", sameBucket("room:a")
	s.track(0, 1, t1, "alice", `{}`)
	s.track(0, 2, t2, "yan", `{"v":1}`)
	s.settle()
	s.join(1, t1)
	s.settle()
	b := s.nodes[1]
	fs := &flapStore{store: b.c.e, topic: t1}
	b.c.e = fs
	if got := s.entries(1, t2, false); len(got) != 0 {
		t.Fatalf("b lists %q in %s, a topic it is not in", got, t2)
	}
	s.join(1, t2) // fetches the bucket again
	s.settle()
	if got, want := s.entries(1, t2, false), s.entries(0, t2, true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q in %s after joining, want %q", got, t2, want)
	}
	s.leave(1, t2)
	s.track(0, 2, t2, "yan", `{"v":2}`) // within the linger
	s.settle()
	for range 3 * simL / (simH / 2) {
		s.advance(simH / 2)
		s.settle()
		s.track(0, 2, t2, "yan", fmt.Sprintf(`{"v":%d}`, s.now)) // after it too
		s.settle()
	}
	if got := s.entries(1, t2, false); len(got) != 0 {
		t.Fatalf("b lists %q in %s after its linger", got, t2)
	}
	if got, want := s.entries(1, t1, false), s.entries(0, t1, true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q in %s, want %q", got, t1, want)
	}
	if fs.writes != 0 {
		t.Fatalf("b wrote %s's unchanged entries %d times", t1, fs.writes)
	}
	s.join(1, t2) // after the linger: fetched again
	s.settle()
	if got, want := s.entries(1, t2, false), s.entries(0, t2, true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q in %s after joining again, want %q", got, t2, want)
	}
}

// silentPeer announces, on conn, a node "z" that published in topic's
// bucket and never answers a sync request.
func silentPeer(t *testing.T, conn *nats.Conn, topic string) {
	t.Helper()
	c := &core{nbuckets: numBuckets}
	b := appendHeader(nil, kindHeartbeat, "z", 1)
	b = appendHeartbeat(b, heartbeat{seqs: []bseq{{c.bucketOf(topic), 3}}, refTag: 99, buckets: c.nbuckets})
	if err := conn.Publish(subjects{"test"}.stream("z"), b); err != nil {
		t.Fatal(err)
	}
}

// Close while Subscribe waits for a node that does not answer: Subscribe
// returns at once, and calls on the closed node do nothing.
func TestNATSCloseDuringSubscribeFetch(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	b := startNode(t, ss[0], "b", func(c *Config) { c.Replicate, c.DownAfter = Interest, 40*time.Second }) // sync timeout 10 s
	silentPeer(t, b.nc, "room:c")
	waitUntil(t, "b hears z", 5*time.Second, func() bool { return len(b.n.Nodes()) == 1 })
	resyncs := b.n.Stats().Resyncs
	done := make(chan struct{})
	go func() { b.n.Subscribe("room:c"); close(done) }()
	waitUntil(t, "b asks z", 5*time.Second, func() bool { return b.n.Stats().Resyncs > resyncs })
	select {
	case <-done:
		t.Fatal("Subscribe returned while z had not answered")
	default:
	}
	start := time.Now()
	if err := b.n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Subscribe still waits after Close")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	b.n.Subscribe("room:d") // closed: nothing happens, nothing waits
	b.n.Unsubscribe("room:d")
	b.n.Unsubscribe("room:c")
	b.n.Publish("room:c", "ev", nil)
	b.n.Changed("room:c")
	if st := b.n.Stats(); st.TopicsMirrored != 0 || st.RemoteEntries != 0 {
		t.Fatalf("a closed node mirrors %d topics, %d entries", st.TopicsMirrored, st.RemoteEntries)
	}
	b.n.mu.Lock()
	dsubs := len(b.n.dsubs)
	b.n.mu.Unlock()
	b.n.bmu.Lock()
	bsubs := len(b.n.bsubs)
	b.n.bmu.Unlock()
	if dsubs != 0 || bsubs != 0 {
		t.Fatalf("a closed node holds %d delta and %d broadcast subscriptions", dsubs, bsubs)
	}
}

// Many goroutines subscribe to and unsubscribe from one topic while one
// subscriber stays: the topic stays followed, with its entries and its
// broadcast subscription; after the last leave and the linger, all go.
func TestNATSConcurrentSubscribeRefcount(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	a := startNode(t, ss[0], "a", replicate(Interest))
	b := startNode(t, ss[0], "b", func(c *Config) { c.Replicate, c.Linger = Interest, 30*time.Millisecond })
	a.track(t, 1, "room:r", "alice", `{}`)
	b.follow("room:r")
	waitUntil(t, "b lists alice", 5*time.Second, func() bool { return b.e.Count("room:r") == 1 })
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				b.n.Subscribe("room:r")
				b.n.Unsubscribe("room:r")
			}
		}()
	}
	wg.Wait()
	time.Sleep(60 * time.Millisecond) // past a linger: nothing may go
	b.n.mu.Lock()
	in := b.n.c.interest["room:r"]
	b.n.mu.Unlock()
	b.n.bmu.Lock()
	bs := b.n.bsubs["room:r"]
	b.n.bmu.Unlock()
	if in == nil || in.n != 1 || bs == nil || bs.n != 1 || b.e.Count("room:r") != 1 {
		t.Fatalf("after the churn: interest %+v, broadcast subscription %+v, %d entries", in, bs, b.e.Count("room:r"))
	}
	b.n.Unsubscribe("room:r")
	waitUntil(t, "b drops room:r", 5*time.Second, func() bool { return b.e.Count("room:r") == 0 })
	b.n.bmu.Lock()
	left := len(b.n.bsubs)
	b.n.bmu.Unlock()
	if left != 0 {
		t.Fatal("the broadcast subscription stayed")
	}
}

// First joins of other topics, one after each piece of a snapshot being
// applied, as in a reconnect storm: the snapshot still gets applied, and
// the first topic's fetch ends, instead of starting over at each join.
func TestJoinsDuringSnapshotPiecesDoNotStarveIt(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	const joins = 80
	for i := range 40 {
		s.track(0, engine.SocketID(i+1), "room:big", fmt.Sprintf("u%d", i), `{}`)
	}
	for i := range joins {
		s.track(0, 100, fmt.Sprintf("room:n%d", i), "n", `{}`)
	}
	s.settle()
	s.advance(simH)
	s.settle()
	s.stepwise = true
	b := s.nodes[1]
	s.join(1, "room:big")
	s.settle()
	for i := range joins {
		b.c.step() // one piece (b applies 2 entries a piece)
		s.join(1, fmt.Sprintf("room:n%d", i))
		s.settle()
	}
	if !b.c.fetched("room:big") || b.e.Count("room:big") != 40 {
		t.Fatalf("after %d joins, one a piece: room:big fetched %v, %d of 40 entries", joins, b.c.fetched("room:big"), b.e.Count("room:big"))
	}
	s.stepwise = false
	s.stepAll()
	s.settle()
	for i := range joins {
		if topic := fmt.Sprintf("room:n%d", i); !b.c.fetched(topic) || b.e.Count(topic) != 1 {
			t.Fatalf("%s: fetched %v, %d entries", topic, b.c.fetched(topic), b.e.Count(topic))
		}
	}
}

// A first join while another node's large snapshot is being applied, in
// pieces: its fetch, from a third node, ends on its own, while the large
// one is still being applied, rather than queued behind it.
func TestNATSJoinDuringOthersSnapshotPieces(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	ecfg := engine.Config{Capacity: 40000, MaxPerSocket: 40000}
	slow := func(c *Config) { c.Replicate, c.DownAfter = Interest, 8*time.Second } // sync timeout 2 s
	ecfg.RefTag = tags.Add(1)
	a := startNodeEngine(t, ss[0].ClientURL(), "a", ecfg, slow)
	ecfg.RefTag = tags.Add(1)
	b := startNodeEngine(t, ss[0].ClientURL(), "b", ecfg, slow)
	ecfg.RefTag = tags.Add(1)
	c := startNodeEngine(t, ss[0].ClientURL(), "c", ecfg, slow)
	const big = 5000
	for i := range big {
		if err := c.e.Track(engine.SocketID(i+1), "room:big", fmt.Sprintf("u%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	c.n.Changed("room:big")
	a.track(t, 1, "room:small", "alice", `{}`)
	waitUntil(t, "a and c publish", 5*time.Second, func() bool {
		return c.n.Stats().DeltasSent == big && a.n.Stats().DeltasSent == 1
	})
	waitUntil(t, "b's first Heartbeat passed, and b heard that a and c publish", 5*time.Second, func() bool {
		b.n.mu.Lock()
		defer b.n.mu.Unlock()
		pa, pc := b.n.c.peers["a"], b.n.c.peers["c"]
		return b.n.now() >= b.n.heardBy && pa != nil && pc != nil &&
			pa.hb[b.n.c.bucketOf("room:small")] > 0 && pc.hb[b.n.c.bucketOf("room:big")] > 0
	})
	b.n.mu.Lock()
	b.n.c.piece = 1 // a long application of c's snapshot
	b.n.mu.Unlock()
	bigDone := make(chan struct{})
	go func() { b.n.Subscribe("room:big"); close(bigDone) }()
	applying := func() bool {
		b.n.mu.Lock()
		defer b.n.mu.Unlock()
		p := b.n.c.peers["c"]
		return p != nil && p.fin != nil
	}
	waitUntil(t, "b applies c's snapshot", 5*time.Second, applying)
	t0 := time.Now()
	b.n.Subscribe("room:small")
	still := applying()
	t.Logf("Subscribe(room:small) took %v", time.Since(t0))
	if got := b.e.Count("room:small"); got != 1 || !still {
		t.Fatalf("Subscribe(room:small) returned with %d of 1 entries; c's snapshot still being applied: %v", got, still)
	}
	t0 = time.Now()
	<-bigDone
	t.Logf("room:big done %v later", time.Since(t0))
	if got := b.e.Count("room:big"); got != big {
		t.Fatalf("b lists %d of room:big's %d entries", got, big)
	}
}

// dropFirst removes the first message on subject from the network.
func (s *sim) dropFirst(subject string) simMsg {
	for k, m := range s.net {
		if m.subject == subject {
			s.net = slices.Delete(s.net, k, k+1)
			return m
		}
	}
	s.t.Fatalf("no message on %s", subject)
	return simMsg{}
}

// A lost batch of a followed bucket is repaired within two heartbeats,
// the entries it did not touch are not written again, and the batch, when
// it turns up after all, changes nothing.
func TestLostBatchRepairedWithoutFlap(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	s.join(1, "room:a")
	s.track(0, 1, "room:a", "alice", `{"v":1}`)
	s.track(0, 2, "room:a", "bob", `{}`)
	s.settle()
	b := s.nodes[1]
	fs := &flapStore{store: b.c.e, topic: "room:a"}
	b.c.e = fs
	s.track(0, 1, "room:a", "alice", `{"v":2}`)
	lost := s.dropFirst(s.subj.deltas(b.c.bucketOf("room:a")))
	s.settle()
	for range 2 {
		s.advance(simH)
		s.settle()
	}
	want := s.entries(0, "room:a", true)
	if got := s.entries(1, "room:a", false); !slices.Equal(got, want) {
		t.Fatalf("b lists %q two heartbeats after the loss, want %q", got, want)
	}
	if fs.writes != 1 {
		t.Fatalf("b wrote room:a %d times for one update", fs.writes)
	}
	s.net = append(s.net, lost) // the lost batch turns up, late
	s.settle()
	if got := s.entries(1, "room:a", false); !slices.Equal(got, want) || fs.writes != 1 {
		t.Fatalf("after the late batch b lists %q (%d writes), want %q", got, fs.writes, want)
	}
}

// Many topics whose lingers end at once all go in one tick, and a topic
// still followed keeps its entries.
func TestManyTopicsLingerOutAtOnce(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	const topics = 40
	for i := range topics {
		s.track(0, engine.SocketID(2*i+1), fmt.Sprintf("room:m%d", i), "u", `{}`)
		s.track(0, engine.SocketID(2*i+2), fmt.Sprintf("room:m%d", i), "v", `{}`)
	}
	s.track(0, 100, "room:keep", "k", `{}`)
	s.settle()
	s.join(1, "room:keep")
	for i := range topics {
		s.join(1, fmt.Sprintf("room:m%d", i))
	}
	s.settle()
	b := s.nodes[1].c
	if got := b.remoteEntries(); got != 2*topics+1 {
		t.Fatalf("b mirrors %d entries, want %d", got, 2*topics+1)
	}
	for i := range topics {
		s.leave(1, fmt.Sprintf("room:m%d", i))
	}
	s.advance(simL)
	s.settle()
	if got := b.remoteEntries(); got != 1 || b.st.lingerDrops != topics || s.nodes[1].e.Count("room:keep") != 1 {
		t.Fatalf("after the lingers: %d remote entries, %d drops, room:keep %d", got, b.st.lingerDrops, s.nodes[1].e.Count("room:keep"))
	}
	for i := range topics {
		if k := b.bucketOf(fmt.Sprintf("room:m%d", i)); b.follows(k) && k != b.bucketOf("room:keep") {
			t.Fatalf("bucket %d still followed", k)
		}
	}
	s.track(0, 100, "room:keep", "k", `{"v":2}`)
	s.settle()
	if got, want := s.entries(1, "room:keep", false), s.entries(0, "room:keep", true); !slices.Equal(got, want) {
		t.Fatalf("b lists %q, want %q", got, want)
	}
}

// keys lists the keys topic holds on e, sorted.
func keys(e *engine.Engine, topic string) []string {
	var snap engine.Snapshot
	e.Snapshot(&snap, topic)
	var out []string
	for _, ent := range snap.Entries {
		out = append(out, string(ent.Key))
	}
	slices.Sort(out)
	return out
}

// A first join while the owner keeps writing the topic fast: when
// Subscribe returns, every key is there, and the views converge once the
// writes stop.
func TestNATSFirstJoinWhileOwnerWritesFast(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 2, nil, nil)
	a := startNode(t, ss[0], "a", replicate(Interest))
	b := startNode(t, ss[1], "b", replicate(Interest))
	const users = 100
	for i := range users {
		a.track(t, engine.SocketID(i+1), "room:f", fmt.Sprintf("u%03d", i), `{}`)
	}
	waitUntil(t, "a publishes, and b heard it", 5*time.Second, func() bool {
		b.n.mu.Lock()
		defer b.n.mu.Unlock()
		p := b.n.c.peers["a"]
		return p != nil && p.hb[b.n.c.bucketOf("room:f")] > 0
	})
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := engine.SocketID(i%users + 1)
			if err := a.e.Track(s, "room:f", fmt.Sprintf("u%03d", i%users), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Error(err)
				return
			}
			a.n.Changed("room:f")
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the writes run
	b.n.Subscribe("room:f")
	got := keys(b.e, "room:f")
	close(stop)
	<-writing
	if want := keys(a.e, "room:f"); !slices.Equal(got, want) {
		t.Fatalf("b lists %d keys when Subscribe returns, want %d", len(got), len(want))
	}
	waitUntil(t, "a and b converge", 5*time.Second, func() bool { return converged([]*testNode{a, b}, "room:f") })
}

// A join that races an owner's first batch in the bucket, published before
// the joiner subscribed and so never delivered to it: the heartbeat that
// follows the batch makes the joiner fetch it at once, not two heartbeats
// later.
func TestJoinRacingFirstBatchFetchesAtItsHeartbeat(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	s.track(0, 1, "room:a", "alice", `{}`) // the batch, and a heartbeat
	s.join(1, "room:a")                    // before b heard either
	s.dropFirst(s.subj.deltas(s.nodes[1].c.bucketOf("room:a")))
	s.settle() // the heartbeat; the clock stands still
	want := s.entries(0, "room:a", true)
	if got := s.entries(1, "room:a", false); !slices.Equal(got, want) {
		t.Fatalf("b lists %q after a's heartbeat, want %q", got, want)
	}
}

// A first join while a peer restarts, before this node heard the new
// incarnation: the new incarnation answers, and what the join lists is
// its entries, with no ghost of the old one.
func TestJoinDuringPeerRestartNoGhost(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.settle()
	s.advance(simH)
	s.settle()
	s.track(0, 1, "room:a", "alice", `{"old":1}`)
	s.track(0, 2, "room:a", "bob", `{}`)
	s.settle()
	s.advance(simH)
	s.settle()
	s.kill(0, false)
	s.net = nil // the old incarnation's last words are lost
	s.start(0)
	s.net = nil // and the new one's first heartbeat too
	s.track(0, 1, "room:a", "alice", `{"new":1}`)
	s.net = nil         // and its first batch
	s.join(1, "room:a") // asks "a": the new incarnation answers
	s.settle()
	want := s.entries(0, "room:a", true)
	if got := s.entries(1, "room:a", false); !slices.Equal(got, want) {
		t.Fatalf("b lists %q after its join, want %q", got, want)
	}
}

// Topics of any length the engine allows, and the empty topic, join and
// broadcast without breaking the node's NATS connection: a subject longer
// than the server's control line would make it close the connection.
func TestNATSLongAndEmptyTopicsKeepTheConnection(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	ecfg := testEngine()
	ecfg.MaxTopicLen = 65536
	a := startNodeEngine(t, ss[0].ClientURL(), "a", ecfg, replicate(Interest))
	ecfg.RefTag = tags.Add(1)
	b := startNodeEngine(t, ss[0].ClientURL(), "b", ecfg, replicate(Interest))
	var mu sync.Mutex
	got := map[string]int{}
	if err := b.n.Attach(channel.ClusterHooks{Broadcast: func(topic, event string, _ []byte) {
		mu.Lock()
		got[topic]++
		mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 60000)
	b.n.Subscribe("") // the engine refuses it; the cluster must not break
	b.n.Subscribe(long)
	a.track(t, 1, long, "alice", `{}`)
	waitUntil(t, "b lists alice", 5*time.Second, func() bool { return b.e.Count(long) == 1 })
	a.n.Publish("", "ev", nil)       // not a topic: dropped, and nothing breaks
	a.n.Publish(long[1:], "ev", nil) // a topic b is not in
	a.n.Publish(long, "ev", nil)
	waitUntil(t, "b gets the broadcast", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[long] == 1
	})
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("b got broadcasts of %d topics", len(got))
	}
	mu.Unlock()
	if !a.nc.IsConnected() || !b.nc.IsConnected() {
		t.Fatalf("connections: a %v (%v), b %v (%v)", a.nc.Status(), a.nc.LastError(), b.nc.Status(), b.nc.LastError())
	}
}
