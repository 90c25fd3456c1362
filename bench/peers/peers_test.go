package peers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/presencekit/presence/bench/registry"
)

// TestPeersAgree checks that every peer answers the benchmark workloads
// the same way, so that the benchmarks compare equal work.
func TestPeersAgree(t *testing.T) {
	for _, p := range Peers {
		t.Run(p.Name, func(t *testing.T) {
			r := p.New(64)
			for s := uint64(1); s <= 20; s++ {
				if err := r.Track(s, "room", fmt.Sprint("user_", s), []byte(fmt.Sprintf(`{"n":%d}`, s))); err != nil {
					t.Fatal(err)
				}
				r.Track(s, "other", "x", nil)
			}
			r.Track(3, "room", "user_3b", []byte(`{"n":33}`))
			if !r.Untrack(4, "room") || r.Untrack(4, "room") {
				t.Fatal("Untrack")
			}
			if n := r.UntrackAll(5); n != 2 {
				t.Fatalf("UntrackAll = %d, want 2", n)
			}
			if r.Count("room") != 18 || r.Count("other") != 19 {
				t.Fatalf("Count room=%d other=%d", r.Count("room"), r.Count("other"))
			}
			var got []listed
			if err := json.Unmarshal(r.AppendList(nil, "room"), &got); err != nil {
				t.Fatal(err)
			}
			keys := []string{}
			for _, l := range got {
				keys = append(keys, l.Key+string(l.Meta))
			}
			sort.Strings(keys)
			var want []string
			for s := 1; s <= 20; s++ {
				switch s {
				case 3:
					want = append(want, `user_3b{"n":33}`)
				case 4, 5:
				default:
					want = append(want, fmt.Sprintf(`user_%d{"n":%d}`, s, s))
				}
			}
			sort.Strings(want)
			if fmt.Sprint(keys) != fmt.Sprint(want) {
				t.Fatalf("List = %v\nwant %v", keys, want)
			}
		})
	}
}

// TestCentrifugeStressed: the adapter presbench-peers drives holds the
// capacity, counts its entries and never writes past a buffer.
func TestCentrifugeStressed(t *testing.T) {
	c := NewCentrifuge(3)
	for s := uint64(1); s <= 3; s++ {
		if err := c.Track(s, "room", fmt.Sprint("u", s), []byte(`{"a":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Track(4, "room", "u4", nil); !registry.IsFull(err) {
		t.Fatalf("4th Track of 3: %v, want full", err)
	}
	if err := c.Track(2, "room", "u2", []byte(`{"a":2}`)); err != nil {
		t.Fatalf("an update when full: %v", err)
	}
	if c.Len() != 3 || c.Cap() != 3 {
		t.Fatalf("Len %d Cap %d", c.Len(), c.Cap())
	}
	buf := make([]byte, 4096)
	l, err := c.List("room", buf)
	if err != nil || !json.Valid(l) || c.Count("room") != 3 {
		t.Fatalf("List = %s, %v", l, err)
	}
	if _, err := c.List("room", make([]byte, 10)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("List into 10 bytes: %v", err)
	}
	d, err := c.Diff("room", buf)
	var diff struct{ Joins, Leaves []listed }
	if err != nil || json.Unmarshal(d, &diff) != nil || len(diff.Joins) != 3 || len(diff.Leaves) != 0 {
		t.Fatalf("Diff = %s, %v", d, err)
	}
	if c.UntrackAll(1) != 1 || !c.Untrack(2, "room") || c.Len() != 1 {
		t.Fatalf("Len after leaves: %d", c.Len())
	}
	if err := c.Track(5, "room", "u5", nil); err != nil {
		t.Fatalf("Track after room was made: %v", err)
	}
}
