package engine

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/presencekit/presence/internal/baseline"
)

// The benchmarks run each workload on the engine and on the baseline
// (sync.RWMutex, maps, encoding/json), and List also on a floor that only
// copies the finished output, so that ratios come from one run:
//
//	go test -run '^$' -bench . -count 6 ./engine | benchstat -col /impl -

func benchMeta(i int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"online","joined_at":"2026-11-28T04:00:00Z"}`, i)
}

func benchKey(i int) string { return fmt.Sprint("user_", i) }

// registry is what the engine and the baseline have in common.
type registry interface {
	Track(s SocketID, topic, key string, meta []byte) error
	Untrack(s SocketID, topic string) bool
	UntrackAll(s SocketID) int
	Count(topic string) int
	AppendList(dst []byte, topic string) []byte
	AppendDiff(dst []byte, topic string) []byte
}

type baselineReg struct{ r *baseline.Registry }

func (b baselineReg) Track(s SocketID, topic, key string, meta []byte) error {
	return b.r.Track(uint64(s), topic, key, meta)
}
func (b baselineReg) Untrack(s SocketID, topic string) bool { return b.r.Untrack(uint64(s), topic) }
func (b baselineReg) UntrackAll(s SocketID) int             { return b.r.UntrackAll(uint64(s)) }
func (b baselineReg) Count(topic string) int                { return b.r.Count(topic) }
func (b baselineReg) AppendList(dst []byte, topic string) []byte {
	return b.r.AppendList(dst, topic)
}
func (b baselineReg) AppendDiff(dst []byte, topic string) []byte {
	return b.r.AppendDiff(dst, topic)
}

func impls(b *testing.B) []struct {
	name string
	new  func() registry
} {
	return []struct {
		name string
		new  func() registry
	}{
		{"engine", func() registry {
			e, err := New(Config{Capacity: 4096, MaxPerSocket: 4096})
			if err != nil {
				b.Fatal(err)
			}
			return e
		}},
		{"baseline", func() registry { return baselineReg{baseline.New(4096)} }},
	}
}

// fill tracks n members in topic, sockets 1..n.
func fill(b *testing.B, r registry, topic string, n int) {
	for i := 1; i <= n; i++ {
		if err := r.Track(SocketID(i), topic, benchKey(i), benchMeta(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrackUpdate(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			fill(b, r, "room", 128)
			metas := [2][]byte{benchMeta(1), benchMeta(2)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := r.Track(SocketID(i&127+1), "room", "user_1", metas[i&1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTrackUntrack(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			fill(b, r, "room", 128)
			meta := benchMeta(1000)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Track(1000, "room", "user_1000", meta); err != nil {
					b.Fatal(err)
				}
				r.Untrack(1000, "room")
			}
		})
	}
}

// BenchmarkUntrackAll tracks a socket in 8 topics and disconnects it.
func BenchmarkUntrackAll(b *testing.B) {
	topics := make([]string, 8)
	for i := range topics {
		topics[i] = fmt.Sprint("room:", i)
	}
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			meta := benchMeta(1)
			b.ReportAllocs()
			for b.Loop() {
				for _, t := range topics {
					r.Track(1, t, "user_1", meta)
				}
				if r.UntrackAll(1) != len(topics) {
					b.Fatal("UntrackAll missed entries")
				}
			}
		})
	}
}

func BenchmarkCount(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			fill(b, r, "room", 128)
			b.ReportAllocs()
			for b.Loop() {
				if r.Count("room") != 128 {
					b.Fatal("wrong count")
				}
			}
		})
	}
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{1, 16, 128, 512} {
		for _, im := range impls(b) {
			b.Run(fmt.Sprintf("n=%d/impl=%s", n, im.name), func(b *testing.B) {
				r := im.new()
				fill(b, r, "room", n)
				buf := r.AppendList(nil, "room")
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					buf = r.AppendList(buf[:0], "room")
				}
			})
		}
		b.Run(fmt.Sprintf("n=%d/impl=copy", n), func(b *testing.B) {
			r := impls(b)[0].new()
			fill(b, r, "room", n)
			out := r.AppendList(nil, "room")
			buf := make([]byte, 0, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], out...)
			}
		})
	}
}

func BenchmarkDiff(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("n=128/impl="+im.name, func(b *testing.B) {
			r := im.new()
			fill(b, r, "room", 128)
			buf := r.AppendDiff(nil, "room")
			b.ReportAllocs()
			for b.Loop() {
				buf = r.AppendDiff(buf[:0], "room")
			}
		})
	}
}

// BenchmarkChanges reads the incremental diff of a 128-member room after
// one update, as a broadcaster does once per window.
func BenchmarkChanges(b *testing.B) {
	e, _ := New(Config{Capacity: 4096, MaxPerSocket: 4096})
	for i := 1; i <= 128; i++ {
		e.Track(SocketID(i), "room", benchKey(i), benchMeta(i))
	}
	var snap Snapshot
	e.Snapshot(&snap, "room")
	e.Track(1, "room", "user_1", benchMeta(7))
	b.Run("form=json", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf, _, _ = e.AppendChanges(buf[:0], "room", snap.Cursor)
		}
	})
	b.Run("form=struct", func(b *testing.B) {
		var c Changes
		b.ReportAllocs()
		for b.Loop() {
			e.ChangesSince(&c, "room", snap.Cursor)
		}
	})
	b.Run("form=snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Snapshot(&snap, "room")
		}
	})
}

func BenchmarkParallelTrackUpdate(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			for t := range 64 {
				for i := 1; i <= 8; i++ {
					r.Track(SocketID(t*8+i), fmt.Sprint("room:", t), benchKey(i), benchMeta(i))
				}
			}
			metas := [2][]byte{benchMeta(1), benchMeta(2)}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer() // New's up-front allocation is not per operation
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine picks rooms at random: walking the same
				// sequence would lock-step goroutines onto one shard.
				rng := rand.New(rand.NewPCG(next.Add(1), 7))
				topics := make([]string, 64)
				for t := range topics {
					topics[t] = fmt.Sprint("room:", t)
				}
				i := 0
				for pb.Next() {
					i++
					t := rng.IntN(64)
					r.Track(SocketID(t*8+1), topics[t], "user_1", metas[i&1])
				}
			})
		})
	}
}

func BenchmarkParallelList128(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			fill(b, r, "room", 128)
			b.ReportAllocs()
			b.ResetTimer() // New's up-front allocation is not per operation
			b.RunParallel(func(pb *testing.PB) {
				buf := r.AppendList(nil, "room")
				for pb.Next() {
					buf = r.AppendList(buf[:0], "room")
				}
			})
		})
	}
}

// BenchmarkParallelReadHeavy is 90% List and 10% Track update over 16
// rooms of 32 members.
func BenchmarkParallelReadHeavy(b *testing.B) {
	for _, im := range impls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			r := im.new()
			topics := make([]string, 16)
			for t := range topics {
				topics[t] = fmt.Sprint("room:", t)
				for i := 1; i <= 32; i++ {
					r.Track(SocketID(t*32+i), topics[t], benchKey(i), benchMeta(i))
				}
			}
			metas := [2][]byte{benchMeta(1), benchMeta(2)}
			keys := make([]string, 33)
			for i := range keys {
				keys[i] = benchKey(i)
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer() // New's up-front allocation is not per operation
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(next.Add(1), 9))
				buf := make([]byte, 0, 8192)
				for pb.Next() {
					t, m := rng.IntN(16), 1+rng.IntN(32)
					if rng.IntN(10) == 0 {
						r.Track(SocketID(t*32+m), topics[t], keys[m], metas[rng.IntN(2)])
					} else {
						buf = r.AppendList(buf[:0], topics[t])
					}
				}
			})
		})
	}
}
