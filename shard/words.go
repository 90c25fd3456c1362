package shard

import (
	"sync/atomic"
	"unsafe"
)

// Reader-visible state lives in []uint64 words. Readers load single words
// with atomic loads, always. How writers store, and how payload bytes are
// copied, depends on the build (words_fast.go, words_atomic.go): the race
// detector flags a seqlock whose bytes move with plain loads and stores, so
// race builds, non-amd64 builds and the presence_atomic tag move every word
// atomically.

// load reads one reader-visible word.
func load(p *uint64) uint64 { return atomic.LoadUint64(p) }

// wordsFor returns the number of words that hold n bytes.
func wordsFor(n int) int { return (n + 7) / 8 }

// bytesOf views words as bytes.
func bytesOf(w []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8)
}
