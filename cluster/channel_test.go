package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// Two channel.Servers joined by Nodes over NATS, with WebSocket clients:
// presence, updates and broadcasts cross nodes in Phoenix's format.

func startChatServer(t *testing.T, tn *testNode) string {
	t.Helper()
	_, url := startChatServerWith(t, tn, 0)
	return url
}

// startChatServerWith is startChatServer with a reconnect grace (0: none);
// it returns the server too.
func startChatServerWith(t *testing.T, tn *testNode, grace time.Duration) (*channel.Server, string) {
	t.Helper()
	srv, err := channel.NewServer(channel.Config{
		Presence: tn.e, Cluster: tn.n, PresenceWindow: 10 * time.Millisecond, Logger: quiet,
		ReconnectGrace: grace,
		Connect: func(_ *http.Request, p url.Values) (map[string]any, error) {
			return map[string]any{"name": p.Get("name")}, nil
		},
		Channels: []channel.Channel{{
			Topic: "room:*",
			Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
				name, _ := s.Get("name")
				if err := s.Track(topic, name.(string), []byte(`{"s":"on"}`)); err != nil {
					return nil, err
				}
				return nil, s.PushPresenceState(topic)
			},
			Handlers: map[string]channel.Handler{
				"status": func(s *channel.Socket, topic string, p json.RawMessage) (any, error) {
					name, _ := s.Get("name")
					return nil, s.Track(topic, name.(string), p)
				},
				"shout": func(s *channel.Socket, topic string, p json.RawMessage) (any, error) {
					return channel.NoReply, s.BroadcastFrom(topic, "shout", p)
				},
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http")
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialJoin(t *testing.T, base, name, topic string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"?vsn=2.0.0&name="+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &wsClient{t: t, conn: conn}
	c.send(`["1","1","` + topic + `","phx_join",{}]`)
	c.until(func(f []json.RawMessage, event string) bool { return event == "phx_reply" })
	return c
}

func (c *wsClient) send(frame string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

// until reads frames until pred holds for one, and returns its payload.
func (c *wsClient) until(pred func(f []json.RawMessage, event string) bool) json.RawMessage {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("no frame arrived that was awaited: %v", err)
		}
		var f []json.RawMessage
		var event string
		if json.Unmarshal(data, &f) != nil || len(f) != 5 || json.Unmarshal(f[3], &event) != nil {
			c.t.Fatalf("bad frame %s", data)
		}
		if pred(f, event) {
			return f[4]
		}
	}
}

type metas map[string]struct {
	Metas []map[string]any `json:"metas"`
}

func TestChannelServersAcrossNodes(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 2, nil, nil)
	// Interest, as in production: the sockets' joins make the nodes
	// follow the room.
	interest := func(c *Config) { c.Replicate, c.Linger = Interest, 100*time.Millisecond }
	a, b := startNode(t, ss[0], "a", interest), startNode(t, ss[1], "b", interest)
	urlA, urlB := startChatServer(t, a), startChatServer(t, b)

	alice := dialJoin(t, urlA, "alice", "room:1")
	bob := dialJoin(t, urlB, "bob", "room:1")
	// bob hears of alice, who is on the other node (in his state or a diff).
	var aliceRef string
	bob.until(func(f []json.RawMessage, event string) bool {
		var p struct{ Joins metas }
		var st metas
		switch event {
		case "presence_state":
			json.Unmarshal(f[4], &st)
		case "presence_diff":
			json.Unmarshal(f[4], &p)
			st = p.Joins
		}
		if m, ok := st["alice"]; ok {
			aliceRef, _ = m.Metas[0]["phx_ref"].(string)
			return true
		}
		return false
	})
	alice.until(func(f []json.RawMessage, event string) bool {
		return event == "presence_diff" && strings.Contains(string(f[4]), `"bob"`)
	})

	// alice's update reaches bob as one presence_diff: the join's
	// phx_ref_prev is the leave's phx_ref.
	alice.send(`["1","2","room:1","status",{"s":"away"}]`)
	diff := bob.until(func(f []json.RawMessage, event string) bool {
		return event == "presence_diff" && strings.Contains(string(f[4]), `"away"`)
	})
	var d struct{ Joins, Leaves metas }
	if err := json.Unmarshal(diff, &d); err != nil {
		t.Fatal(err)
	}
	j, l := d.Joins["alice"], d.Leaves["alice"]
	if len(j.Metas) != 1 || len(l.Metas) != 1 || j.Metas[0]["phx_ref_prev"] != l.Metas[0]["phx_ref"] || l.Metas[0]["phx_ref"] != aliceRef {
		t.Fatalf("the update arrived as %s, want one join with phx_ref_prev %s", diff, aliceRef)
	}
	// The same phx_ref on both nodes.
	var sa, sb engine.Snapshot
	a.e.Snapshot(&sa, "room:1")
	b.e.Snapshot(&sb, "room:1")
	refs := func(s engine.Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		for _, e := range s.Entries {
			m[string(e.Key)] = e.Ref
		}
		return m
	}
	if ra, rb := refs(sa), refs(sb); len(ra) != 2 || ra["alice"] != rb["alice"] || ra["bob"] != rb["bob"] {
		t.Fatalf("refs differ: a %v, b %v", ra, rb)
	}

	// BroadcastFrom reaches the other node, and skips only the sender.
	carol := dialJoin(t, urlA, "carol", "room:1")
	bob.send(`["1","3","room:1","shout",{"hi":1}]`)
	alice.until(func(f []json.RawMessage, event string) bool { return event == "shout" })
	carol.until(func(f []json.RawMessage, event string) bool { return event == "shout" })
	alice.send(`["1","4","room:1","shout",{"hi":2}]`)
	bob.until(func(f []json.RawMessage, event string) bool {
		return event == "shout" && strings.Contains(string(f[4]), `2`)
	})
	carol.until(func(f []json.RawMessage, event string) bool {
		return event == "shout" && strings.Contains(string(f[4]), `2`)
	})
	// alice, the sender, must not get her own shout: a round trip of a
	// later event proves nothing was queued before it.
	alice.send(`["1","5","room:1","status",{"s":"back"}]`)
	alice.until(func(f []json.RawMessage, event string) bool {
		if event == "shout" && strings.Contains(string(f[4]), `2`) {
			t.Fatal("the sender got its own BroadcastFrom")
		}
		return event == "phx_reply" && strings.Contains(string(f[1]), `"5"`)
	})

	// A node subscribes to a topic's broadcasts only while its sockets
	// are in the topic, and to its bucket's deltas until the linger ends:
	// the stream, sync and reply subscriptions remain.
	if got := b.nc.NumSubscriptions(); got != 5 {
		t.Fatalf("b has %d subscriptions with bob in the room, want 5", got)
	}
	bob.conn.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "b unsubscribes from the room", 5*time.Second, func() bool { return b.nc.NumSubscriptions() == 3 })
	if st := b.n.Stats(); st.LingerDrops != 1 || st.TopicsMirrored != 0 || st.RemoteEntries != 0 {
		t.Fatalf("b after the linger: %+v", st)
	}
}
