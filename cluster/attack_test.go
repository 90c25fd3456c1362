package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

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
