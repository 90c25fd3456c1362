package engine

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The sizing table of the README comes from this test:
//
//	go test ./engine -run TestSizing -v -args -sizing.all
//
// It measures, for engines of the default limits (MaxKeyLen 64,
// MaxMetaLen 256, rendered topics on), what New reserves (bytes the Go
// heap hands out for it: address space, mostly untouched until used) and
// the resident memory (VmRSS) of the engine empty and full, filled with
// rooms of 8 entries of the shape benchMeta makes. Without -sizing.all it
// measures 4,096 entries only, and checks the figure the README gives.
// Run it without -race, whose shadow memory inflates the resident figures.
var sizingAll = flag.Bool("sizing.all", false, "measure the sizing table: 4k, 64k and 1M entries")

// maxReservedPerEntry and fixedReserve bound what New reserves, so that
// the README's "1.3 KiB per entry, plus about a MiB" stays true: the test
// fails when the engine grows past it. The key records of paging took it
// from 1,122 bytes an entry to 1,210, and the big blocks of rendered
// topics to 1,317 (2^20 entries; the package doc's Memory section).
const (
	maxReservedPerEntry = 1350
	fixedReserve        = 2 << 20
)

type sizing struct {
	capacity                          int
	reserved, residentEmpty, resident int64 // bytes
}

func measureSizing(t *testing.T, capacity int) sizing {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0 := vmRSS(t)
	e, err := New(Config{Capacity: capacity, MaxPerSocket: 1})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	rss1 := vmRSS(t)
	for i := range capacity {
		topic := "room:" + strconv.Itoa(i/8)
		if err := e.Track(SocketID(i+1), topic, "user_"+strconv.Itoa(i), benchMeta(i)); err != nil {
			t.Fatalf("entry %d of %d: %v", i, capacity, err)
		}
	}
	runtime.GC()
	rss2 := vmRSS(t)
	if e.Len() != capacity {
		t.Fatalf("Len %d, want %d", e.Len(), capacity)
	}
	runtime.KeepAlive(e)
	return sizing{capacity: capacity, reserved: int64(after.TotalAlloc - before.TotalAlloc),
		residentEmpty: rss1 - rss0, resident: rss2 - rss0}
}

// TestSizing measures each size in a process of its own, so that one
// engine's freed memory does not blur the next one's resident figures.
func TestSizing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary again")
	}
	caps := []int{4096}
	if *sizingAll {
		caps = []int{4096, 65536, 1 << 20}
	}
	t.Logf("%10s %14s %14s %14s %16s %16s", "entries", "reserved MiB", "empty RSS MiB", "full RSS MiB", "reserved B/entry", "full RSS B/entry")
	for _, c := range caps {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSizingOne$", "-test.v")
		cmd.Env = append(os.Environ(), "PRESENCE_SIZING="+strconv.Itoa(c))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("measuring %d entries: %v\n%s", c, err, out)
		}
		var s sizing
		_, line, _ := strings.Cut(string(out), "sizing: ")
		if _, err := fmt.Sscan(line, &s.capacity, &s.reserved, &s.residentEmpty, &s.resident); err != nil || s.capacity != c {
			t.Fatalf("measuring %d entries: %v\n%s", c, err, out)
		}
		mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
		t.Logf("%10d %14s %14s %14s %16d %16d", c, mib(s.reserved), mib(s.residentEmpty), mib(s.resident), s.reserved/int64(c), s.resident/int64(c))
		if most := int64(c)*maxReservedPerEntry + fixedReserve; s.reserved > most {
			t.Errorf("%d entries reserve %d bytes, above the %d the README promises", c, s.reserved, most)
		}
		if s.reserved < int64(c)*256 {
			t.Errorf("%d entries reserve %d bytes: less than one meta each, so the measure is wrong", c, s.reserved)
		}
	}
}

// TestSizingOne measures one engine for TestSizing, in a process of its own.
func TestSizingOne(t *testing.T) {
	c, err := strconv.Atoi(os.Getenv("PRESENCE_SIZING"))
	if err != nil {
		t.Skip("run by TestSizing")
	}
	s := measureSizing(t, c)
	fmt.Printf("sizing: %d %d %d %d\n", s.capacity, s.reserved, s.residentEmpty, s.resident)
}

// vmRSS returns the process's resident memory, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}
