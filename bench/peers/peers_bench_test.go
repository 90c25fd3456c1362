package peers

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// Compare with:
//
//	go test -run '^$' -bench . -count 6 | benchstat -col /impl -

func meta(i int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"online","joined_at":"2026-11-28T04:00:00Z"}`, i)
}

func fill(b *testing.B, r Registry, topic string, n int) {
	for i := 1; i <= n; i++ {
		if err := r.Track(uint64(i), topic, fmt.Sprint("user_", i), meta(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrackUpdate(b *testing.B) {
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			fill(b, r, "room", 128)
			metas := [2][]byte{meta(1), meta(2)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				r.Track(uint64(i&127+1), "room", "user_1", metas[i&1])
			}
		})
	}
}

func BenchmarkTrackUntrack(b *testing.B) {
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			fill(b, r, "room", 128)
			m := meta(1000)
			b.ReportAllocs()
			for b.Loop() {
				r.Track(1000, "room", "user_1000", m)
				r.Untrack(1000, "room")
			}
		})
	}
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		for _, p := range Peers {
			b.Run(fmt.Sprintf("n=%d/impl=%s", n, p.Name), func(b *testing.B) {
				r := p.New(4096)
				fill(b, r, "room", n)
				buf := r.AppendList(nil, "room")
				b.ReportAllocs()
				for b.Loop() {
					buf = r.AppendList(buf[:0], "room")
				}
			})
		}
		b.Run(fmt.Sprintf("n=%d/impl=copy", n), func(b *testing.B) {
			r := Peers[0].New(4096)
			fill(b, r, "room", n)
			out := r.AppendList(nil, "room")
			buf := make([]byte, 0, len(out))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], out...)
			}
		})
	}
}

// BenchmarkParallelReadHeavy is 90% List and 10% Track update over 16
// rooms of 32 members, from GOMAXPROCS goroutines.
func BenchmarkParallelReadHeavy(b *testing.B) {
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			topics := make([]string, 16)
			keys := make([]string, 33)
			for i := range keys {
				keys[i] = fmt.Sprint("user_", i)
			}
			for t := range topics {
				topics[t] = fmt.Sprint("room:", t)
				for i := 1; i <= 32; i++ {
					r.Track(uint64(t*32+i), topics[t], keys[i], meta(i))
				}
			}
			metas := [2][]byte{meta(1), meta(2)}
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer() // New's up-front allocation is not per operation
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 9))
				buf := make([]byte, 0, 8192)
				for pb.Next() {
					t, m := rng.IntN(16), 1+rng.IntN(32)
					if rng.IntN(10) == 0 {
						r.Track(uint64(t*32+m), topics[t], keys[m], metas[rng.IntN(2)])
					} else {
						buf = r.AppendList(buf[:0], topics[t])
					}
				}
			})
		})
	}
}
