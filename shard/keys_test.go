package shard

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestKeyHashSpreads hashes distinct keys of every length up to 64 bytes
// under two seeds: no two may collide in 64 bits, the seed must change
// every hash, and the low bits, which pick buckets, must spread.
func TestKeyHashSpreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[uint64]string{}
	buckets := make([]int, 256)
	n := 0
	for length := range 65 {
		for range 200 {
			b := make([]byte, length)
			for i := range b {
				b[i] = byte('a' + rng.IntN(3)) // few letters: many near-equal keys
			}
			k := string(b)
			h := keyHash(k, 1)
			if old, ok := seen[h]; ok && old != k {
				t.Fatalf("keyHash(%q) = keyHash(%q)", k, old)
			}
			if _, ok := seen[h]; !ok {
				seen[h] = k
				buckets[h&255]++
				n++
			}
			if keyHash(k, 2) == h {
				t.Fatalf("keyHash(%q) ignores the seed", k)
			}
		}
	}
	for b, c := range buckets {
		if c > 4*n/len(buckets) {
			t.Fatalf("bucket %d holds %d of %d keys", b, c, n)
		}
	}
}

// TestKeyRecordsComeBack churns keys in a pool whose every slot holds a
// key, moving entries between keys, then fills it again with distinct
// keys: a key record that was not given back would run the pool out.
func TestKeyRecordsComeBack(t *testing.T) {
	const slots = 32
	p := NewPool(Config{Slots: slots, Shards: 4, MaxTopic: 8, MaxKey: 8, MaxMeta: 8, History: 8, Seed: 5})
	rng := rand.New(rand.NewPCG(5, 6))
	track := func(sock uint64, topic, key string) {
		t.Helper()
		h := p.HashTopic(topic)
		if _, _, err := p.ShardFor(h).Track(sock, topic, h, key, false, []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for range 20_000 {
		sock := uint64(rng.IntN(slots))
		topic := fmt.Sprint("t", rng.IntN(3))
		if rng.IntN(3) == 0 {
			h := p.HashTopic(topic)
			p.ShardFor(h).Untrack(sock, topic, h)
			continue
		}
		if p.Len() < slots || rng.IntN(2) == 0 {
			// A new pair, or an update that may move the entry to
			// another key.
			h := p.HashTopic(topic)
			if _, _, err := p.ShardFor(h).Track(sock, topic, h, fmt.Sprint("k", rng.IntN(5)), false, []byte("{}"), 0); err != nil && err != ErrFull {
				t.Fatal(err)
			}
		}
	}
	for sock := range uint64(slots) {
		p.UntrackAll(sock)
	}
	if p.Len() != 0 {
		t.Fatalf("Len %d after removing everything", p.Len())
	}
	for i := range slots {
		track(uint64(i), "t0", fmt.Sprint("u", i))
	}
	h := p.HashTopic("t0")
	if k, n := p.ShardFor(h).CountKeys("t0", h); k != slots || n != slots {
		t.Fatalf("CountKeys = %d, %d, want %d, %d", k, n, slots, slots)
	}
}
