package shard

import (
	"testing"
	"unsafe"
)

func TestRecordsFillWholeCacheLines(t *testing.T) {
	if n := unsafe.Sizeof(slotInfo{}); n != 64 {
		t.Fatalf("slotInfo is %d bytes, want 64", n)
	}
	p := NewPool(Config{Slots: 8, Shards: 2, MaxTopic: 100, MaxKey: 10, MaxMeta: 33, History: 4})
	if p.slotStride%8 != 0 || p.topicStride%8 != 0 {
		t.Fatalf("strides %d and %d words are not whole lines", p.slotStride, p.topicStride)
	}
}
