package shard

import (
	"bytes"
	"strings"
	"testing"
)

// TestCopiesOfEverySize round-trips payloads of sizes around a word and
// around the chunk a plain-copy build splits memmove at.
func TestCopiesOfEverySize(t *testing.T) {
	const big = 1<<20 + 1<<19
	src := make([]byte, big)
	for i := range src {
		src[i] = byte(i*7 + i>>11)
	}
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1<<19 - 1, 1 << 19, 1<<19 + 1, 1<<20 - 1, 1 << 20, 1<<20 + 9, big} {
		words := make([]uint64, wordsFor(n))
		out := make([]byte, n)
		copyInString(words, string(src[:n]))
		copyOut(out, words)
		if !bytes.Equal(out, src[:n]) {
			t.Fatalf("copyInString of %d bytes differs", n)
		}
		dst := make([]uint64, len(words))
		copyWords(dst, words)
		copyOut(out, dst)
		if !bytes.Equal(out, src[:n]) {
			t.Fatalf("copyWords of %d bytes differs", n)
		}
	}
	if s := strings.Repeat("x", 3); wordsFor(len(s)) != 1 {
		t.Fatal("wordsFor(3) != 1")
	}
}

// TestPayloadRoundTrips writes payloads of keys and metas of sizes around a
// word, at every alignment of the meta, over words that held other bytes,
// and reads them back whole and in parts.
func TestPayloadRoundTrips(t *testing.T) {
	sizes := []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 64, 65, 1<<19 + 3}
	src := make([]byte, 1<<20)
	for i := range src {
		src[i] = byte(i*7 + i>>11)
	}
	for _, kl := range sizes[:9] {
		for _, ml := range sizes {
			key, meta := string(src[:kl]), src[kl:kl+ml]
			n := payloadLen(kl, ml)
			words := make([]uint64, wordsFor(n)+1)
			for i := range words {
				words[i] = ^uint64(0)
			}
			writePayload(words, key, meta)
			want := payloadOpen + key + payloadMid + string(meta) + "}"
			out := make([]byte, n)
			copyOut(out, words)
			if string(out) != want {
				t.Fatalf("key %d, meta %d bytes: payload differs", kl, ml)
			}
			if words[len(words)-1] != ^uint64(0) {
				t.Fatalf("key %d, meta %d bytes: writePayload wrote past the payload", kl, ml)
			}
			offs := []int{0, 1, 7, 9}
			if n <= 4096 {
				offs = offs[:0]
				for off := range min(n, 24) {
					offs = append(offs, off)
				}
			}
			for _, off := range offs {
				if off > n {
					continue
				}
				part := make([]byte, n-off)
				copyOutAt(part, words, off)
				if string(part) != want[off:] {
					t.Fatalf("key %d, meta %d bytes: copyOutAt from %d differs", kl, ml, off)
				}
			}
			got := make([]byte, ml)
			copyOutAt(got, words, metaOffset(kl))
			if !bytes.Equal(got, meta) {
				t.Fatalf("key %d, meta %d bytes: meta read back differs", kl, ml)
			}
		}
	}
}
