package clustermode

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/presencekit/presence/engine"
)

// visibility tracks probes from..to on a and returns how long each took to
// show in a List on b.
func visibility(a, b *benchNode, from, to int, buf []byte, done *atomic.Int64) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, to-from)
	for i := from; i < to; i++ {
		topic := fmt.Sprintf("vis:%d", i)
		start := time.Now()
		if err := a.e.Track(1<<40+engine.SocketID(i), topic, "probe", nil); err != nil {
			return nil, err
		}
		a.n.Changed(topic)
		for {
			l, err := b.e.List(topic, buf)
			if err != nil {
				return nil, err
			}
			if len(l) > 2 {
				break
			}
			if time.Since(start) > 10*time.Second {
				return nil, errors.New("an entry never became visible")
			}
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		done.Add(1)
		time.Sleep(2 * time.Millisecond)
	}
	if len(lat) == 0 {
		return nil, errors.New("no visibility sample")
	}
	return lat, nil
}

// quantiles returns the p50, p99 and max of lat in milliseconds.
func quantiles(lat []time.Duration) (p50, p99, maxMs float64) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	return q(0.5), q(0.99), q(1)
}
