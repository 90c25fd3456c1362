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
