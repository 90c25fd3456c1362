package shard

import (
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
		{"Count", func(sh *Shard, hash uint64) int { return sh.Count("t", hash) }},
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
