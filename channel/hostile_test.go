package channel

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/phx"
	hostile "github.com/presencekit/presence/testdata"
)

// TestHostileCatalogue runs the server's part of testdata/hostile.json
// against a live server: each hostile input gets its error reply or close,
// and a bystander in the same room keeps its presence and its connection.
func TestHostileCatalogue(t *testing.T) {
	cases, err := hostile.Load("server")
	if err != nil {
		t.Fatal(err)
	}
	// A burst that the catalogue's 10,000 joins from one socket fit in,
	// so that they meet the topic limit; TestRateLimitFlood floods.
	ts := newTestServer(t, func(c *Config) { c.MaxEventsBurst = 20_000 })
	bystander := ts.dial("bystander")
	bystander.join("room:lobby", `{}`)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			frame, err := c.Value("frame", "")
			if err != nil {
				t.Fatal(err)
			}
			h := ts.dial("hostile")
			h.join("room:lobby", `{"no_state":true}`)
			switch c.Op {
			case "frame", "binary":
				typ := websocket.MessageText
				if c.Op == "binary" {
					typ = websocket.MessageBinary
				}
				h.conn.Write(context.Background(), typ, frame)
				switch {
				case strings.HasPrefix(c.Expect, "close "):
					if got := fmt.Sprint("close ", int(h.closed())); got != c.Expect {
						t.Fatalf("%s, want %s", got, c.Expect)
					}
				case c.Expect == "reply ok":
					if status, resp := h.reply("1"); status != "ok" {
						t.Fatalf("reply %s %s, want ok", status, resp)
					}
				case strings.HasPrefix(c.Expect, "reply error "):
					status, resp := h.reply("1")
					if want := strings.TrimPrefix(c.Expect, "reply error "); status != "error" || string(resp) != string(phx.AppendReason(nil, want)) {
						t.Fatalf("reply %s %s, want error %q", status, resp, want)
					}
				default:
					t.Fatalf("unknown expectation %q", c.Expect)
				}
			case "join_as":
				user, _ := c.Value("user", "")
				q, _, err := ts.tryDial(url.Values{"user": {string(user)}})
				if err != nil {
					t.Fatal(err)
				}
				q.join("room:quoted", `{"meta":"{}"}`)
				st := q.expect("presence_state", isEvent("presence_state"))
				p := decodePresence(t, st.Payload)
				if len(p[string(user)].Metas) != 1 {
					t.Fatalf("key %q not found in %s", user, st.Payload)
				}
				if c.Expect != "ok" {
					t.Fatalf("unknown expectation %q", c.Expect)
				}
			case "join_many":
				var ok, refused int
				for i := range c.Times {
					ref := h.push(fmt.Sprint(i), fmt.Sprint("room:many", i), "phx_join", `{"no_state":true,"no_track":true}`)
					status, resp := h.reply(ref)
					switch {
					case status == "ok":
						ok++
					case string(resp) == `{"reason":"too_many_topics"}`:
						refused++
					default:
						t.Fatalf("join %d: %s %s", i, status, resp)
					}
				}
				if want := fmt.Sprintf("reply error too_many_topics after %d", ok+1); c.Expect != want || refused != c.Times-ok {
					t.Fatalf("%d joins ok, %d refused; catalogue expects %q", ok, refused, c.Expect)
				}
				// Everyone else still joins.
				ts.dial("other").join("room:many1", `{}`)
			default:
				t.Fatalf("unknown op %q", c.Op)
			}
			// The bystander is untouched and still connected.
			if got := ts.srv.Presence().Count("room:lobby"); got < 1 {
				t.Fatalf("bystander's presence gone: Count %d", got)
			}
			ref := bystander.push("", "phoenix", "heartbeat", "{}")
			bystander.reply(ref)
			h.conn.CloseNow()
		})
	}
}
