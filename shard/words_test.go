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
		copyIn(words, src[:n])
		out := make([]byte, n)
		copyOut(out, words)
		if !bytes.Equal(out, src[:n]) {
			t.Fatalf("copyIn/copyOut of %d bytes differ", n)
		}
		clear(words)
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
