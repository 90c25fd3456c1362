package jsonwriter

import "testing"

func BenchmarkAppendStringPlain(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], "user_4242424242")
	}
}

func BenchmarkAppendStringEscaped(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], "us\"er\\42\u2028\x01")
	}
}

func BenchmarkNeedsEscapeUUID(b *testing.B) {
	key := "0b6e2f04-3c1d-4f5a-9e8b-7a6c5d4e3f21"
	b.ReportAllocs()
	for b.Loop() {
		if NeedsEscape(key) {
			b.Fatal("a UUID needs no escaping")
		}
	}
}
