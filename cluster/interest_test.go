package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

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
