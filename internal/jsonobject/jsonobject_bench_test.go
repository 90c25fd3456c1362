package jsonobject

import "testing"

func BenchmarkCheckTypicalMeta(b *testing.B) {
	meta := []byte(`{"name":"Alice","status":"online","joined_at":"2026-11-28T04:00:00Z"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(meta)))
	for b.Loop() {
		if _, _, err := Check(meta); err != nil {
			b.Fatal(err)
		}
	}
}
