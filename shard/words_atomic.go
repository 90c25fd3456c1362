//go:build !gc || !amd64 || race || presence_atomic

package shard

// The all-atomic variant of the word functions; doc.go says when it is
// built.

import (
	"encoding/binary"
	"sync/atomic"
)

// store writes one reader-visible word.
func store(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

// copyIn stores src into the words dst, one atomic store a word.
func copyIn(dst []uint64, src []byte) {
	i := 0
	for ; len(src)-i >= 8; i += 8 {
		atomic.StoreUint64(&dst[i/8], binary.LittleEndian.Uint64(src[i:]))
	}
	if i < len(src) {
		var tail [8]byte
		copy(tail[:], src[i:])
		atomic.StoreUint64(&dst[i/8], binary.LittleEndian.Uint64(tail[:]))
	}
}

// copyInString stores src into the words dst, one atomic store a word.
func copyInString(dst []uint64, src string) {
	i := 0
	for ; len(src)-i >= 8; i += 8 {
		atomic.StoreUint64(&dst[i/8], uint64(src[i])|uint64(src[i+1])<<8|uint64(src[i+2])<<16|uint64(src[i+3])<<24|
			uint64(src[i+4])<<32|uint64(src[i+5])<<40|uint64(src[i+6])<<48|uint64(src[i+7])<<56)
	}
	if i < len(src) {
		var tail [8]byte
		copy(tail[:], src[i:])
		atomic.StoreUint64(&dst[i/8], binary.LittleEndian.Uint64(tail[:]))
	}
}

// copyOut copies the first len(dst) bytes of src into dst, one atomic load a
// word.
func copyOut(dst []byte, src []uint64) {
	i := 0
	for ; len(dst)-i >= 8; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], atomic.LoadUint64(&src[i/8]))
	}
	if i < len(dst) {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], atomic.LoadUint64(&src[i/8]))
		copy(dst[i:], tail[:])
	}
}

// copyWords copies reader-visible words, one atomic store a word.
func copyWords(dst, src []uint64) {
	for i := range src {
		atomic.StoreUint64(&dst[i], atomic.LoadUint64(&src[i]))
	}
}

// seqBegin makes a sequence word odd before a writer changes what it guards.
func seqBegin(p *uint64) { atomic.AddUint64(p, 1) }

// seqEnd makes a sequence word even again.
func seqEnd(p *uint64) { atomic.AddUint64(p, 1) }

// storeSeq stores a word that readers validate against.
func storeSeq(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
