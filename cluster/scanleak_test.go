package cluster

import (
	"fmt"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// A sync abandoned while the entries held are searched a piece at a time
// (finGone, through iter.Pull) ends that search: whether the owner goes
// down, says goodbye, restarts, is asked for a new snapshot, the topics
// linger out or the node closes, no goroutine of the search is left,
// and the node then lists exactly what the owner holds.
func TestAbandonedScanLeavesNoGoroutine(t *testing.T) {
	const n, topics = 1000, 10
	room := func(i int) string { return fmt.Sprintf("room:%d", i%topics) }
	for _, end := range []string{"down", "goodbye", "restart", "resync", "linger", "close"} {
		t.Run(end, func(t *testing.T) {
			s := newSimWith(t, 3, []Replication{Interest, All, All}, numBuckets)
			bigEngines(t, s, n, 0, 1, 2)
			owner, c := s.nodes[2], s.nodes[0]
			for i := range topics {
				s.join(0, room(i))
			}
			s.trackMany(2, 0, n, "u", room)
			s.flush(2)
			s.settle()
			p := c.c.peers[owner.name]
			if p == nil || len(p.want) != n {
				t.Fatal("c does not hold the owner's entries")
			}
			opt, before := goleak.IgnoreCurrent(), runtime.NumGoroutine()
			c.c.piece = 50
			c.c.resyncPeer(p)
			s.stepwise = true
			for ticks := 0; p.fin == nil || p.fin.held == nil; {
				switch {
				case p.fin != nil:
					c.c.step()
				case len(s.net) > 0:
					s.deliver(0)
				default:
					if ticks++; ticks > 8 {
						t.Fatal("c never searched the entries held")
					}
					s.advance(simH / 2)
				}
			}
			c.c.step() // a piece searched, the search live between pieces
			if p.fin == nil || p.fin.phase != finGone || p.fin.held == nil {
				t.Fatal("the search ended in one piece")
			}
			if runtime.NumGoroutine() <= before {
				t.Fatal("the search's goroutine is not seen: the check below proves nothing")
			}
			switch end {
			case "down":
				s.kill(2, false)
				s.advance(simD + simH)
			case "goodbye":
				s.kill(2, true)
				s.settle()
			case "restart":
				s.kill(2, false)
				s.start(2)
				bigEngines(t, s, n, 2)
				s.settle()
			case "resync":
				c.c.resyncPeer(p)
			case "linger":
				for i := range topics {
					s.leave(0, room(i))
				}
				s.advance(simL + 1)
			case "close": // as Node.Close does
				c.c.goodbye()
				c.c.closed = true
				for _, p := range c.c.peers {
					c.c.drop(p)
				}
			}
			if err := goleak.Find(opt); err != nil {
				t.Fatalf("after the %s: %v", end, err)
			}
			if end == "close" {
				return
			}
			s.quiesce()
			s.checkConverged()
		})
	}
}
