package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// A member whose connection drops and who comes back within the grace
// keeps its meta, joined_at and status included: the room is sent nothing.
func TestDemoReconnectSendsTheRoomNothing(t *testing.T) {
	presence, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newNodeServer(presence, 5*time.Millisecond, time.Minute, nil, "local",
		func(c *channel.Config) { c.ReconnectGrace = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { // after the clients' cleanups, which close them
		srv.Shutdown(context.Background())
		hs.Close()
	})
	base := "ws" + strings.TrimPrefix(hs.URL, "http") + "?vsn=2.0.0&name="
	const session = "&session=0123456789abcdef0123"

	bob := dialDemo(t, base+"bob")
	bob.join("chat:lobby")
	alice := dialDemo(t, base+"alice"+session)
	alice.join("chat:lobby")
	alice.send(`["1","2","chat:lobby","set_status",{"status":"away"}]`)
	bob.until(`alice's status`, func(event, payload string) bool {
		return event == "presence_diff" && strings.Contains(payload, `"away"`)
	})
	alice.conn.CloseNow() // no close frame
	waitStat(t, "the loss to be seen", func() bool { return srv.Stats().HeldSessions == 1 })

	alice = dialDemo(t, base+"alice"+session)
	alice.join("chat:lobby")
	dialDemo(t, base+"carol").join("chat:lobby")
	bob.until("carol's join", func(event, payload string) bool {
		if strings.Contains(payload, `"alice"`) {
			t.Fatalf("the room was sent %s %s", event, payload)
		}
		return event == "presence_diff" && strings.Contains(payload, `"carol"`)
	})
	if st := srv.Stats(); st.Resumes != 1 {
		t.Fatalf("stats %+v: want one resume", st)
	}
}

type demoClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialDemo(t *testing.T, url string) *demoClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &demoClient{t: t, conn: conn}
}

func (c *demoClient) send(frame string) {
	c.t.Helper()
	if err := c.conn.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *demoClient) join(topic string) {
	c.t.Helper()
	c.send(`["1","1","` + topic + `","phx_join",{}]`)
	c.until("the join reply", func(event, payload string) bool { return event == "phx_reply" })
}

// until reads frames until pred holds for one's event and payload.
func (c *demoClient) until(what string, pred func(event, payload string) bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		var f []json.RawMessage
		var event string
		if json.Unmarshal(data, &f) != nil || len(f) != 5 || json.Unmarshal(f[3], &event) != nil {
			c.t.Fatalf("bad frame %s", data)
		}
		if pred(event, string(f[4])) {
			return
		}
	}
}

func waitStat(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
