package peers

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkCoreToCoreRoundTrip passes one cache line back and forth between
// two goroutines, each on an OS thread of its own: an operation is one
// round trip, two transfers of the line between cores. On a virtual
// machine it tells where the vCPUs sit now (sharing a cache or not), which
// decides BenchmarkParallelReadHeavy; run it before and after that one.
func BenchmarkCoreToCoreRoundTrip(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs two Ps")
	}
	var line struct {
		_ [64]byte
		v atomic.Uint64
		_ [56]byte
	}
	n := uint64(b.N)
	done := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := range n {
			for line.v.Load() != 2*i+1 {
			}
			line.v.Store(2*i + 2)
		}
		done <- line.v.Load()
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := range n {
		line.v.Store(2*i + 1)
		for line.v.Load() != 2*i+2 {
		}
	}
	b.StopTimer()
	if got := <-done; got != 2*n {
		b.Fatalf("the line ended at %d, want %d: a round trip was skipped", got, 2*n)
	}
}
