//go:build !gc || !amd64 || race || presence_atomic

package shard

// The all-atomic variant of the word functions; doc.go says when it is
// built.

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// store writes one reader-visible word.
func store(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

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

// writePayload stores an entry's payload (see payloadLen) into the words
// dst, one atomic store a word.
func writePayload(dst []uint64, key string, meta []byte) {
	ws := wordStream{dst: dst}
	ws.add(payloadOpen)
	ws.add(key)
	ws.add(payloadMid)
	ws.add(unsafe.String(unsafe.SliceData(meta), len(meta)))
	ws.add("}")
	ws.flush()
}

// writeMeta stores a new meta, and the brace after it, into a payload
// whose key stays; off is metaOffset of the key's length.
func writeMeta(dst []uint64, off int, meta []byte) {
	putBytes(dst, off, meta)
	putByte(dst, off+len(meta), '}')
}

// wordStream stores a stream of bytes into words, a word at a time.
type wordStream struct {
	dst []uint64
	i   int    // the next word to store
	acc uint64 // bytes that do not fill a word yet
	n   uint   // how many
}

func (ws *wordStream) add(src string) {
	for ; len(src) >= 8; src = src[8:] {
		v := le64(src)
		if ws.n == 0 {
			atomic.StoreUint64(&ws.dst[ws.i], v)
		} else {
			atomic.StoreUint64(&ws.dst[ws.i], ws.acc|v<<(8*ws.n))
			ws.acc = v >> (64 - 8*ws.n)
		}
		ws.i++
	}
	for k := 0; k < len(src); k++ {
		ws.acc |= uint64(src[k]) << (8 * ws.n)
		if ws.n++; ws.n == 8 {
			atomic.StoreUint64(&ws.dst[ws.i], ws.acc)
			ws.i, ws.acc, ws.n = ws.i+1, 0, 0
		}
	}
}

// flush stores the last, partly filled word.
func (ws *wordStream) flush() {
	if ws.n > 0 {
		atomic.StoreUint64(&ws.dst[ws.i], ws.acc)
	}
}

// putBytes stores src into the words dst from byte off on, one atomic store
// a word; the bytes around it keep their values.
func putBytes(dst []uint64, off int, src []byte) {
	dst = dst[off/8:]
	if r := off % 8; r != 0 && len(src) > 0 {
		var word [8]byte
		binary.LittleEndian.PutUint64(word[:], atomic.LoadUint64(&dst[0]))
		n := copy(word[r:], src)
		atomic.StoreUint64(&dst[0], binary.LittleEndian.Uint64(word[:]))
		dst, src = dst[1:], src[n:]
	}
	i := 0
	for ; len(src)-i >= 8; i += 8 {
		atomic.StoreUint64(&dst[i/8], binary.LittleEndian.Uint64(src[i:]))
	}
	if i < len(src) {
		var word [8]byte
		binary.LittleEndian.PutUint64(word[:], atomic.LoadUint64(&dst[i/8]))
		copy(word[:], src[i:])
		atomic.StoreUint64(&dst[i/8], binary.LittleEndian.Uint64(word[:]))
	}
}

// putByte stores c into the words dst at byte off.
func putByte(dst []uint64, off int, c byte) {
	w := &dst[off/8]
	shift := uint(off%8) * 8
	atomic.StoreUint64(w, atomic.LoadUint64(w)&^(0xff<<shift)|uint64(c)<<shift)
}

// moveWithin moves n bytes of the words w from byte from to byte to,
// through the shard's buffer; the two ranges may overlap.
func (s *Shard) moveWithin(w []uint64, to, from, n int) {
	tmp := s.moveBuf[:n]
	copyOutAt(tmp, w, from)
	putBytes(w, to, tmp)
}

// moveBetween copies n bytes from byte from of src to byte to of dst.
func (s *Shard) moveBetween(dst []uint64, to int, src []uint64, from, n int) {
	tmp := s.moveBuf[:n]
	copyOutAt(tmp, src, from)
	putBytes(dst, to, tmp)
}

// copyOutAt copies len(dst) bytes of src from byte off on into dst, one
// atomic load a word.
func copyOutAt(dst []byte, src []uint64, off int) {
	if len(dst) == 0 {
		return
	}
	src = src[off/8:]
	r := off % 8
	if r == 0 {
		copyOut(dst, src)
		return
	}
	var word [8]byte
	binary.LittleEndian.PutUint64(word[:], atomic.LoadUint64(&src[0]))
	n := copy(dst, word[r:])
	if n < len(dst) {
		copyOut(dst[n:], src[1:])
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
