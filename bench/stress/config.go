// Package stress runs a configurable mix of presence operations against
// a registry from many goroutines, measures throughput and latency, and
// optionally checks invariants while it runs. cmd/presbench is its command
// line (-mode engine); bench/peers/cmd/presbench-peers runs the same
// workloads through the registries of other libraries.
//
// # Concurrency
//
// Run may be called from several goroutines, each with its own Target;
// a Config is a value and is never modified by Run.
package stress

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Op is one kind of operation.
type Op int

// The operations, in report order.
const (
	OpTrack      Op = iota // track a pair the worker has not tracked
	OpUpdate               // track a pair again with new meta
	OpUntrack              // untrack a tracked pair
	OpUntrackAll           // untrack every entry of a socket
	OpList                 // List a topic into a fixed buffer
	OpDiff                 // Diff a topic into a fixed buffer
	OpChanges              // incremental diff of a topic since the worker's cursor
	OpCount                // Count a topic
	numOps
)

var opNames = [numOps]string{"track", "update", "untrack", "untrackall", "list", "diff", "changes", "count"}

func (o Op) String() string { return opNames[o] }

// Mix gives each operation's share in percent; the shares sum to 100.
type Mix [numOps]int

// ParseMix reads "track=20,update=20,...". Operations not named get 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("mix: %q is not op=percent", part)
		}
		i := slices.Index(opNames[:], strings.TrimSpace(name))
		if i < 0 {
			return m, fmt.Errorf("mix: unknown operation %q (want one of %s)", name, strings.Join(opNames[:], ", "))
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 || n > 100 {
			return m, fmt.Errorf("mix: %s=%s is not a percentage", name, val)
		}
		m[i] += n
		total += n
	}
	if total != 100 {
		return m, fmt.Errorf("mix: percentages sum to %d, not 100", total)
	}
	return m, nil
}

func (m Mix) String() string {
	var parts []string
	for op, p := range m {
		if p > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", Op(op), p))
		}
	}
	return strings.Join(parts, ",")
}

// DefaultMix exercises every operation.
var DefaultMix = Mix{OpTrack: 20, OpUpdate: 15, OpUntrack: 15, OpUntrackAll: 5, OpList: 20, OpDiff: 5, OpChanges: 15, OpCount: 5}

// Config is a workload.
type Config struct {
	Target   string  // the registry's name: NewTarget builds "engine" and "baseline"
	Capacity int     // registry capacity
	Shards   int     // engine shards; 0 for the default
	Topics   int     // number of topics
	Dist     string  // "uniform" or "zipf"
	ZipfS    float64 // zipf exponent, > 1
	Sockets  int     // sockets, split evenly between workers
	KeySize  int     // bytes per key
	MetaSize int     // bytes per meta
	Mix      Mix
	Workers  int
	Duration time.Duration // run until this much time has passed...
	Ops      int64         // ...or until this many operations, if > 0
	Seed     uint64
	Prefill  float64 // fraction of Capacity tracked before measuring starts
	Verify   bool
	BufSize  int // bytes of each worker's List and Diff buffer
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.Target == "":
		return errors.New("target must name a registry")
	case c.Capacity <= 0:
		return errors.New("capacity must be positive")
	case c.Shards < 0:
		return errors.New("shards must not be negative")
	case c.Topics <= 0:
		return errors.New("topics must be positive")
	case c.Dist != "uniform" && c.Dist != "zipf":
		return fmt.Errorf("dist %q: want uniform or zipf", c.Dist)
	case c.Dist == "zipf" && c.ZipfS <= 1:
		return errors.New("zipf-s must be greater than 1")
	case c.Workers <= 0:
		return errors.New("workers must be positive")
	case c.Sockets < c.Workers:
		return fmt.Errorf("sockets (%d) must be at least workers (%d)", c.Sockets, c.Workers)
	case c.KeySize < 8 || c.KeySize > 1024:
		return errors.New("key-size must be between 8 and 1024 bytes")
	case c.MetaSize < 32 || c.MetaSize > 1<<20:
		return errors.New("meta-size must be between 32 bytes and 1 MiB")
	case c.Duration <= 0 && c.Ops <= 0:
		return errors.New("give a positive duration or ops")
	case c.Ops < 0:
		return errors.New("ops must not be negative")
	case c.Prefill < 0 || c.Prefill > 1:
		return errors.New("prefill must be between 0 and 1")
	case c.BufSize <= 0:
		return errors.New("buffer size must be positive")
	case c.Verify && int64(c.Sockets)*int64(c.Topics) > 1<<24:
		return errors.New("verify tracks every (socket, topic) pair: keep sockets*topics under 16M")
	}
	sum := 0
	for _, p := range c.Mix {
		if p < 0 {
			return errors.New("mix percentages must not be negative")
		}
		sum += p
	}
	if sum != 100 {
		return fmt.Errorf("mix sums to %d, not 100", sum)
	}
	return nil
}
