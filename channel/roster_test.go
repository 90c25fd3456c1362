package channel

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

func TestRosterDiffTo(t *testing.T) {
	entry := func(ref uint64, key string) engine.Entry {
		return engine.Entry{Socket: engine.SocketID(ref), Ref: ref, Key: []byte(key), Meta: []byte(`{}`)}
	}
	r := roster{}
	r.set([]engine.Entry{entry(1, "a"), entry(2, "b")})
	r.apply([]engine.Entry{entry(3, "c")}, []engine.Entry{entry(1, "a")})
	joins, leaves := r.diffTo([]engine.Entry{entry(3, "c"), entry(4, "d")})
	if len(joins) != 1 || joins[0].Ref != 4 || len(leaves) != 1 || leaves[0].Ref != 2 || string(leaves[0].Key) != "b" {
		t.Fatalf("joins %+v, leaves %+v", joins, leaves)
	}
	if len(r) != 2 || r[3].key != "c" || r[4].key != "d" {
		t.Fatalf("roster after diffTo: %+v", r)
	}
}

// TestResyncWithoutFullState: when more changes happen in one window than
// the engine's history holds, subscribers catch up with one presence_diff
// (the roster's difference), not with a presence_state each, and end up
// with the engine's presence.
func TestResyncWithoutFullState(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 64, History: 2})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		c.PresenceWindow = 100 * time.Millisecond
	})
	w := ts.dial("watcher")
	w.join("room:lobby", `{}`)
	view := decodePresence(t, w.expect("presence_state", isEvent("presence_state")).Payload)
	var clients []*client
	for i := range 10 {
		c := ts.dial(fmt.Sprint("user", i))
		c.join("room:lobby", `{"no_state":true}`)
		clients = append(clients, c)
	}
	for _, c := range clients[:4] {
		c.conn.CloseNow()
	}
	want := map[string]bool{"watcher": true}
	for i := 4; i < 10; i++ {
		want[fmt.Sprint("user", i)] = true
	}
	deadline := time.After(5 * time.Second)
	for !sameKeys(view, want) {
		select {
		case f := <-w.in:
			switch f.Event {
			case "presence_state":
				t.Fatalf("a subscriber got presence_state again: %s", f.Payload)
			case "presence_diff":
				applyDiff(t, view, f)
			}
		case <-deadline:
			t.Fatalf("watcher's view %v, want the keys of %v", keys(view), want)
		}
	}
	if n := ts.srv.Stats().PresenceStates; n != 1 {
		t.Fatalf("%d presence_state pushes, want the watcher's one", n)
	}
}

func applyDiff(t *testing.T, view presenceMap, f phx.Frame) {
	t.Helper()
	var diff struct{ Joins, Leaves presenceMap }
	if err := json.Unmarshal(f.Payload, &diff); err != nil {
		t.Fatal(err)
	}
	for k, v := range diff.Joins {
		p := view[k]
		p.Metas = append(p.Metas, v.Metas...)
		view[k] = p
	}
	for k, v := range diff.Leaves {
		p := view[k]
		for _, gone := range v.Metas {
			for i, m := range p.Metas {
				if m["phx_ref"] == gone["phx_ref"] {
					p.Metas = append(p.Metas[:i], p.Metas[i+1:]...)
					break
				}
			}
		}
		if len(p.Metas) == 0 {
			delete(view, k)
		} else {
			view[k] = p
		}
	}
}

func sameKeys(view presenceMap, want map[string]bool) bool {
	if len(view) != len(want) {
		return false
	}
	for k, p := range view {
		if !want[k] || len(p.Metas) != 1 {
			return false
		}
	}
	return true
}

func keys(view presenceMap) []string {
	var out []string
	for k := range view {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
