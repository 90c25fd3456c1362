package engine

import (
	"fmt"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestLinearizableAtEveryReadBound records histories as TestLinearizable
// does with readers that take the shard lock after one or two spoiled
// windows, or never: a List's first window leaves out the history head and
// its later ones rebuild from it, and each bound takes a different path
// through them, all of which must give states the topic held.
func TestLinearizableAtEveryReadBound(t *testing.T) {
	for _, attempts := range []int{1, 2, -1} {
		t.Run(fmt.Sprint("attempts=", attempts), func(t *testing.T) {
			e, err := newEngine(Config{Capacity: 64, MaxPerSocket: 64, Shards: 1, History: 16}, attempts)
			if err != nil {
				t.Fatal(err)
			}
			history := recordHistory(t, e, 6, *linOps, uint64(50+attempts))
			if res := checkLinearizable(t, linModel, history); res != porcupine.Ok {
				t.Fatalf("history of %d operations: %s", len(history), res)
			}
			t.Logf("%d operations linearizable; %+v", len(history), e.Stats())
		})
	}
}
