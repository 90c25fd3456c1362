package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence/shard"
)

// TestReadsAreBoundedUnderWrites Lists, Counts, pages and Snapshots a topic that
// writers keep changing, one reader at a time, and counts each read's
// retries: none may exceed shard.OptimisticReads, and each read takes the
// lock at most once.
func TestReadsAreBoundedUnderWrites(t *testing.T) {
	e := mustNew(t, Config{Capacity: 600, MaxPerSocket: 1, Shards: 1})
	for i := 1; i <= 500; i++ {
		mustTrack(t, e, SocketID(i), "busy", fmt.Sprint("u", i), `{"s":"on"}`)
	}
	var first Page
	if err := e.ListPage(&first, "busy", PageCursor{}, 100); err != nil {
		t.Fatal(err)
	}
	middle := first.Next // names u100 and u101, which stay
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			metas := [][]byte{[]byte(`{"s":"on"}`), []byte(`{"s":"away"}`)}
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				e.Track(SocketID(1+w), "busy", fmt.Sprint("u", 1+w), metas[k&1])
				if k%16 == 0 {
					e.Untrack(SocketID(501+w), "busy")
				} else {
					e.Track(SocketID(501+w), "busy", "new", nil)
				}
			}
		}()
	}
	reads := map[string]func(){
		"List": func() {
			l, err := parseList(e.AppendList(nil, "busy"))
			if err != nil || len(l) < 500 || len(l) > 502 {
				t.Fatalf("List of %d entries: %v", len(l), err)
			}
		},
		"Count": func() { e.Count("busy") },
		"CountKeys": func() {
			if k, n := e.CountKeys("busy"); k < 500 || k > 501 || n < 500 || n > 502 {
				t.Fatalf("CountKeys = %d, %d", k, n)
			}
		},
		"ListPage": func() {
			var p Page
			if err := e.ListPage(&p, "busy", middle, 100); err != nil || p.Keys != 100 {
				t.Fatalf("ListPage: %v, %d keys", err, p.Keys)
			}
		},
		"Snapshot": func() { var s Snapshot; e.Snapshot(&s, "busy") },
		"Full":     func() { var c Changes; e.ChangesSince(&c, "busy", Cursor{head: 1}) },
	}
	var retried, fellBack int
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		for name, read := range reads {
			before := e.Stats()
			read()
			after := e.Stats()
			r, f := after.ReadRetries-before.ReadRetries, after.ReadFallbacks-before.ReadFallbacks
			if r > shard.OptimisticReads || f > 1 || f == 1 && r != shard.OptimisticReads {
				t.Fatalf("%s: %d retries and %d locked reads, want at most %d and 1", name, r, f, shard.OptimisticReads)
			}
			if r > 0 {
				retried++
			}
			fellBack += int(f)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reads retried, %d of them took the lock", retried, fellBack)
}
