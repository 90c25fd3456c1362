package peers

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
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
