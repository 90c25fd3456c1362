package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
)

// A resync of a node whose 100,000 entries are held here, some of them
// gone from its snapshot, looks for the entries it dropped a piece at a
// time too: no step of the application goes through more than a piece of
// entries, and the mirror ends equal to the owner.
func TestDroppedEntriesFoundInBoundedPieces(t *testing.T) {
	n := 100_000
	if raceEnabled {
		n = 10_000 // the same pieces, fewer of them
	}
	const topics, dropped = 100, 500
	s := newSim(t, 3)
	bigEngines(t, s, n, 0, 2)
	owner, c := s.nodes[2], s.nodes[0]
	room := func(i int) string { return fmt.Sprintf("room:%d", i%topics) }
	s.trackMany(2, 0, n, "u", room)
	s.flush(2)
	s.settle()
	p := c.c.peers[owner.name]
	if p == nil || len(p.want) != n {
		t.Fatal("c does not hold the owner's entries")
	}
	// The owner drops some entries, and their deltas are lost: c's next
	// snapshot of the owner holds them no more.
	for i := range dropped {
		owner.e.Untrack(engine.SocketID(i*7+1), room(i*7))
		owner.dirty[room(i*7)] = true
	}
	s.flush(2)
	s.net = s.net[:0]
	c.c.piece = applyPiece
	c.c.resyncPeer(p)
	s.stepwise = true
	s.deliverUntil(t, 0, 8, func() bool { return p.fin != nil }, "c never received the owner's snapshot")
	var worst, took time.Duration
	work, scanning := 0, 0
	for more := true; more; {
		phase := -1
		if p.fin != nil {
			phase = p.fin.phase
		}
		t0 := time.Now()
		more = c.c.step()
		d := time.Since(t0)
		took += d
		worst = max(worst, d)
		if phase == finGone {
			scanning++
		}
		if phase >= finIndex && phase < finReplay && p.fin != nil {
			work = max(work, p.fin.work)
		}
	}
	t.Logf("the application of %d entries took %v; its longest step %v, through %d entries", n, took, worst, work)
	if work > c.c.piece || scanning < n/c.c.piece {
		t.Errorf("a step went through %d entries, more than a piece (%d); %d steps looked for the entries dropped, want %d or more", work, c.c.piece, scanning, n/c.c.piece)
	}
	if p.state != StateUp || len(p.want) != n-dropped {
		t.Fatalf("owner %v, c holds %d of its entries, want %d", p.state, len(p.want), n-dropped)
	}
	for i := range topics {
		if got, want := s.entries(0, room(i), false), s.entries(2, room(i), true); !slices.Equal(got, want) {
			t.Fatalf("c lists %d entries in %s, the owner %d, or they differ", len(got), room(i), len(want))
		}
	}
}
