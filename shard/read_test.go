package shard

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/presencekit/presence/jsonwriter"
)

func testPool(t *testing.T, slots, shards int) *Pool {
	t.Helper()
	return NewPool(Config{Slots: slots, Shards: shards, MaxTopic: 32, MaxKey: 16, MaxMeta: 64, History: 16, Seed: 1})
}

func mustTrack(t *testing.T, p *Pool, socket uint64, topic, key, meta string) uint64 {
	t.Helper()
	hash := p.HashTopic(topic)
	_, ref, err := p.ShardFor(hash).Track(socket, topic, hash, key, false, []byte(meta), 0)
	if err != nil {
		t.Fatalf("Track(%d, %q) = %v", socket, topic, err)
	}
	return ref
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReaderTakesTheLockAfterOptimisticReads holds a topic in the middle of
// a write, as a writer does, and counts what a reader does meanwhile: it
// fails exactly OptimisticReads read windows, then stops retrying and waits
// for the shard lock; once the writer is done it reads under the lock.
func TestReaderTakesTheLockAfterOptimisticReads(t *testing.T) {
	for _, read := range []struct {
		name string
		do   func(sh *Shard, hash uint64) int
	}{
		{"AppendEntries", func(sh *Shard, hash uint64) int {
			var w jsonwriter.Writer
			w.Reset(nil, jsonwriter.Unbounded)
			n, _ := sh.AppendEntries(&w, JSON, "t", hash)
			if got := string(w.Bytes()); got != `{"key":"k","meta":{}}` && got != `{"key":"k","meta":{}},{"key":"k2","meta":{"a":1}}` {
				t.Errorf("AppendEntries wrote %s", w.Bytes())
			}
			return n
		}},
		{"AppendCurrent", func(sh *Shard, hash uint64) int {
			var w jsonwriter.Writer
			w.Reset(nil, jsonwriter.Unbounded)
			n := sh.AppendCurrent(&w, JSON, "t", hash)
			if got := string(w.Bytes()); got != `{"key":"k","meta":{}}` && got != `{"key":"k","meta":{}},{"key":"k2","meta":{"a":1}}` {
				t.Errorf("AppendCurrent wrote %s", w.Bytes())
			}
			return n
		}},
		{"Count", func(sh *Shard, hash uint64) int { return sh.Count("t", hash) }},
		{"CountKeys", func(sh *Shard, hash uint64) int {
			k, n := sh.CountKeys("t", hash)
			if k != n {
				t.Errorf("CountKeys = %d keys, %d entries", k, n)
			}
			return n
		}},
		{"AppendPage", func(sh *Shard, hash uint64) int {
			var w jsonwriter.Writer
			w.Reset(nil, jsonwriter.Unbounded)
			r := sh.AppendPage(&w, JSON, "t", hash, PagePos{}, 10)
			if got := string(w.Bytes()); r.Keys != r.Entries || r.TopicKeys != r.Keys || !r.Next.IsZero() ||
				got != `{"key":"k","meta":{}}` && got != `{"key":"k","meta":{}},{"key":"k2","meta":{"a":1}}` {
				t.Errorf("AppendPage wrote %s, %+v", w.Bytes(), r)
			}
			return r.Entries
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			p := testPool(t, 8, 1)
			mustTrack(t, p, 1, "t", "k", "{}")
			hash := p.HashTopic("t")
			sh := p.ShardFor(hash)

			sh.mu.Lock()
			rec := p.topic(sh.findTopic("t", hash))
			sh.beginTopic(rec)
			done := make(chan int, 1)
			go func() { done <- read.do(sh, hash) }()
			waitUntil(t, "the reader failed its optimistic windows", func() bool { return p.retries.Load() >= OptimisticReads })
			// However long the writer takes, the reader retries no more.
			time.Sleep(20 * time.Millisecond)
			if r, f := p.retries.Load(), p.fallbacks.Load(); r != OptimisticReads || f != 0 {
				t.Fatalf("while the writer held the topic: %d retries, %d fallbacks; want %d and 0", r, f, OptimisticReads)
			}
			select {
			case n := <-done:
				t.Fatalf("the reader returned %d mid-write", n)
			default:
			}
			// The write completes: a second entry appears.
			sh.endTopic(rec)
			sh.mu.Unlock()
			// Track takes the lock after the reader or before it; either way
			// the reader sees a whole topic.
			mustTrack(t, p, 2, "t", "k2", `{"a":1}`)
			n := <-done
			if n != 1 && n != 2 {
				t.Fatalf("the reader saw %d entries", n)
			}
			if r, f := p.retries.Load(), p.fallbacks.Load(); r != OptimisticReads || f != 1 {
				t.Fatalf("%d retries, %d fallbacks; want %d and 1", r, f, OptimisticReads)
			}
		})
	}
}

// TestQuietReadTakesNoLock: without writers a read succeeds in its first
// window.
func TestQuietReadTakesNoLock(t *testing.T) {
	p := testPool(t, 8, 2)
	mustTrack(t, p, 1, "t", "k", "{}")
	hash := p.HashTopic("t")
	var w jsonwriter.Writer
	for range 100 {
		w.Reset(nil, jsonwriter.Unbounded)
		p.ShardFor(hash).AppendEntries(&w, Records, "t", hash)
		p.ShardFor(hash).AppendCurrent(&w, JSON, "t", hash)
		p.ShardFor(hash).Count("t", hash)
	}
	if r, f := p.retries.Load(), p.fallbacks.Load(); r != 0 || f != 0 {
		t.Fatalf("quiet reads: %d retries, %d fallbacks", r, f)
	}
}

// TestReadersFindEveryTopicRecord: a pool has a topic record more per shard
// than it has slots, for Tracks under way. A topic whose record lies past
// the slot count must still be found by readers.
func TestReadersFindEveryTopicRecord(t *testing.T) {
	p := testPool(t, 2, 2)
	mustTrack(t, p, 1, "a", "k", "{}")
	// A Track under way in another shard holds the next record.
	held, ok := p.freeTopics.pop()
	if !ok {
		t.Fatal("no free topic record")
	}
	mustTrack(t, p, 2, "b", "k", "{}")
	hash := p.HashTopic("b")
	sh := p.ShardFor(hash)
	if ti := sh.findTopic("b", hash); int(ti) < p.cfg.Slots {
		t.Fatalf("topic b got record %d, want one past the %d slots", ti, p.cfg.Slots)
	}
	if n := sh.Count("b", hash); n != 1 {
		t.Fatalf("Count(b) = %d, want 1", n)
	}
	var w jsonwriter.Writer
	w.Reset(nil, jsonwriter.Unbounded)
	if n, _ := sh.AppendEntries(&w, JSON, "b", hash); n != 1 {
		t.Fatalf("AppendEntries(b) wrote %d entries: %s", n, w.Bytes())
	}
	if r := p.retries.Load(); r != 0 {
		t.Fatalf("%d read windows retried with no writer", r)
	}
	p.freeTopics.push(held)
}

// TestRepairedReadsAreSnapshots updates the first m entries of a
// 300-entry topic round robin (update k gives entry k%m version k) while a
// reader copies the topic. A copy is a snapshot of one instant exactly
// when, with M its highest version, every entry j < m holds the highest
// k <= M with k%m == j and the others their first version. Reads that a
// write spoiled are rebuilt from the change ring when few entries changed;
// the test checks that this happened and that every read is a snapshot.
//
// Under the race detector, where a read takes milliseconds, each m makes
// 250 reads, not 1000, and a rebuilt read is rare for m = 5 (one in
// thousands, taking up to 20 s to come): there only m = 2, which has
// dozens, must show one, so that the detector sees the rebuild run. The
// builds without it make every read and require a rebuild for each m.
//
// AppendCurrent, which leaves the history head out of its first read, must
// be rebuilt too: its retry takes the head, and with a single optimistic
// window (attempts=1), which has no retry, that window takes it. It runs
// with m = 2 only, where rebuilds are common: for m = 5 a rebuild can take
// tens of thousands of reads to come.
func TestRepairedReadsAreSnapshots(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		m        int
		current  bool
		attempts int
	}{{2, false, 0}, {5, false, 0}, {n, false, 0}, {2, true, 0},
		{2, false, 1}, {2, true, 1}, {2, true, 2}} {
		m := tc.m
		name := fmt.Sprint("updated=", m)
		if tc.current {
			name += "/AppendCurrent"
		}
		if tc.attempts != 0 {
			name += fmt.Sprint("/attempts=", tc.attempts)
		}
		t.Run(name, func(t *testing.T) {
			mustRepair, minReads := m < maxRepair, 1000
			if raceEnabled {
				mustRepair, minReads = m == 2, 250
			}
			p := NewPool(Config{Slots: n, Shards: 1, MaxTopic: 8, MaxKey: 8, MaxMeta: 32, History: 1024, Seed: 3, ReadAttempts: tc.attempts})
			hash := p.HashTopic("t")
			sh := p.ShardFor(hash)
			meta := func(v int) []byte { return []byte(fmt.Sprintf(`{"v":%d}`, v)) }
			for j := range n {
				if _, _, err := sh.Track(uint64(j+1), "t", hash, "k", false, meta(j-n), 0); err != nil {
					t.Fatal(err)
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					if out, _, _ := sh.Track(uint64(k%m+1), "t", hash, "k", false, meta(k), 0); out != Updated {
						t.Errorf("update %d: %v", k, out)
						return
					}
				}
			}()
			var w jsonwriter.Writer
			reads := 0
			for ; reads < minReads || mustRepair && p.repairs.Load() == 0 && reads < 100000; reads++ {
				w.Reset(nil, jsonwriter.Unbounded)
				if tc.current {
					sh.AppendCurrent(&w, Records, "t", hash)
				} else {
					sh.AppendEntries(&w, Records, "t", hash)
				}
				var vs [n]int
				top := -n - 1
				b := w.Bytes()
				for j := 0; j < n; j++ {
					r, rest, ok := ParseRecord(b)
					if !ok || r.Socket != uint64(j+1) {
						t.Fatalf("read %d: entry %d missing or out of order", reads, j)
					}
					b = rest
					var err error
					if vs[j], err = metaVersion(r.Meta); err != nil {
						t.Fatalf("torn meta %s", r.Meta)
					}
					top = max(top, vs[j])
				}
				for j := range n {
					want := j - n // never updated
					if j < m && top >= j {
						want = top - ((top-j)%m+m)%m // the highest k <= top with k%m == j
					}
					if vs[j] != want {
						t.Fatalf("read %d is no snapshot: entry %d has version %d, want %d (top %d)", reads, j, vs[j], want, top)
					}
				}
			}
			close(stop)
			<-done
			if mustRepair && p.repairs.Load() == 0 {
				t.Fatalf("none of %d reads was rebuilt from the ring", reads)
			}
			t.Logf("%d reads: %d retried, %d rebuilt, %d locked", reads, p.retries.Load(), p.repairs.Load(), p.fallbacks.Load())
		})
	}
}

// TestRepairedReadsWithJoinsAndLeaves interleaves the round-robin updates
// with an entry that joins and leaves, so that reads rebuilt from the ring
// meet changes they must refuse. Operation k, in order: if k%20 == 9 the
// extra entry joins with version k, if k%20 == 19 it leaves, otherwise
// entry k%m gets version k. A read is a snapshot if it equals the state
// after operation K for some K from its highest version on.
func TestRepairedReadsWithJoinsAndLeaves(t *testing.T) {
	const n, extra = 100, 1000
	for _, m := range []int{1, 3, n} {
		t.Run(fmt.Sprint("updated=", m), func(t *testing.T) {
			p := NewPool(Config{Slots: n + 1, Shards: 1, MaxTopic: 8, MaxKey: 8, MaxMeta: 32, History: 1024, Seed: 5})
			hash := p.HashTopic("t")
			sh := p.ShardFor(hash)
			meta := func(v int) []byte { return []byte(fmt.Sprintf(`{"v":%d}`, v)) }
			for j := range n {
				if _, _, err := sh.Track(uint64(j+1), "t", hash, "k", false, meta(j-n), 0); err != nil {
					t.Fatal(err)
				}
			}
			// state returns the versions after operation K (extra: -1 if absent).
			state := func(K int) (vs [n]int, extraV int) {
				for j := range vs {
					vs[j] = j - n
				}
				extraV = -1
				seen, extraSeen := 0, false
				done := make([]bool, n)
				// Every entry that is ever updated is updated within any 2m
				// operations; those that never are (j%20 == 9 or 19 when m is
				// a multiple of 20) keep their first version.
				for k := K; k >= 0 && k > K-2*m-40 && (seen < min(m, n) || !extraSeen); k-- {
					switch k % 20 {
					case 9, 19:
						if !extraSeen {
							extraSeen = true
							if k%20 == 9 {
								extraV = k
							}
						}
					default:
						if j := k % m; !done[j] {
							done[j], vs[j] = true, k
							seen++
						}
					}
				}
				return vs, extraV
			}
			stop := make(chan struct{})
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					switch k % 20 {
					case 9:
						sh.Track(extra, "t", hash, "x", false, meta(k), 0)
					case 19:
						sh.Untrack(extra, "t", hash)
					default:
						sh.Track(uint64(k%m+1), "t", hash, "k", false, meta(k), 0)
					}
				}
			}()
			var w jsonwriter.Writer
			for read := range 1000 {
				w.Reset(nil, jsonwriter.Unbounded)
				sh.AppendEntries(&w, Records, "t", hash)
				var vs [n]int
				extraV, top := -1, -n-1
				b := w.Bytes()
				for j := 0; ; j++ {
					r, rest, ok := ParseRecord(b)
					if !ok {
						if j < n {
							t.Fatalf("read %d: %d entries", read, j)
						}
						break
					}
					b = rest
					var v int
					var err error
					if v, err = metaVersion(r.Meta); err != nil {
						t.Fatalf("torn meta %s", r.Meta)
					}
					switch {
					case j < n && r.Socket == uint64(j+1):
						vs[j] = v
					case j == n && r.Socket == extra:
						extraV = v
					default:
						t.Fatalf("read %d: entry %d is socket %d", read, j, r.Socket)
					}
					top = max(top, v)
				}
				match := false
				for K := max(top, 0); K <= max(top, 0)+20 && !match; K++ {
					wantVs, wantExtra := state(K)
					match = wantVs == vs && wantExtra == extraV
				}
				if !match && top >= 0 {
					t.Fatalf("read %d is no snapshot: %v extra %d", read, vs[:min(m, n, 8)], extraV)
				}
			}
			close(stop)
			<-finished
			t.Logf("retried %d, rebuilt %d, locked %d", p.retries.Load(), p.repairs.Load(), p.fallbacks.Load())
		})
	}
}

// TestRepairRefusesLeaveAndRejoin: an Untrack and a new Track of the same
// pair leave a leave and a join of one socket next to each other in the
// ring, as an update in place does, but the entry moves to the end of the
// topic. A read rebuilt from the ring must not take them for an update,
// or it lists the old version in the new place: a state that never was.
func TestRepairRefusesLeaveAndRejoin(t *testing.T) {
	p := testPool(t, 4, 1)
	mustTrack(t, p, 1, "t", "a", `{"v":0}`)
	mustTrack(t, p, 2, "t", "b", `{"v":0}`)
	hash := p.HashTopic("t")
	sh := p.ShardFor(hash)
	ti, _, head, ok := sh.lookup("t", hash, true)
	if !ok || ti < 0 {
		t.Fatal("lookup failed with no writer")
	}
	if !sh.Untrack(1, "t", hash) {
		t.Fatal("Untrack found no entry")
	}
	mustTrack(t, p, 1, "t", "a", `{"v":1}`)
	var w jsonwriter.Writer
	w.Reset(nil, jsonwriter.Unbounded)
	if _, ok := sh.appendAsOf(&w, JSON, "t", hash, ti, head); ok {
		t.Fatalf("rebuilt the topic as of event %d across a leave and a rejoin: %s", head, w.Bytes())
	}

	// An update in place is still rebuilt across.
	ti, _, head, ok = sh.lookup("t", hash, true)
	if !ok || ti < 0 {
		t.Fatal("lookup failed with no writer")
	}
	mustTrack(t, p, 2, "t", "b", `{"v":2}`)
	w.Reset(nil, jsonwriter.Unbounded)
	const want = `{"key":"b","meta":{"v":0}},{"key":"a","meta":{"v":1}}`
	if _, ok := sh.appendAsOf(&w, JSON, "t", hash, ti, head); !ok || string(w.Bytes()) != want {
		t.Fatalf("rebuilt across an update in place: %s, %v; want %s", w.Bytes(), ok, want)
	}
}

// metaVersion reads v from a meta {"v":v}; fmt.Sscanf costs these tests
// most of their time under the race detector.
func metaVersion(meta []byte) (int, error) {
	const open, end = `{"v":`, `}`
	if !bytes.HasPrefix(meta, []byte(open)) || !bytes.HasSuffix(meta, []byte(end)) {
		return 0, fmt.Errorf("meta %s is not {\"v\":n}", meta)
	}
	return strconv.Atoi(string(meta[len(open) : len(meta)-len(end)]))
}
