package registry

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/presencekit/presence/engine"
)

// TestAdaptersAgree runs one sequence through both adapters and checks
// that they give the same answers, so that benchmarks compare equal work.
func TestAdaptersAgree(t *testing.T) {
	e, err := NewEngine(4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Stressed{e, NewBaseline(4)} {
		for s := uint64(1); s <= 4; s++ {
			if err := r.Track(s, "room", "k"+string(rune('0'+s)), []byte(`{"n":1}`)); err != nil {
				t.Fatalf("%T: Track %d: %v", r, s, err)
			}
		}
		if err := r.Track(5, "room", "k5", nil); !IsFull(err) {
			t.Fatalf("%T: fifth Track = %v, want full", r, err)
		}
		if r.Count("room") != 4 || r.Len() != 4 || r.Cap() != 4 {
			t.Fatalf("%T: Count %d Len %d Cap %d", r, r.Count("room"), r.Len(), r.Cap())
		}
		var list []struct{ Key string }
		if err := json.Unmarshal(r.AppendList(nil, "room"), &list); err != nil {
			t.Fatalf("%T: %v", r, err)
		}
		var keys []string
		for _, l := range list {
			keys = append(keys, l.Key)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"k1", "k2", "k3", "k4"}) {
			t.Fatalf("%T: List keys %v", r, keys)
		}
		if _, err := r.List("room", make([]byte, 4)); !errors.Is(err, io.ErrShortBuffer) {
			t.Fatalf("%T: List into 4 bytes = %v, want ErrShortBuffer", r, err)
		}
		if d, err := r.Diff("room", make([]byte, 4096)); err != nil || !json.Valid(d) {
			t.Fatalf("%T: Diff = %s, %v", r, d, err)
		}
		if out, _ := r.Changes(nil, "room", engine.Cursor{}); !json.Valid(out) {
			t.Fatalf("%T: Changes = %s", r, out)
		}
		if !r.Untrack(1, "room") || r.Untrack(1, "room") || r.UntrackAll(2) != 1 || r.Count("room") != 2 {
			t.Fatalf("%T: untrack bookkeeping is wrong", r)
		}
	}
}
