package shard

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

func TestRecordsFillWholeCacheLines(t *testing.T) {
	if n := unsafe.Sizeof(slotInfo{}); n != 64 {
		t.Fatalf("slotInfo is %d bytes, want 64", n)
	}
	p := NewPool(Config{Slots: 8, Shards: 2, MaxTopic: 100, MaxKey: 10, MaxMeta: 33, History: 4})
	if p.slotStride%8 != 0 || p.topicStride%8 != 0 || p.blockStride%8 != 0 || p.blockStride == 0 {
		t.Fatalf("strides %d, %d and %d words are not whole lines", p.slotStride, p.topicStride, p.blockStride)
	}
}

// TestHashTopicIsXXH64 compares HashTopic with xxhash.Digest for every
// length around the short path's limit and several seeds.
func TestHashTopicIsXXH64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, seed := range []uint64{0, 1, 7, 1 << 63, rng.Uint64()} {
		p := NewPool(Config{Slots: 1, Shards: 1, MaxTopic: 8, MaxKey: 8, MaxMeta: 8, History: 2, Seed: seed})
		for n := range 70 {
			for range 20 {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				var d xxhash.Digest
				d.ResetWithSeed(seed)
				d.Write(b)
				if got, want := p.HashTopic(string(b)), d.Sum64(); got != want {
					t.Fatalf("seed %d, %d bytes %x: HashTopic = %x, want %x", seed, n, b, got, want)
				}
			}
		}
	}
}

// TestShardKeepsReadersLineApart checks that the fields readers load share
// no cache line with the shard's lock and the other writer-only fields.
func TestShardKeepsReadersLineApart(t *testing.T) {
	var s Shard
	if off := unsafe.Offsetof(s.topics) + unsafe.Sizeof(s.topics); off > 64 {
		t.Fatalf("the readers' fields end at byte %d, past the first line", off)
	}
	if off := unsafe.Offsetof(s.mu); off != 64 {
		t.Fatalf("mu at byte %d, want 64", off)
	}
	if off := unsafe.Offsetof(s.hist); off%64 != 0 || off < 128 {
		t.Fatalf("hist at byte %d, want a line of its own after the writers'", off)
	}
	if n := unsafe.Sizeof(s); n%64 != 0 || n < unsafe.Offsetof(s.hist)+unsafe.Sizeof(s.hist)+64 {
		t.Fatalf("Shard is %d bytes, want whole lines with the history's apart from the next shard's", n)
	}
}
