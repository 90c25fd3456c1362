package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/presencekit/presence/phx"
)

// TestPresenceListAcrossCluster: a page read on one node holds the
// entries of the other nodes, in presence_state's format (a phx_ref on
// every meta), a key on two nodes as one key with both metas, and its
// count is the cluster's distinct keys.
func TestPresenceListAcrossCluster(t *testing.T) {
	nodes := startCountCluster(t, 3)
	const topic = "room:paged"
	pager, in := wsDial(t, nodes[0].url, "observer")
	wsSend(t, pager, `["1","1","`+topic+`","phx_join",{"presence":"count"}]`)
	awaitFrame(t, in, "join reply", func(f phx.Frame) bool { return f.Event == "phx_reply" })
	// u0..u5 on nodes 1 and 2; u1 also on node 2, u2 also on node 1.
	joins := []struct {
		node int
		name string
	}{{1, "u0"}, {2, "u1"}, {1, "u2"}, {2, "u3"}, {1, "u4"}, {2, "u5"}, {2, "u2"}, {1, "u1"}}
	for _, j := range joins {
		conn, jin := wsDial(t, nodes[j.node].url, j.name)
		wsSend(t, conn, `["1","1","`+topic+`","phx_join",{}]`)
		awaitFrame(t, jin, "join reply", func(f phx.Frame) bool { return f.Event == "phx_reply" })
	}
	type page struct {
		Presences map[string]struct {
			Metas []map[string]any `json:"metas"`
		} `json:"presences"`
		Next  *string `json:"next"`
		Count int     `json:"count"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for ref := 2; ; ref++ {
		wsSend(t, pager, fmt.Sprintf(`["1","%d","%s","presence_list",{"limit":1000}]`, ref, topic))
		f := awaitFrame(t, in, "page", func(f phx.Frame) bool { return f.Event == "phx_reply" && f.Ref.S == fmt.Sprint(ref) })
		var r struct {
			Status   string
			Response page
		}
		if err := json.Unmarshal(f.Payload, &r); err != nil || r.Status != "ok" {
			t.Fatalf("page: %s", f.Payload)
		}
		p := r.Response
		if p.Count == 6 && len(p.Presences) == 6 && len(p.Presences["u1"].Metas) == 2 && len(p.Presences["u2"].Metas) == 2 {
			for k, v := range p.Presences {
				for _, m := range v.Metas {
					if ref, ok := m["phx_ref"].(string); !ok || ref == "" {
						t.Fatalf("%s: a meta without phx_ref: %s", k, f.Payload)
					}
				}
			}
			if p.Next != nil {
				t.Fatalf("next %q on the only page", *p.Next)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page on node 0 never held the cluster's presence: %s", f.Payload)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCountAfterNodeShutdown: when one node of a cluster shuts down, its
// members leave every roster, and a count-mode socket on another node
// counts the keys that are left.
func TestCountAfterNodeShutdown(t *testing.T) {
	nodes := startCountCluster(t, 2)
	const topic = "room:shut"
	obs, in := wsDial(t, nodes[0].url, "observer")
	wsSend(t, obs, `["1","1","`+topic+`","phx_join",{"presence":"count"}]`)
	for i, name := range []string{"a", "b", "c", "a"} {
		conn, jin := wsDial(t, nodes[i%2].url, name)
		wsSend(t, conn, `["1","1","`+topic+`","phx_join",{}]`)
		awaitFrame(t, jin, "join reply", func(f phx.Frame) bool { return f.Event == "phx_reply" })
	}
	count := func(want string) {
		t.Helper()
		awaitFrame(t, in, "count "+want, func(f phx.Frame) bool {
			return f.Event == "presence_count" && string(f.Payload) == want
		})
	}
	count(`{"count":3,"entries":4}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[1].srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	count(`{"count":2,"entries":2}`) // a and c on node 0
}
