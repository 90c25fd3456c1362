package engine

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkListUnderWrites measures the worst List of a 4,000-entry topic
// while one goroutine updates one of its entries every 25, 50 or 100 µs,
// with readers bounded as shipped (fallback: after OptimisticReads spoiled
// windows they take the shard lock), bounded after 8 windows (fallback8),
// and unbounded (nofallback: they retry until a window survives). It
// reports the max and p99 of List and of the writer's Track, and the
// fallbacks per List. Every Track must be an update and every List must
// hold the 4,000 entries. every=idle is the control: the writer goroutine
// spins as it does between updates but never writes, so its List figures
// are what the machine's scheduling alone costs.
func BenchmarkListUnderWrites(b *testing.B) {
	const entries = 4000
	for _, every := range []time.Duration{0, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond} {
		for _, mode := range []struct {
			name     string
			attempts int
		}{{"fallback", 0}, {"fallback8", 8}, {"nofallback", -1}} {
			name := fmt.Sprintf("every=%v/%s", every, mode.name)
			if every == 0 {
				if mode.attempts != 0 {
					continue
				}
				name = "every=idle"
			}
			b.Run(name, func(b *testing.B) {
				e, err := newEngine(Config{Capacity: entries, MaxPerSocket: 1, MaxMetaLen: 128}, mode.attempts)
				if err != nil {
					b.Fatal(err)
				}
				for i := 1; i <= entries; i++ {
					if err := e.Track(SocketID(i), "busy", fmt.Sprint("user_", i), []byte(fmt.Sprintf(`{"name":"User %d","status":"online"}`, i))); err != nil {
						b.Fatal(err)
					}
				}
				metas := [][]byte{[]byte(`{"name":"User 2000","status":"away"}`), []byte(`{"name":"User 2000","status":"online"}`)}
				buf := make([]byte, 1<<20)
				listLat := make([]time.Duration, 0, b.N)
				trackLat := make([]time.Duration, 0, 1<<16)
				var notUpdated int
				stop, started := make(chan struct{}), make(chan struct{})
				var stopped atomic.Bool
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					if every == 0 {
						close(started)
						// Spin as the writer does between updates.
						for !stopped.Load() {
						}
						return
					}
					next := time.Now()
					for k := 0; ; k++ {
						next = next.Add(every)
						for time.Now().Before(next) {
							// Spin: a sleep this short would oversleep.
						}
						select {
						case <-stop:
							return
						default:
						}
						t0 := time.Now()
						out, _, err := e.TrackRef(2000, "busy", "user_2000", metas[k&1])
						d := time.Since(t0)
						if err != nil || out != Updated {
							notUpdated++
						}
						trackLat = append(trackLat, d)
						if k == 0 {
							close(started)
						}
					}
				}()
				<-started
				before := e.Stats()
				var maxRetries uint64
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r0 := e.pool.Counts().Retries
					t0 := time.Now()
					out, err := e.List("busy", buf)
					listLat = append(listLat, time.Since(t0))
					// The only reader: the retries since r0 are this List's.
					maxRetries = max(maxRetries, e.pool.Counts().Retries-r0)
					if err != nil {
						b.Fatal(err)
					}
					if i%64 == 0 {
						if n := bytes.Count(out, []byte(`{"key":`)); n != entries {
							b.Fatalf("List held %d entries, want %d", n, entries)
						}
					}
				}
				b.StopTimer()
				stopped.Store(true)
				close(stop)
				wg.Wait()
				after := e.Stats()
				b.ReportMetric(float64(pct(listLat, 100).Nanoseconds()), "max-ns/List")
				b.ReportMetric(float64(pct(listLat, 99).Nanoseconds()), "p99-ns/List")
				if every == 0 {
					if after.ReadRetries != before.ReadRetries {
						b.Fatal("Lists retried with no writer")
					}
					return
				}
				if notUpdated != 0 || len(trackLat) == 0 {
					b.Fatalf("%d of %d Tracks were not updates", notUpdated, len(trackLat))
				}
				b.ReportMetric(float64(pct(trackLat, 99).Nanoseconds()), "track-p99-ns")
				b.ReportMetric(float64(pct(trackLat, 100).Nanoseconds()), "track-max-ns")
				b.ReportMetric(float64(len(trackLat))/float64(b.N), "updates/List")
				b.ReportMetric(float64(after.ReadFallbacks-before.ReadFallbacks)/float64(b.N), "fallbacks/List")
				b.ReportMetric(float64(maxRetries), "max-retries/List")
			})
		}
	}
}

// pct returns the p-th percentile of d (p = 100: the max); it sorts d.
func pct(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	i := (len(d)*p + 99) / 100
	return d[max(0, min(i, len(d))-1)]
}
