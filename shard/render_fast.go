//go:build gc && amd64 && !race && !presence_atomic

package shard

// copyOutShort is copyOut for the few dozen bytes of a key or meta: 16-byte
// moves, the last one overlapping, instead of a call to memmove take 5% off
// List (BenchmarkList, AMD EPYC). Its loads are plain, as memmove's are in
// this build (see words_fast.go).
func copyOutShort(dst []byte, src []uint64) {
	n := len(dst)
	if n < 16 || n > 256 {
		copyOut(dst, src)
		return
	}
	s := bytesOf(src)[:n]
	for i := 0; i+16 <= n; i += 16 {
		*(*[16]byte)(dst[i : i+16]) = *(*[16]byte)(s[i : i+16])
	}
	*(*[16]byte)(dst[n-16 : n]) = *(*[16]byte)(s[n-16 : n])
}
