package stress

import (
	"errors"
	"fmt"
	"io"

	"github.com/presencekit/presence/bench/registry"
	"github.com/presencekit/presence/engine"
)

// Target is a registry under test.
type Target = registry.Stressed

// ErrUnknownTarget is NewTarget's error for a name it does not know.
var ErrUnknownTarget = errors.New("stress: unknown target")

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
		return registry.Engine{E: e}, nil
	case "baseline":
		return registry.NewBaseline(c.Capacity), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownTarget, c.Target)
}

// failure names why an operation failed, for the report.
func failure(err error) string {
	switch {
	case err == nil:
		return ""
	case registry.IsFull(err):
		return "full"
	case errors.Is(err, io.ErrShortBuffer):
		return "short buffer"
	case errors.Is(err, engine.ErrSocketLimit):
		return "socket limit"
	default:
		return "invalid"
	}
}
