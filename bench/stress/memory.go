package stress

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Memory is what a registry of the Config's capacity costs, measured
// around building it.
type Memory struct {
	// Reserved is the bytes the Go heap allocated to build it: the
	// address space it holds, whose pages the OS backs as they are
	// first written.
	Reserved int64
	// Resident is how much the process's resident memory grew while it
	// was built, empty: what it costs before any entry; floored at 0.
	// -1 where /proc does not say.
	Resident int64
	// ResidentEnd is how much the process's resident memory grew from
	// before building to the end of the run: the registry's pages its
	// entries touched, and also the run's buffers and histograms (about
	// a megabyte). It is floored at 0: memory that an earlier run in the
	// process gives back meanwhile makes it shrink. -1 where /proc does
	// not say, or before End.
	ResidentEnd int64
	// HeapEnd is the live heap the registry holds at the end of the run,
	// with its entries: the heap after a collection, less what it was
	// before building. -1 before End.
	HeapEnd int64

	base     int64  // resident bytes before building
	heapBase uint64 // live heap before building
}

// Build builds the registry c names and measures its memory.
func Build(c *Config) (Target, *Memory, error) {
	return BuildWith(func() (Target, error) { return NewTarget(c) })
}

// BuildWith builds a registry with build and measures its memory.
func BuildWith(build func() (Target, error)) (Target, *Memory, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := &Memory{base: residentBytes(), heapBase: before.HeapAlloc, HeapEnd: -1, ResidentEnd: -1}
	t, err := build()
	if err != nil {
		return nil, nil, err
	}
	runtime.ReadMemStats(&after)
	m.Reserved = int64(after.TotalAlloc - before.TotalAlloc)
	m.Resident = -1
	if now := residentBytes(); now >= 0 && m.base >= 0 {
		m.Resident = max(0, now-m.base)
	}
	return t, m, nil
}

// End records the resident memory now, and the heap that t, the registry
// built, holds. The caller must have dropped everything else the run
// allocated.
func (m *Memory) End(t Target) {
	if now := residentBytes(); now >= 0 && m.base >= 0 {
		m.ResidentEnd = max(0, now-m.base)
	}
	runtime.GC()
	var now runtime.MemStats
	runtime.ReadMemStats(&now)
	m.HeapEnd = int64(now.HeapAlloc) - int64(m.heapBase)
	runtime.KeepAlive(t)
}

// residentBytes is the process's resident memory from /proc/self/statm,
// or -1.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
