// Package registry is the one adapter set over the presence registries that
// the benchmarks compare: the engine and the baseline. presbench drives a
// Stressed registry; bench/peers adds its own peers (sync.Map, centrifuge)
// behind the same Registry interface.
//
// The adapters add nothing but type conversions, so they are as safe for
// concurrent use as what they wrap: both registries are.
package registry

import (
	"errors"
	"io"

	"github.com/presencekit/presence/bench/baseline"
	"github.com/presencekit/presence/engine"
)

// Registry is what every compared registry offers. Sockets are plain
// uint64s so that peers with their own ID types fit.
type Registry interface {
	Track(s uint64, topic, key string, meta []byte) error
	Untrack(s uint64, topic string) bool
	UntrackAll(s uint64) int
	Count(topic string) int
	// AppendList appends the topic's entries as a JSON array.
	AppendList(dst []byte, topic string) []byte
}

// Stressed is what presbench's registry stress drives in addition.
type Stressed interface {
	Registry
	// List writes the topic's entries into buf; io.ErrShortBuffer if
	// they do not fit.
	List(topic string, buf []byte) ([]byte, error)
	// Diff writes the topic as a diff from nothing into buf.
	Diff(topic string, buf []byte) ([]byte, error)
	// Changes appends what changed in topic since cursor and returns the
	// next cursor.
	Changes(dst []byte, topic string, cursor engine.Cursor) ([]byte, engine.Cursor)
	Len() int
	Cap() int
	// ReadRetries counts read windows retried because a writer moved
	// the data (0 for registries that lock).
	ReadRetries() uint64
}

// Engine adapts an *engine.Engine.
type Engine struct{ E *engine.Engine }

// NewEngine returns the engine that the comparisons use: capacity entries,
// no per-socket limit below capacity, default shards and bounds.
func NewEngine(capacity int) (Engine, error) {
	e, err := engine.New(engine.Config{Capacity: capacity, MaxPerSocket: capacity})
	return Engine{e}, err
}

func (t Engine) Track(s uint64, topic, key string, meta []byte) error {
	return t.E.Track(engine.SocketID(s), topic, key, meta)
}
func (t Engine) Untrack(s uint64, topic string) bool {
	return t.E.Untrack(engine.SocketID(s), topic)
}
func (t Engine) UntrackAll(s uint64) int { return t.E.UntrackAll(engine.SocketID(s)) }
func (t Engine) Count(topic string) int  { return t.E.Count(topic) }
func (t Engine) AppendList(dst []byte, topic string) []byte {
	return t.E.AppendList(dst, topic)
}
func (t Engine) List(topic string, buf []byte) ([]byte, error) { return t.E.List(topic, buf) }
func (t Engine) Diff(topic string, buf []byte) ([]byte, error) { return t.E.Diff(topic, buf) }
func (t Engine) Changes(dst []byte, topic string, cursor engine.Cursor) ([]byte, engine.Cursor) {
	out, next, _ := t.E.AppendChanges(dst, topic, cursor)
	return out, next
}
func (t Engine) Len() int            { return t.E.Len() }
func (t Engine) Cap() int            { return t.E.Cap() }
func (t Engine) ReadRetries() uint64 { return t.E.Stats().ReadRetries }

// Baseline adapts a *baseline.Registry. It keeps no history, so its Changes
// is a full diff every time.
type Baseline struct{ R *baseline.Registry }

// NewBaseline returns a baseline registry of capacity entries.
func NewBaseline(capacity int) Baseline { return Baseline{baseline.New(capacity)} }

func (t Baseline) Track(s uint64, topic, key string, meta []byte) error {
	return t.R.Track(s, topic, key, meta)
}
func (t Baseline) Untrack(s uint64, topic string) bool { return t.R.Untrack(s, topic) }
func (t Baseline) UntrackAll(s uint64) int             { return t.R.UntrackAll(s) }
func (t Baseline) Count(topic string) int              { return t.R.Count(topic) }
func (t Baseline) AppendList(dst []byte, topic string) []byte {
	return t.R.AppendList(dst, topic)
}
func (t Baseline) List(topic string, buf []byte) ([]byte, error) { return t.R.List(topic, buf) }
func (t Baseline) Diff(topic string, buf []byte) ([]byte, error) {
	out := t.R.AppendDiff(nil, topic)
	if len(out) > len(buf) {
		return nil, io.ErrShortBuffer
	}
	return buf[:copy(buf, out)], nil
}
func (t Baseline) Changes(dst []byte, topic string, _ engine.Cursor) ([]byte, engine.Cursor) {
	return t.R.AppendDiff(dst, topic), engine.Cursor{}
}
func (t Baseline) Len() int            { return t.R.Len() }
func (t Baseline) Cap() int            { return t.R.Capacity() }
func (t Baseline) ReadRetries() uint64 { return 0 }

// ErrFull is the "full" error of peers that have no such error of their
// own, such as those of bench/peers that are held to a capacity.
var ErrFull = errors.New("registry: full")

// IsFull reports whether err is a registry's "full" error.
func IsFull(err error) bool {
	return errors.Is(err, engine.ErrFull) || errors.Is(err, baseline.ErrFull) || errors.Is(err, ErrFull)
}
