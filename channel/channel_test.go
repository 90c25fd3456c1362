package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// testServer runs a Server on loopback with a chat-like channel.
type testServer struct {
	t    testing.TB
	srv  *Server
	http *httptest.Server
	url  string
	// counts holds each count-mode client's last presence_count, for
	// settleCount.
	counts map[*client]presenceCount
}

func newTestServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	e, err := engine.New(engine.Config{Capacity: 4096, MaxPerSocket: 100})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Presence:       e,
		PresenceWindow: 20 * time.Millisecond,
		Connect: func(r *http.Request, params url.Values) (map[string]any, error) {
			if params.Get("token") == "bad" {
				return nil, errors.New("bad token")
			}
			return map[string]any{"user": params.Get("user")}, nil
		},
		Channels: []Channel{
			{
				Topic: "room:*",
				Join: func(s *Socket, topic string, params json.RawMessage) (any, error) {
					var p struct {
						Reject   string `json:"reject"`
						Fail     string `json:"fail"`
						Meta     string `json:"meta"`
						NoTrack  bool   `json:"no_track"`
						NoState  bool   `json:"no_state"`
						PanicNow bool   `json:"panic"`
					}
					json.Unmarshal(params, &p)
					if p.PanicNow {
						panic("join panicked")
					}
					user, _ := s.Get("user")
					if !p.NoTrack {
						meta := p.Meta
						if meta == "" {
							meta = `{"name":"` + user.(string) + `"}`
						}
						if err := s.Track(topic, user.(string), []byte(meta)); err != nil {
							return nil, err
						}
					}
					if p.Reject != "" {
						return nil, Reason(p.Reject)
					}
					if p.Fail != "" {
						return nil, errors.New(p.Fail)
					}
					if !p.NoState {
						s.PushPresenceState(topic)
					}
					return map[string]string{"welcome": user.(string)}, nil
				},
				Handlers: map[string]Handler{
					"echo": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						return payload, nil
					},
					"fail": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						return nil, Reason("it failed")
					},
					"fail_plain": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						return nil, errors.New("db: connection to 10.0.0.7 refused")
					},
					"silent": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						return NoReply, nil
					},
					"shout": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						return NoReply, s.Broadcast(topic, "shout", payload)
					},
					"update": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						user, _ := s.Get("user")
						return nil, s.Track(topic, user.(string), payload)
					},
					"panic": func(s *Socket, topic string, payload json.RawMessage) (any, error) {
						panic("handler panicked")
					},
				},
			},
			{Topic: "exact", Join: func(s *Socket, topic string, _ json.RawMessage) (any, error) { return nil, nil }},
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	hs := httptest.NewServer(mux)
	ts := &testServer{t: t, srv: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return ts
}

// client is a raw Phoenix v2 client over a real WebSocket.
type client struct {
	t    testing.TB
	conn *websocket.Conn
	ref  int
	in   chan phx.Frame
	err  chan error
}

func (ts *testServer) dial(user string) *client {
	ts.t.Helper()
	c, _, err := ts.tryDial(url.Values{"user": {user}, "vsn": {"2.0.0"}})
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

func (ts *testServer) tryDial(params url.Values) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, ts.url+"?"+params.Encode(), nil)
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 24)
	c := &client{t: ts.t, conn: conn, in: make(chan phx.Frame, 10000), err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.err <- err
				close(c.in)
				return
			}
			f, perr := phx.ParseFrame(data)
			if perr != nil {
				c.err <- fmt.Errorf("server sent a bad frame %q", data)
				close(c.in)
				return
			}
			c.in <- f
		}
	}()
	ts.t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.conn.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// push sends an event and returns its ref.
func (c *client) push(joinRef, topic, event, payload string) string {
	c.t.Helper()
	c.ref++
	ref := fmt.Sprint(c.ref)
	jr := "null"
	if joinRef != "" {
		jr = `"` + joinRef + `"`
	}
	c.sendRaw(fmt.Sprintf(`[%s,"%s",%q,%q,%s]`, jr, ref, topic, event, payload))
	return ref
}

// expect reads until a frame satisfies ok, and fails after a timeout.
func (c *client) expect(what string, ok func(phx.Frame) bool) phx.Frame {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, open := <-c.in:
			if !open {
				c.t.Fatalf("connection closed while waiting for %s: %v", what, <-c.err)
			}
			if ok(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *client) reply(ref string) (status string, response json.RawMessage) {
	c.t.Helper()
	f := c.expect("reply to "+ref, func(f phx.Frame) bool { return f.Event == "phx_reply" && f.Ref.S == ref })
	var p struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		c.t.Fatal(err)
	}
	return p.Status, p.Response
}

func (c *client) join(topic, params string) (joinRef string) {
	c.t.Helper()
	c.ref++
	ref := fmt.Sprint(c.ref)
	c.sendRaw(fmt.Sprintf(`["%s","%s",%q,"phx_join",%s]`, ref, ref, topic, params))
	if status, resp := c.reply(ref); status != "ok" {
		c.t.Fatalf("join %s: %s %s", topic, status, resp)
	}
	return ref
}

// closed waits for the server to close the connection and returns the
// close status.
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, open := <-c.in:
			if !open {
				return websocket.CloseStatus(<-c.err)
			}
		case <-timeout:
			c.t.Fatal("connection not closed")
		}
	}
}

type presenceMap map[string]struct {
	Metas []map[string]any `json:"metas"`
}

func decodePresence(t testing.TB, raw json.RawMessage) presenceMap {
	t.Helper()
	var m presenceMap
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("presence %s: %v", raw, err)
	}
	return m
}

func isEvent(event string) func(phx.Frame) bool {
	return func(f phx.Frame) bool { return f.Event == event }
}

// waitFor polls cond until it holds, for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 5*time.Second, what, cond)
}

// waitWithin polls cond until it holds, for up to d.
func waitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJoinReplyAndPresenceState(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	c.ref++
	c.sendRaw(`["7","7","room:lobby","phx_join",{}]`)
	f := c.expect("join reply", isEvent("phx_reply"))
	if f.JoinRef.S != "7" || f.Ref.S != "7" || f.Topic != "room:lobby" {
		t.Fatalf("reply frame %+v", f)
	}
	if string(f.Payload) != `{"status":"ok","response":{"welcome":"alice"}}` {
		t.Fatalf("reply payload %s", f.Payload)
	}
	st := c.expect("presence_state", isEvent("presence_state"))
	if st.JoinRef.S != "7" {
		t.Fatalf("presence_state join_ref %+v", st.JoinRef)
	}
	p := decodePresence(t, st.Payload)
	if len(p) != 1 || len(p["alice"].Metas) != 1 || p["alice"].Metas[0]["name"] != "alice" || p["alice"].Metas[0]["phx_ref"] == "" {
		t.Fatalf("presence_state %s", st.Payload)
	}
	if ts.srv.Presence().Count("room:lobby") != 1 {
		t.Fatal("join did not track")
	}
}

// A change made after a client has its join reply reaches it as a
// presence_diff: the presence_state it gets was taken before the reply
// went out, so the change is not folded into it.
func TestChangeAfterJoinReplyComesAsDiff(t *testing.T) {
	ts := newTestServer(t, nil)
	tracked := make(chan struct{})
	ts.srv.testHookSnapshot = func() {
		if ts.srv.stats.pushes.Load() == 0 {
			return // nothing is out: the client cannot have its reply
		}
		// The reply is out before the snapshot: let the client act on it.
		select {
		case <-tracked:
		case <-time.After(5 * time.Second):
		}
	}
	alice := ts.dial("alice")
	alice.sendRaw(`["1","1","room:lobby","phx_join",{}]`)
	alice.expect("join reply", isEvent("phx_reply"))
	if err := ts.srv.Presence().Track(1000, "room:lobby", "bob", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	close(tracked)
	ts.srv.presenceChanged("room:lobby")

	st := alice.expect("presence_state", isEvent("presence_state"))
	if got := keys(decodePresence(t, st.Payload)); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("presence_state holds %v, want alice alone: bob came after the reply", got)
	}
	alice.expect("bob's join as a diff", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && strings.Contains(string(f.Payload), `"joins":{"bob"`)
	})
}

func TestHeartbeat(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	ref := c.push("", "phoenix", "heartbeat", "{}")
	if status, resp := c.reply(ref); status != "ok" || string(resp) != "{}" {
		t.Fatalf("heartbeat reply %s %s", status, resp)
	}
	ref = c.push("", "phoenix", "dance", "{}")
	if status, _ := c.reply(ref); status != "error" {
		t.Fatal("unknown phoenix event accepted")
	}
}

func TestHeartbeatTimeoutClosesAndCleansUp(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.HeartbeatTimeout = 500 * time.Millisecond })
	c := ts.dial("alice")
	c.join("room:lobby", `{}`)
	if code := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status %v, want policy violation", code)
	}
	waitFor(t, "presence cleanup", func() bool { return ts.srv.Presence().Len() == 0 })
}

func TestHeartbeatsKeepSocketOpen(t *testing.T) {
	// Heartbeats every fifth of the timeout, for twice the timeout: a
	// stall of the loaded test machine does not pass for silence.
	ts := newTestServer(t, func(c *Config) { c.HeartbeatTimeout = 500 * time.Millisecond })
	c := ts.dial("alice")
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		ref := c.push("", "phoenix", "heartbeat", "{}")
		c.reply(ref)
	}
}

func TestLeaveUntracksRepliesAndCloses(t *testing.T) {
	ts := newTestServer(t, nil)
	a, b := ts.dial("alice"), ts.dial("bob")
	jr := a.join("room:lobby", `{}`)
	b.join("room:lobby", `{}`)
	b.expect("bob's presence_state", isEvent("presence_state")) // bob has seen alice
	ref := a.push(jr, "room:lobby", "phx_leave", "{}")
	if status, _ := a.reply(ref); status != "ok" {
		t.Fatal("leave not acknowledged")
	}
	a.expect("phx_close", func(f phx.Frame) bool { return f.Event == "phx_close" && f.JoinRef.S == jr })
	d := b.expect("alice's leave", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && strings.Contains(string(f.Payload), `"leaves":{"alice"`)
	})
	var diff struct{ Joins, Leaves presenceMap }
	json.Unmarshal(d.Payload, &diff)
	if len(diff.Leaves["alice"].Metas) != 1 || len(diff.Joins) != 0 {
		t.Fatalf("diff %s", d.Payload)
	}
	if ts.srv.Presence().Count("room:lobby") != 1 {
		t.Fatal("leave did not untrack")
	}
	// After leaving, the topic is not joined.
	ref = a.push(jr, "room:lobby", "echo", "{}")
	if status, resp := a.reply(ref); status != "error" || !strings.Contains(string(resp), "unmatched topic") {
		t.Fatalf("push after leave: %s %s", status, resp)
	}
}

func TestUnknownTopicGetsErrorReply(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	ref := c.push("1", "nowhere", "phx_join", "{}")
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"unmatched topic"}` {
		t.Fatalf("join of unknown topic: %s %s", status, resp)
	}
	ref = c.push("", "room:lobby", "echo", `{"x":1}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"unmatched topic"}` {
		t.Fatalf("event on unjoined topic: %s %s", status, resp)
	}
	ref = c.push("", "room:lobby", "phx_leave", `{}`)
	if status, _ := c.reply(ref); status != "error" {
		t.Fatal("leave of unjoined topic accepted")
	}
	c.join("exact", "{}")
	ref = c.push("1", "exactly", "phx_join", "{}")
	if status, _ := c.reply(ref); status != "error" {
		t.Fatal("exact pattern matched a longer topic")
	}
}

func TestEventsRepliesAndErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	jr := c.join("room:lobby", `{}`)
	ref := c.push(jr, "room:lobby", "echo", `{"n":[1,2]}`)
	if status, resp := c.reply(ref); status != "ok" || string(resp) != `{"n":[1,2]}` {
		t.Fatalf("echo: %s %s", status, resp)
	}
	ref = c.push(jr, "room:lobby", "fail", `{}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"it failed"}` {
		t.Fatalf("fail: %s %s", status, resp)
	}
	ref = c.push(jr, "room:lobby", "nope", `{}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"unmatched event"}` {
		t.Fatalf("unknown event: %s %s", status, resp)
	}
	silent := c.push(jr, "room:lobby", "silent", `{}`)
	after := c.push(jr, "room:lobby", "echo", `{}`)
	f := c.expect("a reply", isEvent("phx_reply"))
	if f.Ref.S == silent || f.Ref.S != after {
		t.Fatalf("NoReply handler replied: %+v", f)
	}
}

func TestPanickingHandlerCrashesTheChannel(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	jr := c.join("room:lobby", `{}`)
	ref := c.push(jr, "room:lobby", "panic", `{}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"internal error"}` {
		t.Fatalf("panicking handler: %s %s", status, resp)
	}
	c.expect("phx_error", func(f phx.Frame) bool { return f.Event == "phx_error" && f.JoinRef.S == jr })
	if ts.srv.Presence().Count("room:lobby") != 0 {
		t.Fatal("a crashed channel kept its presence")
	}
	// The connection survives, and the client can rejoin.
	c.join("room:lobby", `{}`)
	if ts.srv.Presence().Count("room:lobby") != 1 {
		t.Fatal("rejoin after a crash did not track")
	}
}

func TestRejectedJoinLeavesNoPresence(t *testing.T) {
	// The window is wide, so that the rejected join's Track and Untrack
	// fall into one even on a loaded machine.
	ts := newTestServer(t, func(c *Config) { c.PresenceWindow = 200 * time.Millisecond })
	watcher := ts.dial("bob")
	watcher.join("room:lobby", `{}`)
	c := ts.dial("alice")
	ref := c.push("9", "room:lobby", "phx_join", `{"reject":"room is full"}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"room is full"}` {
		t.Fatalf("rejected join: %s %s", status, resp)
	}
	if n := ts.srv.Presence().Count("room:lobby"); n != 1 {
		t.Fatalf("Count = %d after a join that tracked and then rejected", n)
	}
	ref = c.push("10", "room:lobby", "phx_join", `{"panic":true}`)
	if status, _ := c.reply(ref); status != "error" {
		t.Fatal("panicking join accepted")
	}
	// The socket is not a member: events get an error.
	ref = c.push("9", "room:lobby", "echo", "{}")
	if status, _ := c.reply(ref); status != "error" {
		t.Fatal("rejected socket can push")
	}
	// bob never sees alice in a diff that stays: a join and leave inside
	// one window cancel out.
	time.Sleep(300 * time.Millisecond)
	for {
		select {
		case f := <-watcher.in:
			if f.Event == "presence_diff" && strings.Contains(string(f.Payload), `"joins":{"alice"`) {
				t.Fatalf("watcher saw a rejected join: %s", f.Payload)
			}
			continue
		default:
		}
		break
	}
}

func TestAbruptCloseCleansPresence(t *testing.T) {
	ts := newTestServer(t, nil)
	a, b := ts.dial("alice"), ts.dial("bob")
	a.join("room:lobby", `{}`)
	a.join("room:other", `{}`)
	b.join("room:lobby", `{}`)
	// bob has seen alice.
	b.expect("bob's presence_state", isEvent("presence_state"))
	a.conn.CloseNow() // TCP closed, no close frame
	b.expect("alice's leave", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && strings.Contains(string(f.Payload), `"leaves":{"alice"`)
	})
	waitFor(t, "cleanup", func() bool {
		e := ts.srv.Presence()
		return e.Count("room:lobby") == 1 && e.Count("room:other") == 0 && ts.srv.Stats().Sockets == 1
	})
}

func TestSlowConsumerIsDroppedOthersKeepReceiving(t *testing.T) {
	ts := newTestServer(t, nil) // the default bound, 1 MiB
	fast := ts.dial("fast")
	fast.join("room:lobby", `{"no_state":true,"no_track":true}`)

	// slow joins and then never reads.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ts.url+"?user=slow&vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:lobby","phx_join",{"no_state":true}]`))
	waitFor(t, "slow to join", func() bool { return ts.srv.Presence().Count("room:lobby") == 1 })

	big := `{"blob":"` + strings.Repeat("x", 32<<10) + `"}`
	const n = 400
	got := make(chan int)
	var received atomic.Int64
	go func() {
		count := 0
		for f := range fast.in {
			if f.Event == "big" {
				count++
				received.Store(int64(count))
				if count == n {
					break
				}
			}
		}
		got <- count
	}()
	for i := range n {
		if err := ts.srv.Broadcast("room:lobby", "big", json.RawMessage(big)); err != nil {
			t.Fatal(err)
		}
		// fast keeps up (never more than 8 behind); slow never reads.
		waitFor(t, "fast to keep up", func() bool { return received.Load() >= int64(i-8) })
	}
	select {
	case c := <-got:
		if c != n {
			t.Fatalf("fast client got %d of %d", c, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fast client stalled")
	}
	waitFor(t, "slow consumer dropped", func() bool {
		return ts.srv.Stats().Drops >= 1 && ts.srv.Presence().Count("room:lobby") == 0
	})
	if st := ts.srv.Stats(); st.Drops != 1 {
		t.Fatalf("%d sockets dropped, want only slow", st.Drops)
	}
	waitFor(t, "queues to drain", func() bool { return ts.srv.Stats().QueuedBytes == 0 })
}

func TestOversizeFrameCloses(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxFrameBytes = 1024 })
	c := ts.dial("alice")
	c.join("room:lobby", `{}`)
	c.sendRaw(`[null,"1","room:lobby","echo",{"x":"` + strings.Repeat("y", 2000) + `"}]`)
	if code := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %v, want 1009", code)
	}
	waitFor(t, "cleanup", func() bool { return ts.srv.Presence().Len() == 0 })
}

func TestBadFrames(t *testing.T) {
	ts := newTestServer(t, nil)
	// Frames whose ref and topic can be read get an error reply.
	c := ts.dial("alice")
	for _, frame := range []string{
		`[null,"5","room:lobby",42,{}]`,
		`[null,"5","room:lobby","",{}]`,
	} {
		c.sendRaw(frame)
		if status, resp := c.reply("5"); status != "error" || !strings.Contains(string(resp), "malformed") {
			t.Fatalf("%s: %s %s", frame, status, resp)
		}
	}
	// Anything else closes the connection.
	for _, garbage := range []string{`not json`, `{"topic":"x"}`, `[1,2,3]`, `[null,null,null,null,null,null]`,
		`[null,5,"room:lobby","echo",{}]`, `[null,"5",7,"echo",{}]`, "[null,\"5\",\"room\xff\",\"echo\",{}]"} {
		g := ts.dial("bob")
		g.sendRaw(garbage)
		if code := g.closed(); code != websocket.StatusInvalidFramePayloadData {
			t.Fatalf("%q: close status %v", garbage, code)
		}
	}
	bin := ts.dial("carol")
	bin.conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
	if code := bin.closed(); code != websocket.StatusUnsupportedData {
		t.Fatalf("binary frame: close status %v", code)
	}
	if ts.srv.Stats().BadFrames < 10 {
		t.Fatalf("BadFrames = %d", ts.srv.Stats().BadFrames)
	}
}

func TestConnectHookRejects(t *testing.T) {
	ts := newTestServer(t, nil)
	_, resp, err := ts.tryDial(url.Values{"token": {"bad"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rejected connect: %v %v", resp, err)
	}
	_, resp, err = ts.tryDial(url.Values{"vsn": {"1.0.0"}})
	if err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("vsn 1: %v", err)
	}
	if ts.srv.Stats().Rejected != 2 {
		t.Fatalf("Rejected = %d", ts.srv.Stats().Rejected)
	}
}

func TestOriginCheck(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.OriginPatterns = []string{"good.example"} })
	dial := func(origin string) (*http.Response, error) {
		h := http.Header{"Origin": {origin}}
		conn, resp, err := websocket.Dial(context.Background(), ts.url+"?user=x", &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			conn.CloseNow()
		}
		return resp, err
	}
	if _, err := dial("http://good.example"); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	if resp, err := dial("http://evil.example"); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin accepted: %v", err)
	}
}

func TestMaxTopicsPerSocket(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxTopicsPerSocket = 3 })
	c := ts.dial("alice")
	for i := range 3 {
		c.join(fmt.Sprint("room:", i), `{"no_state":true}`)
	}
	ref := c.push("99", "room:3", "phx_join", `{}`)
	if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"too_many_topics"}` {
		t.Fatalf("4th join: %s %s", status, resp)
	}
	// Others still join.
	ts.dial("bob").join("room:3", `{}`)
}

func TestOneUserTwoSocketsIsOneKeyTwoMetas(t *testing.T) {
	ts := newTestServer(t, nil)
	a1 := ts.dial("alice")
	a1.join("room:lobby", `{"meta":"{\"device\":\"phone\"}"}`)
	a2 := ts.dial("alice")
	a2.join("room:lobby", `{"meta":"{\"device\":\"laptop\"}"}`)
	st := a2.expect("presence_state", isEvent("presence_state"))
	p := decodePresence(t, st.Payload)
	if len(p) != 1 || len(p["alice"].Metas) != 2 {
		t.Fatalf("presence_state %s", st.Payload)
	}
	if p["alice"].Metas[0]["device"] != "phone" || p["alice"].Metas[1]["device"] != "laptop" {
		t.Fatalf("metas out of join order: %s", st.Payload)
	}
}

func TestUpdateIsLeavePlusJoinWithPrevRef(t *testing.T) {
	ts := newTestServer(t, nil)
	w := ts.dial("bob")
	w.join("room:lobby", `{}`)
	a := ts.dial("alice")
	jr := a.join("room:lobby", `{"meta":"{\"status\":\"online\"}"}`)
	st := a.expect("presence_state", isEvent("presence_state"))
	oldRef := decodePresence(t, st.Payload)["alice"].Metas[0]["phx_ref"]
	w.expect("alice's join", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && strings.Contains(string(f.Payload), `"joins":{"alice"`)
	})
	ref := a.push(jr, "room:lobby", "update", `{"status":"away"}`)
	a.reply(ref)
	d := w.expect("alice's update", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && strings.Contains(string(f.Payload), `away`)
	})
	var diff struct{ Joins, Leaves presenceMap }
	json.Unmarshal(d.Payload, &diff)
	j, l := diff.Joins["alice"].Metas, diff.Leaves["alice"].Metas
	if len(j) != 1 || len(l) != 1 || j[0]["status"] != "away" || l[0]["status"] != "online" ||
		l[0]["phx_ref"] != oldRef || j[0]["phx_ref_prev"] != oldRef || j[0]["phx_ref"] == oldRef {
		t.Fatalf("update diff %s (old ref %v)", d.Payload, oldRef)
	}
	ref = a.push(jr, "room:lobby", "update", `{"phx_ref":"forged"}`)
	if status, resp := a.reply(ref); status != "error" || string(resp) != `{"reason":"reserved_meta"}` {
		t.Fatalf("reserved meta key: %s %s", status, resp)
	}
}

func TestPresenceChangesAreCoalesced(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.PresenceWindow = 200 * time.Millisecond })
	w := ts.dial("watcher")
	w.join("room:lobby", `{"no_track":true}`)
	w.expect("presence_state", isEvent("presence_state")) // subscribed
	// Every client connects first and then joins at once, so that the
	// joins fall inside one window even on a loaded machine.
	var clients []*client
	for i := range 20 {
		clients = append(clients, ts.dial(fmt.Sprint("user", i)))
	}
	for _, c := range clients {
		c.sendRaw(`["1","1","room:lobby","phx_join",{"no_state":true}]`)
	}
	for _, c := range clients {
		if status, _ := c.reply("1"); status != "ok" {
			t.Fatalf("join: %s", status)
		}
	}
	d := w.expect("one diff", isEvent("presence_diff"))
	var diff struct{ Joins, Leaves presenceMap }
	json.Unmarshal(d.Payload, &diff)
	if len(diff.Joins) != 20 {
		t.Fatalf("first diff has %d joins, want all 20 coalesced: %s", len(diff.Joins), d.Payload)
	}
	if n := ts.srv.Stats().PresenceDiffs; n != 1 {
		t.Fatalf("%d presence_diff broadcasts for 20 joins in one window", n)
	}
}

func TestBroadcastFromSkipsSender(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Channels[0].Handlers["relay"] = func(s *Socket, topic string, p json.RawMessage) (any, error) {
			return NoReply, s.BroadcastFrom(topic, "relayed", p)
		}
	})
	a, b := ts.dial("alice"), ts.dial("bob")
	jr := a.join("room:lobby", `{"no_state":true}`)
	b.join("room:lobby", `{"no_state":true}`)
	a.push(jr, "room:lobby", "relay", `{"hi":1}`)
	b.expect("relayed", isEvent("relayed"))
	ref := a.push(jr, "room:lobby", "echo", `{}`)
	for f := range a.in {
		if f.Event == "relayed" {
			t.Fatal("BroadcastFrom reached its sender")
		}
		if f.Ref.S == ref {
			break
		}
	}
}

func TestShutdownSendsCloseFrames(t *testing.T) {
	ts := newTestServer(t, nil)
	cs := []*client{ts.dial("a"), ts.dial("b")}
	for _, c := range cs {
		c.join("room:lobby", `{}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := c.closed(); code != websocket.StatusGoingAway {
				t.Errorf("close status %v, want going away", code)
			}
		}()
	}
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if ts.srv.Presence().Len() != 0 || ts.srv.Stats().Sockets != 0 {
		t.Fatalf("after Shutdown: Len %d, sockets %d", ts.srv.Presence().Len(), ts.srv.Stats().Sockets)
	}
	if _, _, err := ts.tryDial(url.Values{"user": {"late"}}); err == nil {
		t.Fatal("connection accepted after Shutdown")
	}
}

func TestStatsCount(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.dial("alice")
	a.join("room:lobby", `{}`)
	b := ts.dial("bob")
	b.join("room:lobby", `{}`)
	// Both are counted before they are queued.
	a.expect("bob's join", func(f phx.Frame) bool { return f.Event == "presence_diff" })
	b.expect("bob's presence_state", isEvent("presence_state"))
	st := ts.srv.Stats()
	if st.Sockets != 2 || st.Connects != 2 || st.Joins != 2 || st.Pushes < 4 || st.PresenceDiffs < 1 || st.PresenceStates != 2 ||
		st.PushedBytes < 4*int64(len(`[null,null,"room:lobby","presence_diff",{}]`)) {
		t.Fatalf("stats %+v", st)
	}
	// Everything queued is written: nothing stays queued.
	waitFor(t, "queues to drain", func() bool { return ts.srv.Stats().QueuedBytes == 0 })
}
