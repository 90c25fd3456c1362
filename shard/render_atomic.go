//go:build !gc || !amd64 || race || presence_atomic

package shard

// copyOutShort is copyOut: this build loads every word atomically.
func copyOutShort(dst []byte, src []uint64) { copyOut(dst, src) }
