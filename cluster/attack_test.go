package cluster

import (
	"slices"
	"testing"
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
