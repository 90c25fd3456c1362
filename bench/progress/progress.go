// Package progress tells a person watching a long benchmark that it is
// getting somewhere. The measuring code keeps a Meter up to date with its
// phase and a count of what it has done; a Printer reads the Meter once a
// second and writes one line: the phase, the operations done in it, their
// rate over the last second and the time since the run began.
//
// # Concurrency
//
// A Meter may be used from any goroutine, and the count function of a
// phase is called from the Printer's goroutine, so it must be safe for
// that (an atomic load). Every method of a nil *Meter does nothing, so
// that measuring code needs no checks when nobody watches.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Meter holds the phase a run is in and how to count its operations.
type Meter struct {
	mu    sync.Mutex
	phase string
	since time.Time
	ops   func() int64
}

// Phase starts a phase: name is what the lines call it, ops returns the
// operations done in it so far (nil: none are counted).
func (m *Meter) Phase(name string, ops func() int64) {
	if m == nil {
		return
	}
	if ops == nil {
		ops = func() int64 { return 0 }
	}
	m.mu.Lock()
	m.phase, m.since, m.ops = name, time.Now(), ops
	m.mu.Unlock()
}

// Counter starts a phase counted by the returned counter.
func (m *Meter) Counter(name string) *atomic.Int64 {
	c := new(atomic.Int64)
	m.Phase(name, c.Load)
	return c
}

// read returns the phase, when it began and its count now.
func (m *Meter) read() (phase string, since time.Time, ops int64) {
	m.mu.Lock()
	phase, since, count := m.phase, m.since, m.ops
	m.mu.Unlock()
	if count != nil {
		ops = count()
	}
	return phase, since, ops
}

// Printer writes a Meter's lines.
type Printer struct {
	W      io.Writer
	Prefix string        // starts every line, e.g. "presbench"
	Every  time.Duration // between lines; 0 means a second
	// After is how long a run must last before the first line: a short
	// run stays silent. 0 means 2 s.
	After time.Duration
}

// Start prints m's lines until the returned function is called; that
// function returns once no line is being written.
func (p Printer) Start(m *Meter) (stop func()) {
	every, after := p.Every, p.After
	if every <= 0 {
		every = time.Second
	}
	if after <= 0 {
		after = 2 * time.Second
	}
	start := time.Now()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var lastPhase string
		var lastSince, lastAt time.Time
		var lastOps int64
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				phase, since, ops := m.read()
				if phase == "" || now.Sub(start) < after {
					continue
				}
				// The rate over the last interval, or over the phase
				// when it began since the last line.
				from, base := since, int64(0)
				if phase == lastPhase && since.Equal(lastSince) {
					from, base = lastAt, lastOps
				}
				rate := 0.0
				if dt := now.Sub(from).Seconds(); dt > 0 && ops > base {
					rate = float64(ops-base) / dt
				}
				fmt.Fprintf(p.W, "%s: %s: %s ops, %s ops/s, %s elapsed\n", p.Prefix, phase, Count(ops), Count(int64(rate)),
					now.Sub(start).Truncate(time.Second))
				lastPhase, lastSince, lastAt, lastOps = phase, since, now, ops
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
}

// Count writes n shortly: 950, 12.3k, 4.56M.
func Count(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// IsTerminal reports whether w is a terminal, where progress lines print
// unless asked not to.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
