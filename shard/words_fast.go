//go:build amd64 && !race && !presence_atomic

package shard

import "sync/atomic"

// On amd64 stores become visible in program order and loads are not
// reordered with other loads. So in this build writers store plainly, with
// barrier() keeping the compiler from moving or merging stores around the
// sequence words, and readers copy payload bytes with memmove between atomic
// loads of the sequence; a reader sees a torn copy only when the sequence
// moved, and then retries. Locked instructions would cost Track about a
// third of its time, and word-by-word atomic copies slow List down; build
// with -tags presence_atomic to measure the all-atomic variant.

// store writes one reader-visible word.
func store(p *uint64, v uint64) { *p = v }

// copyIn stores src into the words dst.
func copyIn(dst []uint64, src []byte) { copy(bytesOf(dst), src) }

// copyInString stores src into the words dst.
func copyInString(dst []uint64, src string) { copy(bytesOf(dst), src) }

// copyOut copies the first len(dst) bytes of src into dst.
func copyOut(dst []byte, src []uint64) { copy(dst, bytesOf(src)) }

// copyWords copies reader-visible words.
func copyWords(dst, src []uint64) { copy(dst, src) }

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
