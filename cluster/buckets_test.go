package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/engine"
)

func TestConfigBuckets(t *testing.T) {
	for _, n := range []int{-1, 3, 6, 1000, 1 << 17, maxBuckets + 1} {
		c := Config{Node: "a", Buckets: n}
		if err := c.fill(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Buckets %d: got %v, want ErrInvalidConfig", n, err)
		}
	}
	for n, want := range map[int]int{0: DefaultBuckets, 1: 1, 2: 2, 8192: 8192, maxBuckets: maxBuckets} {
		c := Config{Node: "a", Buckets: n}
		if err := c.fill(); err != nil || c.Buckets != want {
			t.Errorf("Buckets %d: got %d, %v; want %d", n, c.Buckets, err, want)
		}
	}
	e, err := engine.New(testEngine())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), &nats.Conn{}, e, Config{Node: "a", Buckets: 3}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Start with Buckets 3: %v", err)
	}
}

// bucketMates returns a topic that shares topic's bucket among n buckets
// and not among the default count, and one in another bucket among n.
func bucketMates(topic string, n uint32) (same, other string) {
	small, def := &core{nbuckets: n}, &core{nbuckets: numBuckets}
	for i := 0; same == "" || other == ""; i++ {
		o := fmt.Sprintf("room:z%d", i)
		switch {
		case small.bucketOf(o) != small.bucketOf(topic):
			other = o
		case def.bucketOf(o) != def.bucketOf(topic):
			same = o
		}
	}
	return same, other
}

// With Config.Buckets set, topics hash into that many subjects: a node
// following one topic receives the batches of another topic of its bucket
// among those few (and mirrors none of its entries), and none of a topic
// of another bucket.
func TestNATSBucketsConfigured(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	four := func(cfg *Config) { cfg.Replicate, cfg.Buckets = Interest, 4 }
	a := startNode(t, ss[0], "a", four)
	c := startNode(t, ss[0], "c", four)
	const x = "room:x"
	same, other := bucketMates(x, 4)
	c.follow(x)
	a.track(t, 1, x, "alice", `{}`)
	waitUntil(t, "c lists alice", 5*time.Second, func() bool { return c.e.Count(x) == 1 })
	before, sent := c.n.Stats().BatchesReceived, a.n.Stats().BatchesSent
	// One batch each: the next change waits for the batch of the last.
	a.track(t, 2, other, "olga", `{}`)
	waitUntil(t, "a sends olga's batch", 5*time.Second, func() bool { return a.n.Stats().BatchesSent == sent+1 })
	a.track(t, 3, same, "sam", `{}`)
	waitUntil(t, "a sends sam's batch", 5*time.Second, func() bool { return a.n.Stats().BatchesSent == sent+2 })
	// A last update of x comes after the others on the same connection:
	// once c has it, it would have had theirs.
	ref := a.track(t, 1, x, "alice", `{"n":1}`)
	waitUntil(t, "c lists alice's update", 5*time.Second, func() bool {
		return slices.Contains(list(c.e, x, false), fmt.Sprintf(`alice|{"n":1}|%x`, ref))
	})
	if got := c.n.Stats().BatchesReceived - before; got != 2 {
		t.Fatalf("c received %d batches: want sam's, which shares x's bucket among 4, and x's update, not olga's", got)
	}
	if c.e.Count(same) != 0 || c.e.Count(other) != 0 {
		t.Fatal("c mirrors topics it does not follow")
	}
}

// Nodes with different bucket counts do not mirror each other, each
// reports the other as its limits differing, and the nodes that agree are
// not disturbed, under either Replication.
func TestNATSBucketsDiffer(t *testing.T) {
	for _, r := range []Replication{Interest, All} {
		t.Run(r.String(), func(t *testing.T) { testBucketsDiffer(t, r) })
	}
}

func testBucketsDiffer(t *testing.T, r Replication) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	a := startNode(t, ss[0], "a", replicate(r))
	b := startNode(t, ss[0], "b", replicate(r))
	c := startNode(t, ss[0], "c", func(cfg *Config) { cfg.Replicate, cfg.Buckets = r, 8 })
	topics := []string{"room:x", "room:y", "room:w"}
	for i, topic := range topics {
		a.track(t, 1, topic, fmt.Sprintf("a%d", i), `{}`)
		c.track(t, 1, topic, fmt.Sprintf("c%d", i), `{}`)
	}
	b.follow(topics...)
	c.follow(topics...)
	differs := func(n *testNode, name string) bool {
		for _, ni := range n.n.Nodes() {
			if ni.Name == name {
				return ni.LimitsDiffer && ni.State == StateUp && ni.Entries == 0
			}
		}
		return false
	}
	waitUntil(t, "a and c report each other", 5*time.Second, func() bool {
		return differs(a, "c") && differs(c, "a") && differs(b, "c") && differs(c, "b")
	})
	for i, topic := range topics {
		a.track(t, 1, topic, fmt.Sprintf("a%d", i), `{"n":1}`)
	}
	waitUntil(t, "b lists a's updates", 5*time.Second, func() bool {
		for i, topic := range topics {
			if got := list(b.e, topic, false); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf(`a%d|{"n":1}|`, i)) {
				return false
			}
		}
		return true
	})
	for _, topic := range topics {
		if got, own := list(c.e, topic, false), list(c.e, topic, true); !slices.Equal(got, own) {
			t.Fatalf("c, with 8 buckets, lists %q in %s, of which its own: %q", got, topic, own)
		}
	}
	if st := c.n.Stats(); st.LimitMismatches != 2 || st.RemoteEntries != 0 {
		t.Fatalf("c: %d limit mismatches, %d remote entries; want 2 and 0", st.LimitMismatches, st.RemoteEntries)
	}
}

// An owner does not answer a sync request of a node with another bucket
// count, which a node may send before it heard the owner's heartbeat: its
// buckets hold other topics, and a snapshot of them applied as a diff
// would remove entries the requester holds.
func TestSyncRequestOfAnotherBucketCount(t *testing.T) {
	f := &flock{t: t, subj: subjects{"p"}}
	f.start()
	owner := f.cores[0]
	owner.nbuckets = 8
	f.net = nil
	for _, n := range []uint32{numBuckets, 8} {
		q := appendSyncReq(appendHeader(nil, kindSyncReq, "x", 1), syncReq{req: 1, buckets: []uint32{3}, nbuckets: n})
		owner.onMessage(q)
	}
	if len(f.net) != 1 || owner.st.snapshotsServed != 1 {
		t.Fatalf("the owner sent %d messages, served %d snapshots: want one, to the request of its own count", len(f.net), owner.st.snapshotsServed)
	}
}
