package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/phx"
)

// The reconnect grace, over real WebSockets: an abrupt loss is a TCP
// connection closed with no close frame (CloseNow), as a reset or a dead
// network leaves it.

const (
	aliceToken   = "alice-session-0123456789"
	testGrace    = 300 * time.Millisecond
	graceTestTop = "room:grace"
)

func newGraceServer(t *testing.T, grace time.Duration, mod func(*Config)) *testServer {
	t.Helper()
	return newTestServer(t, func(c *Config) {
		c.ReconnectGrace = grace
		if mod != nil {
			mod(c)
		}
	})
}

func (ts *testServer) dialSession(user, token string) *client {
	ts.t.Helper()
	c, _, err := ts.tryDial(url.Values{"user": {user}, "vsn": {"2.0.0"}, SessionParam: {token}})
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

// presenceOf returns the metas of key in a presence frame: in a
// presence_state, or the joins and leaves of a presence_diff.
func presenceOf(t testing.TB, f phx.Frame, key string) (joins, leaves []map[string]any) {
	t.Helper()
	switch f.Event {
	case "presence_state":
		return decodePresence(t, f.Payload)[key].Metas, nil
	case "presence_diff":
		var d struct{ Joins, Leaves presenceMap }
		if err := json.Unmarshal(f.Payload, &d); err != nil {
			t.Fatal(err)
		}
		return d.Joins[key].Metas, d.Leaves[key].Metas
	}
	return nil, nil
}

// observer is a client in graceTestTop that watches one key.
type observer struct {
	*client
	key string
}

// watch joins graceTestTop as user.
func (ts *testServer) watch(user, key string) *observer {
	o := &observer{client: ts.dial(user), key: key}
	o.join(graceTestTop, `{}`)
	return o
}

// next returns the next presence frame that names the key.
func (o *observer) next(what string) (joins, leaves []map[string]any) {
	o.t.Helper()
	for {
		f := o.expect(what, func(f phx.Frame) bool { return f.Event == "presence_diff" || f.Event == "presence_state" })
		if j, l := presenceOf(o.t, f, o.key); len(j)+len(l) > 0 {
			return j, l
		}
	}
}

// quietUntil reads frames until a presence frame names marker's join, and
// fails on any presence frame that names the observer's key before it.
func (o *observer) quietUntil(marker string) {
	o.t.Helper()
	for {
		f := o.expect(marker+"'s join", func(f phx.Frame) bool { return f.Event == "presence_diff" || f.Event == "presence_state" })
		if j, l := presenceOf(o.t, f, o.key); len(j)+len(l) > 0 {
			o.t.Fatalf("observers were sent %s %s: %s", f.Event, o.key, f.Payload)
		}
		if j, _ := presenceOf(o.t, f, marker); len(j) > 0 {
			return
		}
	}
}

// aliceJoinsAndDrops has alice join graceTestTop with a session, the
// observer see her, and her connection drop with no close frame; it
// returns her phx_ref and when she dropped, once the server has seen it.
func aliceJoinsAndDrops(t *testing.T, ts *testServer, o *observer) (ref any, dropped time.Time) {
	t.Helper()
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	joins, _ := o.next("alice's join")
	ref = joins[0]["phx_ref"]
	open := ts.srv.Stats().Sockets
	dropped = time.Now()
	alice.conn.CloseNow()
	waitFor(t, "the server to see alice's loss", func() bool { return ts.srv.Stats().Sockets == open-1 })
	return ref, dropped
}

// A client that comes back within the grace with the same meta: the
// observer is sent nothing about it, neither then nor when the grace ends.
func TestGraceResumeUnchangedMetaSendsNothing(t *testing.T) {
	heldEntries := make(chan string, 10)
	ts := newGraceServer(t, testGrace, func(c *Config) {
		join := c.Channels[0].Join
		c.Channels[0].Join = func(s *Socket, topic string, params json.RawMessage) (any, error) {
			key, meta, ok := s.HeldEntry(topic)
			if ok {
				heldEntries <- key + " " + string(meta)
			}
			return join(s, topic, params)
		}
	})
	bob := ts.watch("bob", "alice")
	_, dropped := aliceJoinsAndDrops(t, ts, bob)

	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	select {
	case e := <-heldEntries:
		if e != `alice {"name":"alice"}` {
			t.Fatalf("HeldEntry in the resumed Join: %s", e)
		}
	default:
		t.Fatal("HeldEntry found nothing in the resumed Join")
	}
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")

	// Past the grace of the lost connection, and a few windows more.
	waitWithin(t, 10*time.Second, "the grace to pass", func() bool { return time.Since(dropped) > testGrace+5*ts.srv.cfg.PresenceWindow })
	ts.dial("dave").join(graceTestTop, `{}`)
	bob.quietUntil("dave")

	st := ts.srv.Stats()
	if st.Resumes != 1 || st.HeldSessions != 0 || st.HeldExpired != 0 {
		t.Fatalf("stats %+v: want one resume and nothing held or expired", st)
	}
	if n := strings.Count(string(ts.srv.Presence().AppendList(nil, graceTestTop)), `"key":"alice"`); n != 1 {
		t.Fatalf("alice is listed %d times", n)
	}
	// The resumed connection's own close is an ordinary one.
	alice.conn.Close(websocket.StatusNormalClosure, "")
	if _, leaves := bob.next("alice's leave"); len(leaves) != 1 {
		t.Fatalf("alice's clean close sent leaves %v", leaves)
	}
}

// A client that comes back within the grace with a new meta: the observer
// is sent one presence_diff, with the old meta's leave and the new one's
// join.
func TestGraceResumeChangedMetaIsOneUpdate(t *testing.T) {
	ts := newGraceServer(t, testGrace, nil)
	bob := ts.watch("bob", "alice")
	ref, _ := aliceJoinsAndDrops(t, ts, bob)

	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{"meta":"{\"name\":\"alice\",\"status\":\"away\"}"}`)
	joins, leaves := bob.next("alice's update")
	if len(joins) != 1 || len(leaves) != 1 || joins[0]["status"] != "away" || leaves[0]["phx_ref"] != ref || joins[0]["phx_ref_prev"] != ref {
		t.Fatalf("the update was sent as joins %v, leaves %v; want one of each, from phx_ref %v", joins, leaves, ref)
	}
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
}

// No one comes back: the observer is sent exactly one leave, once the
// grace has passed.
func TestGraceExpiryIsOneLeave(t *testing.T) {
	left := make(chan string, 10)
	ts := newGraceServer(t, testGrace, func(c *Config) {
		c.Channels[0].Leave = func(s *Socket, topic string) {
			user, _ := s.Get("user")
			left <- user.(string) + " " + topic
		}
	})
	bob := ts.watch("bob", "alice")
	ref, dropped := aliceJoinsAndDrops(t, ts, bob)
	if ts.srv.Presence().Count(graceTestTop) != 2 {
		t.Fatal("alice's entry is not held")
	}

	joins, leaves := bob.next("alice's leave")
	if since := time.Since(dropped); since < testGrace {
		t.Fatalf("alice left %v after she dropped, before the grace of %v", since, testGrace)
	}
	if len(joins) != 0 || len(leaves) != 1 || leaves[0]["phx_ref"] != ref {
		t.Fatalf("the expiry was sent as joins %v, leaves %v", joins, leaves)
	}
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
	st := ts.srv.Stats()
	if st.HeldExpired != 1 || st.HeldSessions != 0 || st.Resumes != 0 {
		t.Fatalf("stats %+v: want one expired", st)
	}
	if l := <-left; l != "alice "+graceTestTop {
		t.Fatalf("Leave ran for %q, want alice", l)
	}
	select {
	case l := <-left:
		t.Fatalf("Leave ran again, for %q", l)
	default:
	}
}

// A clean close leaves at once, whatever the grace: a close frame with
// 1000, 1001 or no code, or a phx_leave.
func TestGraceCleanCloseLeavesAtOnce(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	bob := ts.watch("bob", "alice")
	for _, code := range []websocket.StatusCode{websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd} {
		alice := ts.dialSession("alice", aliceToken)
		alice.join(graceTestTop, `{}`)
		bob.next("alice's join")
		alice.conn.Close(code, "")
		if _, leaves := bob.next("alice's leave"); len(leaves) != 1 {
			t.Fatalf("close %d: leaves %v", code, leaves)
		}
	}
	alice := ts.dialSession("alice", aliceToken)
	joinRef := alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	alice.push(joinRef, graceTestTop, "phx_leave", `{}`)
	if _, leaves := bob.next("alice's leave"); len(leaves) != 1 {
		t.Fatalf("phx_leave: leaves %v", leaves)
	}
	alice.conn.CloseNow() // nothing joined: nothing to hold
	waitFor(t, "alice's socket to close", func() bool { return ts.srv.Stats().Sockets == 1 })
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.Resumes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A connection with no token, or a short one, gets no grace.
func TestGraceNeedsAToken(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	bob := ts.watch("bob", "alice")
	for _, token := range []string{"", strings.Repeat("x", MinSessionLen-1), strings.Repeat("x", MaxSessionLen+1)} {
		alice := ts.dialSession("alice", token)
		alice.join(graceTestTop, `{}`)
		bob.next("alice's join")
		alice.conn.CloseNow()
		if _, leaves := bob.next("alice's leave"); len(leaves) != 1 {
			t.Fatalf("token of %d bytes: leaves %v", len(token), leaves)
		}
	}
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldRefused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A heartbeat timeout is an abrupt loss: the entry is held.
func TestGraceHeartbeatTimeoutIsHeld(t *testing.T) {
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.HeartbeatTimeout = 200 * time.Millisecond })
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	// alice sends nothing, and keeps reading (as a client whose outbound
	// path died would): the server gives up on her.
	alice.closed()
	waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })
	if ts.srv.Presence().Count(graceTestTop) != 1 {
		t.Fatal("alice's entry is not held")
	}
}

// A client that closes because the server missed its heartbeats (presence.js
// sends 4000; the official client 1000 "heartbeat timeout") is about to
// reconnect: it is held as a lost connection, not a leave.
func TestGraceClientHeartbeatTimeoutCloseIsHeld(t *testing.T) {
	for _, close := range []struct {
		code   websocket.StatusCode
		reason string
	}{{StatusClientTimeout, "heartbeat timeout"}, {websocket.StatusNormalClosure, "heartbeat timeout"}} {
		ts := newGraceServer(t, time.Hour, nil)
		alice := ts.dialSession("alice", aliceToken)
		alice.join(graceTestTop, `{}`)
		alice.conn.Close(close.code, close.reason)
		waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })
		if ts.srv.Presence().Count(graceTestTop) != 1 {
			t.Fatalf("close %d %q: alice's entry is not held", close.code, close.reason)
		}
	}
}

// Someone else with alice's token gets a session of their own; alice's
// held one expires normally.
func TestGraceStolenTokenGetsAFreshSession(t *testing.T) {
	ts := newGraceServer(t, testGrace, nil)
	bob := ts.watch("bob", "alice")
	ref, _ := aliceJoinsAndDrops(t, ts, bob)

	thief := ts.dialSession("mallory", aliceToken)
	thief.join(graceTestTop, `{}`)
	if st := ts.srv.Stats(); st.Resumes != 0 || st.HeldSessions != 1 {
		t.Fatalf("stats %+v: mallory took over alice's session", st)
	}
	if n := strings.Count(string(ts.srv.Presence().AppendList(nil, graceTestTop)), `"name"`); n != 3 {
		t.Fatalf("%d entries, want bob's, alice's held one and mallory's", n)
	}
	if _, _, ok := sessionSocket(t, ts, "mallory").HeldEntry(graceTestTop); ok {
		t.Fatal("mallory's socket sees alice's entry as its own")
	}
	_, leaves := bob.next("alice's leave")
	if len(leaves) != 1 || leaves[0]["phx_ref"] != ref {
		t.Fatalf("leaves %v", leaves)
	}
	if st := ts.srv.Stats(); st.HeldExpired != 1 || st.HeldSessions != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(string(ts.srv.Presence().AppendList(nil, graceTestTop)), `"name"`); n != 2 {
		t.Fatalf("%d entries, want bob's and mallory's", n)
	}
}

// sessionSocket returns the server's socket of user that sent a session.
func sessionSocket(t *testing.T, ts *testServer, user string) *Socket {
	t.Helper()
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	for sock := range ts.srv.sockets {
		if sock.grace.session && sock.params.Get("user") == user {
			return sock
		}
	}
	t.Fatalf("no socket of %s with a session", user)
	return nil
}

// At most MaxHeldSessions are held; past it, an abrupt loss leaves at once.
func TestGraceMaxHeldSessions(t *testing.T) {
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.MaxHeldSessions = 2 })
	bob := ts.watch("bob", "carol")
	for i, user := range []string{"u1", "u2"} {
		c := ts.dialSession(user, aliceToken+user)
		c.join(graceTestTop, `{}`)
		c.conn.CloseNow()
		waitFor(t, "a held session", func() bool { return ts.srv.Stats().HeldSessions == int64(i+1) })
	}
	carol := ts.dialSession("carol", aliceToken+"carol")
	carol.join(graceTestTop, `{}`)
	bob.next("carol's join")
	carol.conn.CloseNow()
	if _, leaves := bob.next("carol's leave"); len(leaves) != 1 {
		t.Fatalf("leaves %v", leaves)
	}
	if st := ts.srv.Stats(); st.HeldSessions != 2 || st.HeldRefused != 1 {
		t.Fatalf("stats %+v: want 2 held and 1 refused", st)
	}
	// Shutdown ends what is held.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldExpired != 2 {
		t.Fatalf("stats after Shutdown %+v", st)
	}
	if n := ts.srv.Presence().Len(); n != 0 {
		t.Fatalf("%d entries left after Shutdown", n)
	}
}

func TestGraceConfig(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.ReconnectGrace = -time.Second },
		func(c *Config) { c.MaxHeldSessions = -1 },
		func(c *Config) { c.MaxHeldEntries = -1 },
	} {
		cfg := Config{Presence: newTestServer(t, nil).srv.cfg.Presence, Channels: []Channel{{Topic: "x", Join: func(*Socket, string, json.RawMessage) (any, error) { return nil, nil }}}}
		mod(&cfg)
		if _, err := NewServer(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewServer: %v, want ErrInvalidConfig", err)
		}
	}
	srv, err := NewServer(Config{Presence: newTestServer(t, nil).srv.cfg.Presence, ReconnectGrace: time.Second,
		Channels: []Channel{{Topic: "x", Join: func(*Socket, string, json.RawMessage) (any, error) { return nil, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	if srv.cfg.MaxHeldSessions != DefaultMaxHeldSessions || srv.cfg.MaxHeldEntries != 4096/4 {
		t.Fatalf("MaxHeldSessions %d, MaxHeldEntries %d: want the default and a quarter of the engine", srv.cfg.MaxHeldSessions, srv.cfg.MaxHeldEntries)
	}
}

// What a held session costs the server, besides its entries in the
// engine: the record, its timer, its session key, and the lost
// connection's params, assigns and topic names, which it keeps for the
// Leave callbacks. The README's figure is this test's.
func TestHeldSessionMemory(t *testing.T) {
	const n = 10_000
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.MaxHeldSessions, c.MaxHeldEntries = n, n })
	srv := ts.srv
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		user := fmt.Sprint("user", i)
		// As the official client connects: vsn, the app's param, the token.
		params := url.Values{"vsn": {"2.0.0"}, "user": {user}, SessionParam: {fmt.Sprintf("%032x", i)}}
		assigns := map[string]any{"user": user}
		sock := newSocket(srv, nil, params, assigns)
		key, ok := srv.session(params, assigns)
		srv.resumeSession(sock, key, ok)
		if !srv.hold(sock, []string{fmt.Sprint("room:", i%100)}) {
			t.Fatalf("session %d not held", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("a held session with one topic costs %d bytes of heap", per)
	if st := srv.Stats(); st.HeldSessions != n {
		t.Fatalf("%d held, want %d", st.HeldSessions, n)
	}
	if !raceEnabled && per > 1536 {
		t.Fatalf("a held session costs %d bytes, more than the 1.5 KB that the README allows it", per)
	}
	srv.endHeldSessions()
	if st := srv.Stats(); st.HeldSessions != 0 || st.HeldExpired != n {
		t.Fatalf("stats after ending them: %+v", st)
	}
}

// A resumed connection that rejoins only some of its topics: the others'
// entries leave when the grace ends, one leave each, and the rejoined
// ones stay. A second loss holds both again, and a clean close of the
// connection that resumed them takes them away at once.
func TestGraceTopicsNotRejoinedExpire(t *testing.T) {
	ts := newGraceServer(t, testGrace, nil)
	inA := ts.watch("bob", "alice") // in graceTestTop
	inB := &observer{client: ts.dial("carol"), key: "alice"}
	inB.join("room:other", `{}`)

	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	alice.join("room:other", `{}`)
	inA.next("alice's join")
	inB.next("alice's join")
	dropped := time.Now()
	alice.conn.CloseNow()
	waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })

	alice = ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	_, leaves := inB.next("alice's leave of the topic she did not rejoin")
	if len(leaves) != 1 || time.Since(dropped) < testGrace {
		t.Fatalf("leaves %v, %v after the loss", leaves, time.Since(dropped))
	}
	ts.dial("dave").join(graceTestTop, `{}`)
	inA.quietUntil("dave")

	// Lost again, then a resume and a clean close: what is held leaves then.
	alice.join("room:other", `{}`)
	inB.next("alice's join")
	alice.conn.CloseNow()
	waitFor(t, "the server to hold alice again", func() bool { return ts.srv.Stats().HeldSessions == 1 })
	alice = ts.dialSession("alice", aliceToken)
	alice.conn.Close(websocket.StatusNormalClosure, "")
	if _, leaves := inA.next("alice's leave"); len(leaves) != 1 {
		t.Fatalf("leaves %v", leaves)
	}
	if _, leaves := inB.next("alice's leave"); len(leaves) != 1 {
		t.Fatalf("leaves %v", leaves)
	}
	if st := ts.srv.Stats(); st.Resumes != 2 || st.HeldSessions != 0 || ts.srv.Presence().Count(graceTestTop) != 2 {
		t.Fatalf("stats %+v, %d in the topic", st, ts.srv.Presence().Count(graceTestTop))
	}
}

// SessionOwner names the owner when the assigns hold more than who the
// user is: here a value that differs on every connection, with which the
// default owner (all the assigns) would never match.
func TestGraceSessionOwnerHook(t *testing.T) {
	for _, hook := range []bool{false, true} {
		var conns atomic.Int64
		ts := newGraceServer(t, time.Hour, func(c *Config) {
			connect := c.Connect
			c.Connect = func(r *http.Request, params url.Values) (map[string]any, error) {
				a, err := connect(r, params)
				if a != nil {
					a["conn"] = conns.Add(1)
				}
				return a, err
			}
			if hook {
				c.SessionOwner = func(assigns map[string]any) string { return assigns["user"].(string) }
			}
		})
		aliceJoinsAndDrops(t, ts, ts.watch("bob", "alice"))
		waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })
		ts.dialSession("alice", aliceToken).join(graceTestTop, `{}`)
		if got := ts.srv.Stats().Resumes; got != map[bool]int64{false: 0, true: 1}[hook] {
			t.Fatalf("with the hook %v: %d resumes", hook, got)
		}
	}
}

// A TCP reset (SO_LINGER 0, then close: the kernel sends RST) is an
// abrupt loss: the entry is held, and a resume sends observers nothing.
func TestGraceTCPResetIsHeld(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	bob := ts.watch("bob", "alice")
	var tcp *net.TCPConn
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			tcp = c.(*net.TCPConn)
		}
		return c, err
	}}
	params := url.Values{"user": {"alice"}, "vsn": {"2.0.0"}, SessionParam: {aliceToken}}
	conn, _, err := websocket.Dial(ctx, ts.url+"?"+params.Encode(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: transport}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","`+graceTestTop+`","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	bob.next("alice's join")
	if err := tcp.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })

	ts.dialSession("alice", aliceToken).join(graceTestTop, `{}`)
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
}

// Resumes racing the end of the grace, on many sessions at once: whatever
// the order, nothing is left behind once every client has closed cleanly.
func TestGraceRacesLeaveNothingBehind(t *testing.T) {
	const clients, rounds = 16, 4
	ts := newGraceServer(t, 40*time.Millisecond, nil)
	// Clients run in goroutines of their own, which may not call t.Fatal.
	join := func(c *client, topic string) error {
		if err := c.conn.Write(context.Background(), websocket.MessageText, []byte(`["1","1","`+topic+`","phx_join",{}]`)); err != nil {
			return err
		}
		timeout := time.After(5 * time.Second)
		for {
			select {
			case f, ok := <-c.in:
				if !ok {
					return <-c.err
				}
				if f.Event == "phx_reply" {
					return nil
				}
			case <-timeout:
				return errors.New("no join reply")
			}
		}
	}
	run := func(i int) error {
		params := url.Values{"user": {fmt.Sprint("racer", i)}, "vsn": {"2.0.0"}, SessionParam: {fmt.Sprintf("racer-session-%08d", i)}}
		for round := range rounds + 1 {
			c, _, err := ts.tryDial(params)
			if err != nil {
				return err
			}
			if err := join(c, graceTestTop); err != nil {
				return err
			}
			if round == rounds {
				return c.conn.Close(websocket.StatusNormalClosure, "")
			}
			if round%2 == 0 {
				if err := join(c, "room:other"); err != nil {
					return err
				}
			}
			c.conn.CloseNow()
			// Come back before, around or after the grace.
			time.Sleep(time.Duration(i%4) * 20 * time.Millisecond)
		}
		return nil
	}
	done := make(chan error, clients)
	for i := range clients {
		go func() { done <- run(i) }()
	}
	for range clients {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every entry to go", func() bool {
		st := ts.srv.Stats()
		return ts.srv.Presence().Len() == 0 && st.HeldSessions == 0 && st.Sockets == 0
	})
	if st := ts.srv.Stats(); st.Resumes == 0 || st.HeldExpired == 0 {
		t.Fatalf("stats %+v: the test raced nothing", st)
	}
}

// A rejoin at about the moment the grace ends either takes the entry over
// or comes after its leave: the rejoined connection is present in the
// end, never removed by the end of a grace it beat.
func TestGraceResumeAtTheDeadlineKeepsTheEntry(t *testing.T) {
	const grace = 20 * time.Millisecond
	ts := newGraceServer(t, grace, nil)
	ts.watch("bob", "alice")
	for i := range 20 {
		alice := ts.dialSession("alice", aliceToken)
		alice.join(graceTestTop, `{}`)
		alice.conn.CloseNow()
		waitFor(t, "the loss", func() bool { return ts.srv.Stats().Sockets == 1 })
		time.Sleep(grace - 5*time.Millisecond + time.Duration(i%10)*time.Millisecond)
		alice = ts.dialSession("alice", aliceToken)
		alice.join(graceTestTop, `{}`)
		time.Sleep(2 * grace) // past any grace still running
		if n := ts.srv.Presence().Count(graceTestTop); n != 2 {
			t.Fatalf("round %d: %d entries, want bob's and alice's", i, n)
		}
		alice.conn.Close(websocket.StatusNormalClosure, "")
		waitFor(t, "alice's leave", func() bool { return ts.srv.Presence().Count(graceTestTop) == 1 })
	}
}

// Held sessions keep at most MaxHeldEntries entries together: clients
// that join many topics and drop cannot fill the engine with held
// entries.
func TestGraceMaxHeldEntries(t *testing.T) {
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.MaxHeldEntries = 3 })
	bob := ts.watch("bob", "carol")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	alice.join("room:other", `{}`)
	alice.conn.CloseNow()
	waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })
	if st := ts.srv.Stats(); st.HeldEntries != 2 {
		t.Fatalf("stats %+v: want 2 held entries", st)
	}
	carol := ts.dialSession("carol", aliceToken+"carol")
	carol.join(graceTestTop, `{}`)
	carol.join("room:other", `{}`)
	bob.next("carol's join")
	carol.conn.CloseNow()
	if _, leaves := bob.next("carol's leave"); len(leaves) != 1 {
		t.Fatalf("leaves %v", leaves)
	}
	if st := ts.srv.Stats(); st.HeldSessions != 1 || st.HeldEntries != 2 || st.HeldRefused != 1 {
		t.Fatalf("stats %+v: want alice held, carol refused", st)
	}
	// A resume frees what it took over.
	ts.dialSession("alice", aliceToken)
	waitFor(t, "alice's resume", func() bool { return ts.srv.Stats().Resumes == 1 })
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldEntries != 0 {
		t.Fatalf("stats %+v after the resume", st)
	}
}
