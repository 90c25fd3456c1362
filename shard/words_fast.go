//go:build gc && amd64 && !race && !presence_atomic

package shard

import (
	"encoding/binary"
	"sync/atomic"
)

// The plain-copy variant of the word functions; doc.go says when it is
// built and why it is sound.

// store writes one reader-visible word.
func store(p *uint64, v uint64) { *p = v }

// chunk bounds one memmove by writers. From 1 MiB up, amd64's memmove
// uses non-temporal stores, which may pass the plain store that opened the
// read window; below it, its stores are ordinary and stay in order. A
// split costs one compare on the sizes entries have (BenchmarkTrackUpdate).
const chunk = 512 << 10

// copyBytes copies src into b, in chunks.
func copyBytes(b, src []byte) {
	for len(src) > chunk {
		copy(b[:chunk], src)
		b, src = b[chunk:], src[chunk:]
	}
	copy(b, src)
}

// writePayload stores an entry's payload (see payloadLen) into the words
// dst.
func writePayload(dst []uint64, key string, meta []byte) {
	b := bytesOf(dst)
	binary.LittleEndian.PutUint64(b, openWord)
	n := len(payloadOpen) + copy(b[len(payloadOpen):], key)
	binary.LittleEndian.PutUint64(b[n:], midWord)
	b[n+8] = ':'
	n += len(payloadMid)
	copyBytes(b[n:], meta)
	b[n+len(meta)] = '}'
}

// copyInString stores src into the words dst.
func copyInString(dst []uint64, src string) {
	b := bytesOf(dst)
	for len(src) > chunk {
		copy(b[:chunk], src)
		b, src = b[chunk:], src[chunk:]
	}
	copy(b, src)
}

// copyOut copies the first len(dst) bytes of src into dst.
func copyOut(dst []byte, src []uint64) { copy(dst, bytesOf(src)) }

// copyOutAt copies len(dst) bytes of src from byte off on into dst.
func copyOutAt(dst []byte, src []uint64, off int) { copy(dst, bytesOf(src)[off:]) }

// putBytes stores src into the words dst from byte off on.
func putBytes(dst []uint64, off int, src []byte) { copy(bytesOf(dst)[off:], src) }

// putByte stores c into the words dst at byte off.
func putByte(dst []uint64, off int, c byte) { bytesOf(dst)[off] = c }

// moveWithin moves n bytes of the words w from byte from to byte to; the
// two ranges may overlap.
func (s *Shard) moveWithin(w []uint64, to, from, n int) {
	b := bytesOf(w)
	copy(b[to:to+n], b[from:from+n])
}

// moveBetween copies n bytes from byte from of src to byte to of dst.
func (s *Shard) moveBetween(dst []uint64, to int, src []uint64, from, n int) {
	copy(bytesOf(dst)[to:to+n], bytesOf(src)[from:from+n])
}

// writeMeta stores a new meta, and the brace after it, into a payload
// whose key stays; off is metaOffset of the key's length.
func writeMeta(dst []uint64, off int, meta []byte) {
	b := bytesOf(dst)
	copyBytes(b[off:], meta)
	b[off+len(meta)] = '}'
}

// copyWords copies reader-visible words.
func copyWords(dst, src []uint64) {
	// Most topic names fit in two words; storing them costs less than a
	// call to copy them.
	switch len(src) {
	case 0:
		return
	case 1:
		dst[0] = src[0]
		return
	case 2:
		dst[0], dst[1] = src[0], src[1]
		return
	}
	for len(src) > chunk/8 {
		copy(dst[:chunk/8], src)
		dst, src = dst[chunk/8:], src[chunk/8:]
	}
	copy(dst, src)
}

// fence is loaded by barrier; nothing stores to it.
var fence uint64

// barrier stops the compiler from moving stores across it or dropping a
// store that a later one overwrites: an atomic load is a memory operation to
// the compiler and a plain load to an amd64 core.
func barrier() { atomic.LoadUint64(&fence) }

// seqBegin makes a sequence word odd before a writer changes what it guards.
// Only the holder of the guarding lock writes it.
func seqBegin(p *uint64) {
	*p++
	barrier()
}

// seqEnd makes a sequence word even again.
func seqEnd(p *uint64) {
	barrier()
	*p++
}

// storeSeq stores a word that readers validate against.
func storeSeq(p *uint64, v uint64) {
	barrier()
	*p = v
	barrier()
}
