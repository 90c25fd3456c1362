package engine

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestListPageGuaranteeUnderChurn walks a topic page by page while writers
// churn it: keys join, leave and come back, entries come to and leave keys
// that stay, entries move between keys, metas change in place. In every
// walk, each key present throughout appears exactly once with all of its
// entries, every other key at most once (a key that left and came back
// during the walk too), a key's entries are never split between pages, and
// Next is zero only on the last page (the last key, present throughout, is
// always reached).
func TestListPageGuaranteeUnderChurn(t *testing.T) {
	const (
		stable  = 150 // keys present throughout, two entries each
		writers = 2
		owned   = 60 // churn sockets per writer
		readers = 2
	)
	walks := 40
	if testing.Short() {
		walks = 10
	}
	e := mustNew(t, Config{Capacity: 4096, MaxPerSocket: 4096, Shards: 2})
	stableKey := func(i int) string { return fmt.Sprintf("s%03d", i) }
	// Stable keys interleave with the writers' first keys, so that churn
	// happens between them and around page boundaries.
	churnKeys := make([][]string, writers) // each writer's keys, by socket
	for w := range writers {
		churnKeys[w] = make([]string, owned)
	}
	for i := range stable {
		mustTrack(t, e, SocketID(1+i), "room", stableKey(i), `{"v":0}`)
		if w, s := i%writers, i/writers; s < owned {
			churnKeys[w][s] = fmt.Sprintf("w%d-%d", w, s)
			mustTrack(t, e, churnSocket(w, s), "room", churnKeys[w][s], `{}`)
		}
		mustTrack(t, e, SocketID(10_000+i), "room", stableKey(i), `{"v":0}`)
	}
	mustTrack(t, e, 9999, "room", "zz-last", `{}`)
	mustTrack(t, e, 9998, "room", "zz-last", `{}`)

	// The readers hand the writers a few turns after each page, one
	// turn a writer's operation, so that every walk spans writes between
	// its pages however the goroutines are scheduled.
	turns := make(chan struct{})
	quit, writersDone := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			churnWriter(t, e, w, churnKeys[w], stable, turns, quit, &writes)
		}()
	}
	go func() { wg.Wait(); close(writersDone) }()

	deadline := time.Now().Add(20 * time.Second)
	var rwg sync.WaitGroup
	var walked, pages atomic.Int64
	for r := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			var p Page
			for walk := 0; walk < walks && time.Now().Before(deadline) && !t.Failed(); walk++ {
				seen := map[string]int{} // key -> page
				var after PageCursor
				for page := 0; ; page++ {
					limit := 1 + rng.IntN(40)
					if err := e.ListPage(&p, "room", after, limit); err != nil {
						t.Errorf("walk %d page %d: %v", walk, page, err)
						return
					}
					pages.Add(1)
					counts := map[string]int{}
					stableHeld := map[string]bool{}
					own := map[string]int{}
					for i, en := range p.Entries {
						k := string(en.Key)
						if stableOwner(k, en.Socket) {
							if own[k]++; own[k] == 2 {
								stableHeld[k] = true
							}
						}
						if i > 0 && string(p.Entries[i-1].Key) != k && counts[k] > 0 {
							t.Errorf("walk %d page %d: key %q split within the page", walk, page, k)
							return
						}
						counts[k]++
					}
					if len(counts) != p.Keys || p.Keys > limit || p.Keys == 0 && !p.Next.IsZero() {
						t.Errorf("walk %d page %d: %d keys, says %d, limit %d, next %v", walk, page, len(counts), p.Keys, limit, p.Next)
						return
					}
					for k, n := range counts {
						if at, ok := seen[k]; ok {
							t.Errorf("walk %d: key %q on page %d and again on page %d", walk, k, at, page)
							return
						}
						seen[k] = page
						// A stable key holds its two entries, and may hold a
						// third that comes and goes.
						if (k[0] == 's' || k == "zz-last") && (n < 2 || n > 3 || !stableHeld[k]) {
							t.Errorf("walk %d page %d: stable key %q with %d entries, or without its own two", walk, page, k, n)
							return
						}
					}
					if p.Next.IsZero() {
						break
					}
					// Let the writers churn between pages.
					for range 6 {
						select {
						case turns <- struct{}{}:
						case <-writersDone: // a writer failed
						}
					}
					// Half the time through the text form, as a client
					// carries it.
					after = p.Next
					if rng.IntN(2) == 0 {
						var c PageCursor
						if err := c.UnmarshalText([]byte(p.Next.String())); err != nil || c != p.Next {
							t.Errorf("cursor text: %v", err)
							return
						}
						after = c
					}
				}
				for i := range stable {
					if _, ok := seen[stableKey(i)]; !ok {
						t.Errorf("walk %d: stable key %q missing", walk, stableKey(i))
						return
					}
				}
				if _, ok := seen["zz-last"]; !ok {
					t.Errorf("walk %d: the last key missing: Next was zero too early", walk)
					return
				}
				walked.Add(1)
			}
		}()
	}
	rwg.Wait()
	close(quit)
	<-writersDone
	if walked.Load() == 0 || writes.Load() < 100 {
		t.Fatalf("%d walks, %d writes: nothing was tested", walked.Load(), writes.Load())
	}
	t.Logf("%d walks of %d pages under %d writes", walked.Load(), pages.Load(), writes.Load())
}

// stableOwner reports whether s holds one of stable key k's own two
// entries.
func stableOwner(k string, s SocketID) bool {
	if k == "zz-last" {
		return s == 9998 || s == 9999
	}
	var i int
	if _, err := fmt.Sscanf(k, "s%03d", &i); err != nil {
		return false
	}
	return s == SocketID(1+i) || s == SocketID(10_000+i)
}

func churnSocket(w, s int) SocketID { return SocketID(100_000 + w*1000 + s) }

// churnWriter churns writer w's sockets, an operation a turn, until quit
// is closed, or a bound: its keys
// join under new names, leave, come back under a name that left not long
// before (to the end of the key order), gain and lose entries, and take
// entries from each other by updates; it also adds and removes a third
// entry of a stable key and updates stable metas in place, which leave the
// stable keys present.
func churnWriter(t *testing.T, e *Engine, w int, keys []string, stable int, turns <-chan struct{}, quit <-chan struct{}, writes *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(w), 99))
	owned := len(keys)
	count := map[string]int{} // entries per key, of this writer's sockets
	for _, k := range keys {
		if k != "" {
			count[k]++
		}
	}
	fresh := 0
	var gone []string // this writer's keys that left, latest last
	// take moves socket s to key k, or off the topic for "".
	take := func(s int, k string) {
		if keys[s] == k {
			return
		}
		if o := keys[s]; o != "" {
			if count[o]--; count[o] == 0 {
				gone = append(gone, o)
			}
		}
		keys[s] = k
		if k != "" {
			count[k]++
		}
	}
	extra := SocketID(200_000 + w)
	for i := 0; i < 200_000; i++ {
		select {
		case <-turns:
		case <-quit:
			return
		}
		s := rng.IntN(owned)
		sock := churnSocket(w, s)
		var err error
		switch r := rng.IntN(10); {
		case r < 3 && keys[s] != "": // leave
			e.Untrack(sock, "room")
			take(s, "")
		case r < 5: // a fresh key, joining at the end (or a move to it)
			fresh++
			take(s, fmt.Sprintf("w%d-n%d", w, fresh))
			err = e.Track(sock, "room", keys[s], []byte(`{}`))
		case r < 6: // a key that left comes back, at the end
			if len(gone) == 0 {
				continue
			}
			at := len(gone) - 1 - rng.IntN(min(len(gone), 16))
			k := gone[at]
			gone = append(gone[:at], gone[at+1:]...)
			take(s, k)
			err = e.Track(sock, "room", k, []byte(`{"back":true}`))
		case r < 8: // come to, or move to, a key of another socket that is present
			o := keys[rng.IntN(owned)]
			if o == "" || count[o] == 0 {
				continue
			}
			take(s, o)
			err = e.Track(sock, "room", o, []byte(`{"moved":true}`))
		case r < 9: // a third entry of a stable key comes and goes
			k := fmt.Sprintf("s%03d", rng.IntN(stable))
			err = e.Track(extra, "room", k, []byte(`{}`))
			e.Untrack(extra, "room")
		default: // a stable meta changes in place
			i := rng.IntN(stable)
			err = e.Track(SocketID(1+i), "room", fmt.Sprintf("s%03d", i), fmt.Appendf(nil, `{"v":%d}`, rng.IntN(1000)))
		}
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
			return
		}
		writes.Add(1)
	}
}
