package shard

import (
	"sync/atomic"
	"unsafe"
)

// load reads one reader-visible word.
func load(p *uint64) uint64 { return atomic.LoadUint64(p) }

// wordsFor returns the number of words that hold n bytes.
func wordsFor(n int) int { return (n + 7) / 8 }

// bytesOf views words as bytes.
func bytesOf(w []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8)
}
