package progress

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.b.String(), "\n"), "\n")
}

var line = regexp.MustCompile(`^x: (work|more): ([0-9.]+[kM]?) ops, ([0-9.]+[kM]?) ops/s, [0-9]+(ms|s) elapsed$`)

// TestPrinterLines: a line per interval once the threshold has passed,
// each with the phase, the count, a rate that follows the count, and no
// line after stop.
func TestPrinterLines(t *testing.T) {
	var out lockedBuffer
	m := &Meter{}
	work := m.Counter("work")
	stop := Printer{W: &out, Prefix: "x", Every: 10 * time.Millisecond, After: 30 * time.Millisecond}.Start(m)
	deadline := time.Now().Add(10 * time.Second)
	for len(out.lines()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("lines: %q", out.lines())
		}
		work.Add(1000)
		time.Sleep(time.Millisecond)
	}
	var more atomic.Int64
	more.Store(7)
	m.Phase("more", more.Load) // a count that stays still: a rate of 0
	for !strings.Contains(strings.Join(out.lines(), "\n"), "x: more: 7 ops, 0 ops/s") {
		if time.Now().After(deadline) {
			t.Fatalf("lines: %q", out.lines())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // twice is fine
	n := len(out.lines())
	for _, l := range out.lines() {
		if !line.MatchString(l) {
			t.Errorf("not a progress line: %q", l)
		}
	}
	if !strings.HasPrefix(out.lines()[0], "x: work: ") || strings.Contains(out.lines()[0], " 0 ops/s") {
		t.Errorf("first line: %q", out.lines()[0])
	}
	time.Sleep(30 * time.Millisecond)
	if len(out.lines()) != n {
		t.Fatalf("a line after stop: %q", out.lines())
	}
}

// TestShortRunSilent: nothing before After, and no phase, no line.
func TestShortRunSilent(t *testing.T) {
	var out lockedBuffer
	m := &Meter{}
	stop := Printer{W: &out, Prefix: "x", Every: 5 * time.Millisecond, After: time.Hour}.Start(m)
	m.Counter("work").Add(5)
	time.Sleep(30 * time.Millisecond)
	stop()
	if s := out.b.String(); s != "" {
		t.Fatalf("a short run printed %q", s)
	}
	out = lockedBuffer{}
	stop = Printer{W: &out, Prefix: "x", Every: 5 * time.Millisecond, After: time.Nanosecond}.Start(&Meter{})
	time.Sleep(30 * time.Millisecond)
	stop()
	if s := out.b.String(); s != "" {
		t.Fatalf("no phase, yet %q", s)
	}
}

func TestNilMeter(t *testing.T) {
	var m *Meter
	m.Phase("x", nil)
	m.Counter("y").Add(1)
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 9999: "9999", 12345: "12.3k", 4_560_000: "4.56M"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
