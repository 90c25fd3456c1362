package cluster

import (
	"slices"
	"testing"
	"time"
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
