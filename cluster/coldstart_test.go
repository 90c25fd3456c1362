package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/presencekit/presence/engine"
)

// flock is a bare set of cores on one fake clock and one in-memory
// transport, enough for heartbeats and node discovery.
type flock struct {
	t     *testing.T
	subj  subjects
	now   int64
	cores []*core
	net   []simMsg
}

const (
	flockH    = int64(1000)     // heartbeat, in fake nanoseconds
	flockTick = flockH / 4      // the Node's clock period for this heartbeat
	flockD    = int64(5 * 1000) // down after
)

func (f *flock) start() {
	i := len(f.cores)
	e, err := engine.New(engine.Config{Capacity: 16, MaxPerSocket: 16, RefTag: uint64(i + 1)})
	if err != nil {
		f.t.Fatal(err)
	}
	c := newCore(fmt.Sprintf("n%d", i), uint64(i+1), flockH, flockD, e, slog.New(slog.NewTextHandler(io.Discard, nil)), f.subj, 7, uint64(i+1))
	c.emit = func(subject string, data []byte) {
		f.net = append(f.net, simMsg{from: i, subject: subject, data: slices.Clone(data)})
	}
	f.cores = append(f.cores, c)
	c.tick(f.now)
}

// settle delivers every message, and those they cause, without time
// passing.
func (f *flock) settle() {
	for len(f.net) > 0 {
		m := f.net[0]
		f.net = f.net[1:]
		for x, c := range f.cores {
			if x == m.from && m.subject == f.subj.stream(c.name) {
				continue
			}
			if m.subject == f.subj.stream(f.cores[m.from].name) || m.subject == f.subj.syncReq(c.name) || m.subject == f.subj.reply(c.name) {
				c.now = f.now
				c.onMessage(m.data)
			}
		}
	}
}

// advance moves the clock to t a tick at a time, as the Node's clock does.
func (f *flock) advance(t int64) {
	for f.now < t {
		f.now = min(f.now+flockTick, t)
		for _, c := range f.cores {
			c.tick(f.now)
		}
		f.settle()
	}
}

func (f *flock) heartbeats() (n uint64) {
	for _, c := range f.cores {
		n += c.st.heartbeatsSent
	}
	return n
}

// knowsAll reports whether every core sees every other as up.
func (f *flock) knowsAll() bool {
	for _, c := range f.cores {
		up := 0
		for _, p := range c.peers {
			if p.state == StateUp {
				up++
			}
		}
		if up != len(f.cores)-1 {
			return false
		}
	}
	return true
}

// Nodes that start together, or join a running cluster together, cost
// each node one early heartbeat, not one per newcomer heard; and a node
// that joins hears every node within a tenth of a heartbeat and a tick,
// long before DownAfter, not at their next regular heartbeat.
func TestColdStartHeartbeatsCoalesce(t *testing.T) {
	const old, newcomers = 4, 12
	f := &flock{t: t, subj: subjects{"p"}}
	for range old {
		f.start()
	}
	f.settle()
	f.advance(2*flockH + 10) // steady: the next regular heartbeats are at 3*flockH
	if !f.knowsAll() {
		t.Fatal("the first nodes do not know each other")
	}
	before, joined := f.heartbeats(), f.now
	for range newcomers {
		f.start()
	}
	f.settle()
	f.advance(joined + flockH/10 + flockTick)
	if !f.knowsAll() {
		t.Fatalf("by %d after the join, %.1f heartbeats, the nodes do not all know each other", f.now-joined, float64(f.now-joined)/float64(flockH))
	}
	n := old + newcomers
	// One heartbeat per newcomer at its start, and an early one per node
	// for the newcomers it heard at once; a newcomer hears the first nodes
	// at their early heartbeat, a tick later, and sends one more. Without
	// coalescing each node heartbeats once per node it hears first: here
	// 12 + 4*12 + 12*15 = 240.
	if got := f.heartbeats() - before; got > uint64(newcomers+2*n) {
		t.Fatalf("%d nodes sent %d heartbeats while %d joined: want at most %d", n, got, newcomers, newcomers+2*n)
	}
}
