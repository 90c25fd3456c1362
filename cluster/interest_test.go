package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/engine"
)

// A first join fetches the topic's entries from the nodes that published
// in its bucket at once, not at their next heartbeat, and the node follows
// nothing else.
func TestJoinFetchesBeforeAnyHeartbeat(t *testing.T) {
	s := newSimWith(t, 3, []Replication{Interest, Interest, Interest}, numBuckets)
	s.settle()
	s.track(0, 1, "room:a", "alice", `{}`)
	s.track(1, 1, "room:a", "bob", `{}`)
	s.track(1, 2, "room:b", "bea", `{}`)
	s.settle()
	s.advance(simH) // heartbeats: c learns who published in which bucket
	s.settle()
	c := s.nodes[2]
	if got := c.e.Count("room:a"); got != 0 {
		t.Fatalf("c mirrors %d entries of room:a before any join", got)
	}
	s.join(2, "room:a")
	if c.c.fetched("room:a") {
		t.Fatal("the join fetched nothing")
	}
	s.settle() // the fetch's requests and pages; the clock stands still
	if !c.c.fetched("room:a") {
		t.Fatal("the fetch did not end")
	}
	want := append(s.entries(0, "room:a", true), s.entries(1, "room:a", true)...)
	sort.Strings(want)
	if got := s.entries(2, "room:a", false); !slices.Equal(got, want) {
		t.Fatalf("c lists %q after the join, want %q", got, want)
	}
	if got := c.e.Count("room:b"); got != 0 {
		t.Fatalf("c mirrors %d entries of room:b, a topic it is not in", got)
	}
	if c.c.st.fetches == 0 || len(c.c.rtopics) != 1 || c.c.remoteEntries() != 2 {
		t.Fatalf("fetches %d, topics mirrored %d, remote entries %d", c.c.st.fetches, len(c.c.rtopics), c.c.remoteEntries())
	}
	// Deltas keep coming while c follows the topic.
	s.track(0, 1, "room:a", "alice", `{"s":"away"}`)
	s.settle()
	if got := s.entries(2, "room:a", false); !slices.Contains(got, s.entries(0, "room:a", true)[0]) {
		t.Fatalf("c lists %q: alice's update did not arrive", got)
	}
	// After the last leave and the linger, the entries go.
	s.leave(2, "room:a")
	s.advance(simL - 1)
	if c.e.Count("room:a") != 2 || c.c.st.lingerDrops != 0 {
		t.Fatal("the entries went before the linger ended")
	}
	s.advance(1)
	if c.e.Count("room:a") != 0 || c.c.st.lingerDrops != 1 || len(c.c.rtopics) != 0 || c.c.follows(c.c.bucketOf("room:a")) {
		t.Fatalf("after the linger: %d entries, %d drops, %d topics, bucket followed %v",
			c.e.Count("room:a"), c.c.st.lingerDrops, len(c.c.rtopics), c.c.follows(c.c.bucketOf("room:a")))
	}
}

// A socket that joins again within the linger finds the topic mirrored:
// nothing is fetched.
func TestJoinWithinLingerFetchesNothing(t *testing.T) {
	s := newSimWith(t, 2, []Replication{Interest, Interest}, numBuckets)
	s.track(0, 1, "room:a", "alice", `{}`)
	s.advance(simH)
	s.settle()
	s.join(1, "room:a")
	s.settle()
	b := s.nodes[1]
	fetches := b.c.st.fetches
	s.leave(1, "room:a")
	s.advance(simL / 2)
	s.join(1, "room:a")
	if !b.c.fetched("room:a") || b.c.st.fetches != fetches || b.e.Count("room:a") != 1 {
		t.Fatalf("rejoin within the linger: fetched %v, fetches %d -> %d, count %d", b.c.fetched("room:a"), fetches, b.c.st.fetches, b.e.Count("room:a"))
	}
	for range 2 * simL / (simH / 2) {
		s.advance(simH / 2)
		s.settle()
	}
	if b.e.Count("room:a") != 1 || b.c.st.lingerDrops != 0 {
		t.Fatal("a topic with a subscriber was dropped")
	}
}

// presenceState reads frames until the first presence_state and returns
// its keys.
func (c *wsClient) presenceState() []string {
	c.t.Helper()
	var keys []string
	c.until(func(f []json.RawMessage, event string) bool {
		if event != "presence_state" {
			return false
		}
		var st metas
		if err := json.Unmarshal(f[4], &st); err != nil {
			c.t.Fatal(err)
		}
		for k := range st {
			keys = append(keys, k)
		}
		return true
	})
	sort.Strings(keys)
	return keys
}

// Under Interest a node that joins a topic late, the first of its
// sockets, answers the join with the whole cluster's roster in its first
// presence_state, and mirrors that topic alone.
func TestNATSLateJoinerFirstPresenceStateHoldsTheCluster(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 3, nil, nil)
	var nodes []*testNode
	for i, s := range ss {
		nodes = append(nodes, startNode(t, s, fmt.Sprintf("n%d", i), replicate(Interest)))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	var want []string
	for i := range 200 {
		a.track(t, engine.SocketID(i+1), "room:late", fmt.Sprintf("a%d", i), `{}`)
		a.track(t, engine.SocketID(i+1), "room:other", fmt.Sprintf("x%d", i), `{}`)
		want = append(want, fmt.Sprintf("a%d", i))
	}
	for i := range 100 {
		b.track(t, engine.SocketID(i+1), "room:late", fmt.Sprintf("b%d", i), `{}`)
		want = append(want, fmt.Sprintf("b%d", i))
	}
	want = append(want, "carol")
	sort.Strings(want)
	// a and b published, and c heard their heartbeats since.
	waitUntil(t, "a and b publish", 5*time.Second, func() bool {
		return a.n.Stats().DeltasSent == 400 && b.n.Stats().DeltasSent == 100
	})
	hb := c.n.Stats().HeartbeatsReceived
	waitUntil(t, "c hears both after that", 5*time.Second, func() bool { return c.n.Stats().HeartbeatsReceived >= hb+4 })

	carol := dialJoin(t, startChatServer(t, c), "carol", "room:late")
	if got := carol.presenceState(); !slices.Equal(got, want) {
		t.Fatalf("carol's first presence_state holds %d keys, want %d", len(got), len(want))
	}
	if st := c.n.Stats(); st.TopicsMirrored != 1 || st.RemoteEntries != 300 || st.SnapshotFetches == 0 {
		t.Fatalf("c mirrors %d topics, %d remote entries, after %d fetches: want room:late's 300 alone", st.TopicsMirrored, st.RemoteEntries, st.SnapshotFetches)
	}
	if c.e.Count("room:other") != 0 {
		t.Fatal("c mirrors room:other")
	}
}

// otherBucket returns a topic whose bucket is not topic's.
func otherBucket(topic string) string {
	c := &core{nbuckets: numBuckets}
	for i := 0; ; i++ {
		if o := fmt.Sprintf("room:y%d", i); c.bucketOf(o) != c.bucketOf(topic) {
			return o
		}
	}
}

// A node that left a topic, once the linger ended, receives none of its
// deltas: NATS delivers it none, counted at the node's subscriptions.
func TestNATSLeftTopicStopsItsDeltas(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	a := startNode(t, ss[0], "a", replicate(Interest))
	c := startNode(t, ss[0], "c", func(cfg *Config) { cfg.Replicate, cfg.Linger = Interest, 50*time.Millisecond })
	const x = "room:x"
	y := otherBucket(x)
	c.follow(x, y)
	a.track(t, 1, x, "alice", `{}`)
	a.track(t, 1, y, "yan", `{}`)
	waitUntil(t, "c lists both", 5*time.Second, func() bool { return c.e.Count(x) == 1 && c.e.Count(y) == 1 })
	c.n.Unsubscribe(x)
	waitUntil(t, "c drops x after the linger", 5*time.Second, func() bool { return c.e.Count(x) == 0 })
	if st := c.n.Stats(); st.LingerDrops != 1 || st.TopicsMirrored != 1 {
		t.Fatalf("after the linger: %+v", st)
	}
	before := c.n.Stats().BatchesReceived
	sentBefore := a.n.Stats().BatchesSent
	for i := range 50 {
		a.track(t, 1, x, "alice", fmt.Sprintf(`{"n":%d}`, i))
		time.Sleep(3 * DefaultFlushInterval) // one batch each, mostly
	}
	// A last update of y, which c follows, comes after x's on the same
	// connection: once c has it, it would have had x's.
	a.track(t, 1, y, "yan", `{"n":1}`)
	waitUntil(t, "c lists yan's update", 5*time.Second, func() bool {
		return slices.ContainsFunc(list(c.e, y, false), func(s string) bool { return s[:len(`yan|{"n":1}`)] == `yan|{"n":1}` })
	})
	sent := a.n.Stats().BatchesSent - sentBefore
	if got := c.n.Stats().BatchesReceived - before; got != 1 || sent < 2 {
		t.Fatalf("c received %d batches of the %d a sent: want y's last one only", got, sent)
	}
	if c.e.Count(x) != 0 {
		t.Fatal("c mirrors x again")
	}
}

// BenchmarkFirstJoin measures Subscribe on a node whose socket is the
// first in a topic: 3 nodes on 3 routed NATS servers on loopback, two of
// them with 20 entries each in every topic. Under Interest it includes
// the fetch of the topic's 40 entries; under All, the baseline, only the
// confirmation of the broadcast subscription. Each join is a first one:
// the node leaves and waits out a short linger between joins. Run it with
// -benchtime=200x or more for a meaningful p99.
func BenchmarkFirstJoin(b *testing.B) {
	for _, r := range []Replication{All, Interest} {
		b.Run(r.String(), func(b *testing.B) { benchmarkFirstJoin(b, r) })
	}
}

func benchmarkFirstJoin(b *testing.B, r Replication) {
	ss := startNATS(b, 3, nil, nil)
	mode := func(c *Config) { c.Replicate, c.Linger = r, time.Millisecond }
	owners := []*testNode{startNode(b, ss[0], "a", mode), startNode(b, ss[1], "b", mode)}
	c := startNode(b, ss[2], "c", mode)
	const topics, per = 50, 20
	for _, o := range owners {
		for i := range topics * per {
			o.track(b, engine.SocketID(i%per+1), fmt.Sprintf("room:%d", i/per), fmt.Sprintf("%s%d", o.name, i), `{}`)
		}
	}
	waitUntil(b, "the owners publish", 10*time.Second, func() bool {
		return owners[0].n.Stats().DeltasSent == topics*per && owners[1].n.Stats().DeltasSent == topics*per
	})
	hb := c.n.Stats().HeartbeatsReceived
	waitUntil(b, "c hears both after that", 5*time.Second, func() bool { return c.n.Stats().HeartbeatsReceived >= hb+4 })
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		topic := fmt.Sprintf("room:%d", i%topics)
		start := time.Now()
		c.n.Subscribe(topic)
		took = append(took, time.Since(start))
		b.StopTimer()
		if r == Interest && c.e.Count(topic) != 2*per {
			b.Fatalf("c holds %d entries of %s after the join, want %d", c.e.Count(topic), topic, 2*per)
		}
		c.n.Unsubscribe(topic)
		if r == Interest {
			waitUntil(b, "the linger ends", 5*time.Second, func() bool { return c.e.Count(topic) == 0 })
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// A node applying a snapshot of 100,000 entries keeps heartbeating and
// applying the other nodes' deltas: the largest gap between its
// heartbeats stays within 2 Heartbeat, no peer is declared down, and a
// prober that takes its lock all along never waits for more than a small
// part of the application: the snapshot is applied in pieces, the lock
// free in between.
func TestNATSBigSnapshotDoesNotStall(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 entries")
	}
	n := 100_000
	if raceEnabled {
		n = 10_000 // the same pieces, fewer of them
	}
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	big := func() engine.Config { return engine.Config{Capacity: 2 * n, MaxPerSocket: n, RefTag: tags.Add(1)} }
	// A Heartbeat well above the scheduling noise of a loaded machine,
	// which a snapshot applied in one piece (0.5 to 1.4 s on a loaded
	// 2-core machine) mostly exceeds twice; the prober below tells pieces
	// apart on any machine. A DownAfter long enough for a's snapshot to
	// be paged (4 MiB, kept for 4 sync timeouts).
	const hb = 300 * time.Millisecond
	cfg := func(r Replication) func(c *Config) {
		return func(c *Config) { c.Replicate, c.Heartbeat, c.DownAfter = r, hb, 2*time.Second }
	}
	// a and b mirror nothing of each other: c alone applies a's entries.
	a := startNodeEngine(t, ss[0].ClientURL(), "a", big(), cfg(Interest))
	b := startNodeEngine(t, ss[0].ClientURL(), "b", big(), cfg(Interest))
	for i := range n {
		if err := a.e.Track(engine.SocketID(i+1), fmt.Sprintf("room:%d", i%100), fmt.Sprintf("user%d", i), []byte(`{"s":"on"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		a.n.Changed(fmt.Sprintf("room:%d", i))
	}
	waitUntil(t, "a publishes", 20*time.Second, func() bool { return a.n.Stats().DeltasSent == uint64(n) })

	// c's heartbeats, as a fourth party on the NATS server sees them.
	var mu sync.Mutex
	var beats []time.Time
	watch, err := nats.Connect(ss[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	sub, err := watch.Subscribe("test.n.c", func(m *nats.Msg) {
		r := reader{b: m.Data}
		if h := readHeader(&r); h.kind == kindHeartbeat {
			mu.Lock()
			beats = append(beats, time.Now())
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	watch.Flush()

	c := startNodeEngine(t, ss[0].ClientURL(), "c", big(), cfg(All))
	if raceEnabled {
		// Engine writes are tens of times slower: a smaller piece takes
		// the few milliseconds that one of applyPiece takes without.
		c.n.mu.Lock()
		c.n.c.piece = applyPiece / 8
		c.n.mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// b changes its entry all along: c applies b's deltas meanwhile.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20_000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, _, err := b.e.TrackRef(1, "room:b", "bob", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Error(err)
				return
			}
			b.n.Changed("room:b")
		}
	}()
	// The prober takes c's lock all along, and notes how long it waited
	// and how many entries c held once it had it.
	var probes []lockProbe
	probeLock(c, stop, &wg, &probes)
	var bApplied bool // c applied a delta of b while a's snapshot was being applied
	waitUntil(t, "c holds a's entries", 60*time.Second, func() bool {
		c.n.mu.Lock()
		pa := c.n.c.peers["a"]
		applying := pa != nil && pa.fin != nil
		c.n.mu.Unlock()
		if applying && c.n.Stats().DeltasApplied > 0 {
			bApplied = true
		}
		return c.e.Len() >= n+1
	})
	// Two heartbeats more, so that a gap that the application caused is
	// seen whole.
	mu.Lock()
	seen := len(beats)
	mu.Unlock()
	waitUntil(t, "two heartbeats of c after", 10*hb, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(beats) >= seen+2
	})
	close(stop)
	wg.Wait()
	// The application: from the last probe that saw none of a's entries
	// to the first that saw them all.
	from, to := -1, -1
	for i, p := range probes {
		if p.held < 2 {
			from = i
		}
		if p.held >= n && to < 0 {
			to = i
		}
	}
	if from < 0 || to <= from {
		t.Fatalf("the prober saw no application: from probe %d to %d of %d", from, to, len(probes))
	}
	took := probes[to].at.Add(probes[to].waited).Sub(probes[from].at)
	var held time.Duration
	for _, p := range probes[from+1 : to+1] {
		held = max(held, p.waited)
	}
	mu.Lock()
	defer mu.Unlock()
	var worst time.Duration
	for i := 1; i < len(beats); i++ {
		worst = max(worst, beats[i].Sub(beats[i-1]))
	}
	t.Logf("%d heartbeats of c, largest gap %v; the application took %v, over %d probes of c's lock, which waited %v at the longest; b's deltas applied during a's snapshot: %v",
		len(beats), worst, took, to-from, held, bApplied)
	// Applied in one piece, the snapshot holds the lock throughout: one
	// probe waits for most of it (85% to 99% measured); in pieces, for
	// 2% to 15%.
	if held > took/2 {
		t.Errorf("a probe waited %v for c's lock, more than half the application's %v: it was not applied in pieces", held, took)
	}
	if worst > 2*hb {
		t.Errorf("c's heartbeats were %v apart, more than 2 Heartbeat (%v)", worst, 2*hb)
	}
	for _, nd := range []*testNode{a, b, c} {
		if st := nd.n.Stats(); st.NodesDown != 0 {
			t.Errorf("%s declared %d nodes down", nd.name, st.NodesDown)
		}
	}
	if !bApplied {
		t.Error("c applied none of b's deltas while it applied a's snapshot")
	}
}

// A snapshot of 100,000 entries is applied a piece at a time: between
// pieces the node heartbeats and applies another node's deltas.
func TestSnapshotAppliedInBoundedPieces(t *testing.T) {
	n := 100_000
	if raceEnabled {
		n = 10_000 // the same pieces, fewer of them
	}
	s := newSim(t, 3)
	big := func(i int) {
		e, err := engine.New(engine.Config{Capacity: 2 * n, MaxPerSocket: 4, RefTag: s.nodes[i].tag})
		if err != nil {
			t.Fatal(err)
		}
		s.nodes[i].e, s.nodes[i].c.e = e, e
	}
	big(1)
	big(2)
	s.kill(0, true)
	owner, c := s.nodes[2], s.nodes[0]
	s.trackMany(2, 0, n, "u", func(i int) string { return fmt.Sprintf("room:%d", i%100) })
	s.flush(2)
	s.settle()
	s.start(0) // c comes back, empty, and fetches the owner's snapshot
	big(0)
	c.c.piece = 1024
	s.stepwise = true
	var p *peer
	s.deliverUntil(t, 0, 4, func() bool {
		p = c.c.peers[owner.name]
		return p != nil && p.fin != nil
	}, "c never received the whole snapshot")
	steps, midway := 0, false
	for {
		before := c.e.Len()
		more := c.c.step()
		steps++
		if grew := c.e.Len() - before; grew > c.c.piece {
			t.Fatalf("a step stored %d entries, more than a piece (%d)", grew, c.c.piece)
		}
		if !more {
			break
		}
		if !midway && c.e.Len() > n/2 {
			midway = true
			// Another node's delta is applied between two pieces...
			s.track(1, 1, "room:b", "bob", `{}`)
			for len(s.net) > 0 {
				s.deliver(0)
			}
			if c.e.Count("room:b") != 1 || p.fin == nil {
				t.Fatalf("b's entry was not applied between pieces (count %d, applying %v)", c.e.Count("room:b"), p.fin != nil)
			}
			// ...and the clock's tick heartbeats.
			hb := c.c.st.heartbeatsSent
			s.now += simH
			c.c.tick(s.now)
			if c.c.st.heartbeatsSent == hb || p.fin == nil {
				t.Fatal("no heartbeat between pieces")
			}
		}
	}
	if !midway || steps < n/c.c.piece || c.e.Len() != n+1 || p.state != StateUp {
		t.Fatalf("midway %v, %d steps, c holds %d entries, owner %v", midway, steps, c.e.Len(), p.state)
	}
}
