package cluster

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
)

// TestNATSMirrorNeverDropsAnUpdatedEntry updates a node's entries in place
// at full speed while another node's engine is watched: the mirror must
// hold every entry at every instant, since none ever leaves its owner. A
// diff that split an update went out as an untrack, and its join came in
// the next batch.
func TestNATSMirrorNeverDropsAnUpdatedEntry(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	// a's history holds all it writes between two flushes, so that every
	// flush publishes a diff, not a full sync.
	a := startNodeEngine(t, ss[0].ClientURL(), "a", engine.Config{Capacity: 64, History: 1 << 16, RefTag: tags.Add(1)})
	b := startNode(t, ss[0], "b", nil)
	// b's first sync of a is over before a tracks: a snapshot applies its
	// entries in no particular order, and the mirror's join order is read
	// below.
	waitUntil(t, "b sees a up", 5*time.Second, func() bool {
		nodes := b.n.Nodes()
		return len(nodes) == 1 && nodes[0].State == StateUp
	})
	const sockets = 6
	for s := engine.SocketID(1); s <= sockets; s++ {
		a.track(t, s, "room", fmt.Sprint("user", s), `{"v":0}`)
	}
	waitUntil(t, "b mirrors a's entries", 5*time.Second, func() bool { return b.e.Count("room") == sockets })

	var stop atomic.Bool
	var updates atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Long metas and few other calls keep the writer inside updates
		// most of the time, where a flush that split one would land.
		pad := strings.Repeat("x", 200)
		metas := make([][]byte, 64)
		for i := range metas {
			metas[i] = fmt.Appendf(nil, `{"v":%d,"pad":"%s"}`, i, pad)
		}
		keys := make([]string, sockets+1)
		for s := range keys {
			keys[s] = fmt.Sprint("user", s)
		}
		for v := 1; !stop.Load(); v++ {
			s := v%sockets + 1
			if err := a.e.Track(engine.SocketID(s), "room", keys[s], metas[v%len(metas)]); err != nil {
				t.Error(err)
				return
			}
			updates.Add(1)
			if v%16 == 0 {
				a.n.Changed("room")
			}
			if v%256 == 0 {
				// Let the flusher and b keep up: a mirror that falls behind
				// NATS's pending limits resyncs, which proves nothing here.
				time.Sleep(time.Millisecond)
			}
		}
	}()

	var snap engine.Snapshot
	reads, applied := 0, 0
	last := ""
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		b.e.Snapshot(&snap, "room")
		reads++
		if err := inJoinOrder(snap.Entries, sockets); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("read %d on the mirror: %v (%+v)", reads, err, b.n.Stats())
		}
		if s := string(snap.Entries[0].Meta); s != last {
			last = s
			applied++
		}
		// Leave a core to a's flusher, so that it reads a's changes while
		// the writer runs, not only when the writer is descheduled. A drop
		// between two reads is still seen in the join order.
		time.Sleep(20 * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	a.n.Changed("room") // the writer's last updates, after its last Changed
	if applied < 20 {
		t.Fatalf("the mirror applied only %d distinct versions of the first entry in %d updates", applied, updates.Load())
	}
	waitUntil(t, "a and b agree", 15*time.Second, func() bool { return converged([]*testNode{a, b}, "room") })
	// An entry the mirror dropped and tracked again went to the end of its
	// join order, even if no read above fell between the two.
	b.e.Snapshot(&snap, "room")
	if err := inJoinOrder(snap.Entries, sockets); err != nil {
		t.Fatalf("the mirror after the updates: %v", err)
	}
	t.Logf("%d updates, %d reads of the mirror, %d versions of one entry seen", updates.Load(), reads, applied)
}

// inJoinOrder checks that entries are user1 to user<n>, in that order, as
// their owner tracked them.
func inJoinOrder(entries []engine.Entry, n int) error {
	if len(entries) != n {
		return fmt.Errorf("%d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		if want := fmt.Sprint("user", i+1); string(e.Key) != want {
			return fmt.Errorf("entry %d is %s, want %s: an entry left and came back", i, e.Key, want)
		}
	}
	return nil
}
