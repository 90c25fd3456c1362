package presbench

import (
	"errors"
	"io"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/internal/baseline"
)

// Target is a registry under test.
type Target interface {
	Track(s uint64, topic, key string, meta []byte) error
	Untrack(s uint64, topic string) bool
	UntrackAll(s uint64) int
	List(topic string, buf []byte) ([]byte, error)
	Diff(topic string, buf []byte) ([]byte, error)
	// Changes appends what changed in topic since cursor and returns the
	// next cursor.
	Changes(dst []byte, topic string, cursor uint64) ([]byte, uint64)
	Count(topic string) int
	Len() int
	Cap() int
	// ReadRetries counts read windows retried because a writer moved
	// the data (0 for registries that lock).
	ReadRetries() uint64
}

// NewTarget builds the registry that c names.
func NewTarget(c *Config) (Target, error) {
	switch c.Target {
	case "engine":
		e, err := engine.New(engine.Config{
			Capacity:     c.Capacity,
			Shards:       c.Shards,
			MaxKeyLen:    max(c.KeySize, engine.DefaultMaxKeyLen),
			MaxMetaLen:   max(c.MetaSize, engine.DefaultMaxMetaLen),
			MaxPerSocket: c.Capacity,
		})
		if err != nil {
			return nil, err
		}
		return EngineTarget{e}, nil
	case "baseline":
		return BaselineTarget{baseline.New(c.Capacity)}, nil
	}
	return nil, errors.New("unknown target " + c.Target)
}

// EngineTarget adapts an *engine.Engine.
type EngineTarget struct{ E *engine.Engine }

func (t EngineTarget) Track(s uint64, topic, key string, meta []byte) error {
	return t.E.Track(engine.SocketID(s), topic, key, meta)
}
func (t EngineTarget) Untrack(s uint64, topic string) bool {
	return t.E.Untrack(engine.SocketID(s), topic)
}
func (t EngineTarget) UntrackAll(s uint64) int { return t.E.UntrackAll(engine.SocketID(s)) }
func (t EngineTarget) List(topic string, buf []byte) ([]byte, error) {
	return t.E.List(topic, buf)
}
func (t EngineTarget) Diff(topic string, buf []byte) ([]byte, error) {
	return t.E.Diff(topic, buf)
}
func (t EngineTarget) Changes(dst []byte, topic string, cursor uint64) ([]byte, uint64) {
	out, next, _ := t.E.AppendChanges(dst, topic, engine.Cursor(cursor))
	return out, uint64(next)
}
func (t EngineTarget) Count(topic string) int { return t.E.Count(topic) }
func (t EngineTarget) Len() int               { return t.E.Len() }
func (t EngineTarget) Cap() int               { return t.E.Cap() }
func (t EngineTarget) ReadRetries() uint64    { return t.E.Stats().ReadRetries }

// BaselineTarget adapts the sync.RWMutex+maps+encoding/json registry. It
// keeps no history, so its Changes is a full diff every time.
type BaselineTarget struct{ R *baseline.Registry }

func (t BaselineTarget) Track(s uint64, topic, key string, meta []byte) error {
	return t.R.Track(s, topic, key, meta)
}
func (t BaselineTarget) Untrack(s uint64, topic string) bool { return t.R.Untrack(s, topic) }
func (t BaselineTarget) UntrackAll(s uint64) int             { return t.R.UntrackAll(s) }
func (t BaselineTarget) List(topic string, buf []byte) ([]byte, error) {
	return t.R.List(topic, buf)
}
func (t BaselineTarget) Diff(topic string, buf []byte) ([]byte, error) {
	out := t.R.AppendDiff(nil, topic)
	if len(out) > len(buf) {
		return nil, io.ErrShortBuffer
	}
	return buf[:copy(buf, out)], nil
}
func (t BaselineTarget) Changes(dst []byte, topic string, _ uint64) ([]byte, uint64) {
	return t.R.AppendDiff(dst, topic), 0
}
func (t BaselineTarget) Count(topic string) int { return t.R.Count(topic) }
func (t BaselineTarget) Len() int               { return t.R.Len() }
func (t BaselineTarget) Cap() int               { return t.R.Capacity() }
func (t BaselineTarget) ReadRetries() uint64    { return 0 }

// failure names why an operation failed, for the report.
func failure(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, engine.ErrFull), errors.Is(err, baseline.ErrFull):
		return "full"
	case errors.Is(err, io.ErrShortBuffer):
		return "short buffer"
	case errors.Is(err, engine.ErrSocketLimit):
		return "socket limit"
	default:
		return "invalid"
	}
}
