package channel

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// presenceCount is a presence_count payload.
type presenceCount struct {
	Count   int `json:"count"`
	Entries int `json:"entries"`
}

func decodeCount(t testing.TB, raw []byte) presenceCount {
	t.Helper()
	var c presenceCount
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("presence_count %s: %v", raw, err)
	}
	return c
}

// until reads frames up to and including the first that satisfies ok, and
// returns them.
func (c *client) until(what string, ok func(phx.Frame) bool) []phx.Frame {
	c.t.Helper()
	var got []phx.Frame
	c.expect(what, func(f phx.Frame) bool {
		got = append(got, f)
		return ok(f)
	})
	return got
}

// marker broadcasts an event to topic that a client reads up to, so that
// what came before it is known to be all there is.
func (ts *testServer) marker(topic string) func(phx.Frame) bool {
	ts.t.Helper()
	if err := ts.srv.Broadcast(topic, "marker", nil); err != nil {
		ts.t.Fatal(err)
	}
	return isEvent("marker")
}

// A count-mode join gets its reply, then presence_count, and never
// presence_state or presence_diff; a full-mode socket in the same topic
// sees the count-mode member in its presence as usual.
func TestCountModeGetsCountsNotPresence(t *testing.T) {
	ts := newTestServer(t, nil)
	counter := ts.dial("carol")
	ref := counter.push("1", "room:big", "phx_join", `{"presence":"count"}`)
	got := counter.until("presence_count", isEvent("presence_count"))
	if len(got) != 2 || got[0].Event != "phx_reply" || got[0].Ref.S != ref {
		t.Fatalf("frames before the first count: %+v", got)
	}
	if c := decodeCount(t, got[1].Payload); c != (presenceCount{1, 1}) || got[1].Topic != "room:big" {
		t.Fatalf("first count %s on %q, want {1 1}", got[1].Payload, got[1].Topic)
	}
	if !counter.t.Failed() && ts.srv.Presence().Count("room:big") != 1 {
		t.Fatal("a count-mode join must track as any join")
	}

	alice := ts.dial("alice")
	alice.join("room:big", `{"presence":"full"}`)
	state := decodePresence(t, alice.expect("presence_state", isEvent("presence_state")).Payload)
	if len(state) != 2 || len(state["carol"].Metas) != 1 {
		t.Fatalf("full-mode presence_state %v, want alice and carol", state)
	}
	got = counter.until("count of 2", func(f phx.Frame) bool { return f.Event == "presence_count" })
	if c := decodeCount(t, got[len(got)-1].Payload); c != (presenceCount{2, 2}) {
		t.Fatalf("count %+v, want {2 2}", c)
	}
	// A second entry of a key already there: the keys stay, the entries grow.
	alice2 := ts.dial("alice")
	alice2.join("room:big", `{}`)
	alice.expect("diff of alice's second entry", isEvent("presence_diff"))
	got = counter.until("count of 2 keys, 3 entries", isEvent("presence_count"))
	if c := decodeCount(t, got[len(got)-1].Payload); c != (presenceCount{2, 3}) {
		t.Fatalf("count %+v, want {2 3}", c)
	}
	for _, f := range counter.until("marker", ts.marker("room:big")) {
		if f.Event == "presence_state" || f.Event == "presence_diff" {
			t.Fatalf("count-mode socket got %s %s", f.Event, f.Payload)
		}
	}
	if st := ts.srv.Stats(); st.PresenceCounts < 3 {
		t.Fatalf("Stats.PresenceCounts %d, want at least 3", st.PresenceCounts)
	}
}

// A change that leaves the numbers as they were (an update of a meta)
// sends a count-mode socket nothing.
func TestCountOnlyWhenChanged(t *testing.T) {
	ts := newTestServer(t, nil)
	counter := ts.dial("carol")
	counter.join("room:c", `{"presence":"count"}`)
	counter.expect("first count", isEvent("presence_count"))
	alice := ts.dial("alice")
	aliceRef := alice.join("room:c", `{}`)
	alice.expect("presence_state", isEvent("presence_state"))
	got := counter.until("count of 2", isEvent("presence_count"))
	if c := decodeCount(t, got[len(got)-1].Payload); c != (presenceCount{2, 2}) {
		t.Fatalf("count %+v, want {2 2}", c)
	}
	alice.push(aliceRef, "room:c", "update", `{"name":"alice","status":"away"}`)
	alice.expect("the update's diff", func(f phx.Frame) bool {
		return f.Event == "presence_diff" && len(decodePresence(t, mustField(t, f.Payload, "joins"))) == 1
	})
	for _, f := range counter.until("marker", ts.marker("room:c")) {
		if f.Event == "presence_count" {
			t.Fatalf("count-mode socket got %s for an update that changed no number", f.Payload)
		}
	}
}

func mustField(t testing.TB, raw []byte, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[field]
}

// A "presence" that is neither "full" nor "count" is refused with
// invalid_presence_mode, before Join runs: nothing is tracked, and the
// refusal is counted.
func TestInvalidPresenceMode(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	for i, params := range []string{`{"presence":"counts"}`, `{"presence":1}`, `{"presence":null}`, `{"presence":["count"]}`, `{"presence":"COUNT"}`} {
		ref := c.push(fmt.Sprint(100+i), "room:x", "phx_join", params)
		status, resp := c.reply(ref)
		if status != "error" || string(resp) != `{"reason":"invalid_presence_mode"}` {
			t.Fatalf("join %s: %s %s", params, status, resp)
		}
	}
	if n := ts.srv.Presence().Count("room:x"); n != 0 {
		t.Fatalf("refused joins tracked %d entries", n)
	}
	st := ts.srv.Stats()
	if refusalsOf(st, RefusedJoin, "invalid_presence_mode") != 5 || st.JoinsRejected != 5 {
		t.Fatalf("refusals %+v, joins rejected %d", st.Refusals, st.JoinsRejected)
	}
	// Escaped, the field is the same field; non-object params are full.
	c.join("room:x", `{"pr\u0065sence":"count"}`)
	c.expect("presence_count", isEvent("presence_count"))
	c.join("room:y", `[]`)
	c.expect("presence_state", isEvent("presence_state"))
}

func refusalsOf(st Stats, kind, reason string) int64 {
	for _, r := range st.Refusals {
		if r.Kind == kind && r.Reason == reason {
			return r.Count
		}
	}
	return 0
}

// lastCount returns the last presence_count queued to a socket made by
// hand, and how many it was sent.
func lastCount(t testing.TB, s *Socket) (last presenceCount, n int) {
	t.Helper()
	for _, b := range queued(s) {
		f, err := phx.ParseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		if f.Event == "presence_count" {
			n++
			last = decodeCount(t, f.Payload)
		}
	}
	return last, n
}

// TestCountStormCoalesced: 1,000 count-mode joins as fast as the server
// takes them. Every count-mode socket gets at most one presence_count a
// presence window besides its first, far fewer than 1,000, and the last
// says 1,000.
func TestCountStormCoalesced(t *testing.T) {
	const n, window = 1000, 50 * time.Millisecond
	ts := newTestServer(t, func(c *Config) {
		c.PresenceWindow = window
		c.MaxEventsPerSecond = -1
	})
	watcher := ts.dial("watcher")
	watcher.join("room:storm", `{"presence":"count","no_track":true}`)
	watcher.expect("first count", isEvent("presence_count"))

	socks := make([]*Socket, n)
	for i := range socks {
		socks[i] = newSocket(ts.srv, nil, nil, map[string]any{"user": fmt.Sprint("u", i)})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p phx.Parser
			for i := w; i < n; i += 8 {
				socks[i].dispatch(&p, []byte(`["1","1","room:storm","phx_join",{"presence":"count"}]`))
			}
		}()
	}
	wg.Wait()
	got := watcher.until("count of 1000", func(f phx.Frame) bool {
		return f.Event == "presence_count" && decodeCount(t, f.Payload).Count == n
	})
	elapsed := time.Since(start)
	// At most one a window, and one more for a window cut by the start.
	bound := int(elapsed/window) + 2
	counts := 0
	for _, f := range got {
		if f.Event == "presence_count" {
			counts++
		}
	}
	if counts > bound || counts >= n/10 {
		t.Fatalf("watcher got %d presence_count in %v, want at most %d", counts, elapsed, bound)
	}
	for _, f := range watcher.until("marker", ts.marker("room:storm")) {
		if f.Event == "presence_count" {
			t.Fatalf("a count after the last change: %s", f.Payload)
		}
	}
	waitFor(t, "every socket's last count to say 1000", func() bool {
		for _, s := range socks {
			if c, _ := lastCount(t, s); c.Count != n {
				return false
			}
		}
		return true
	})
	most := 0
	for _, s := range socks {
		c, k := lastCount(t, s)
		if c != (presenceCount{n, n}) || k > bound {
			t.Fatalf("a socket's last count %+v after %d counts, want {%d %d} after at most %d", c, k, n, n, bound)
		}
		most = max(most, k)
	}
	t.Logf("%d joins in %v: the watcher got %d presence_count, a joiner at most %d", n, elapsed.Round(time.Millisecond), counts, most)
}

// trackKeys tracks n keys in topic straight into the engine, one entry
// each, under socket ids no connection gets.
func trackKeys(t testing.TB, srv *Server, topic string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := srv.Presence().Track(engineSocket(i), topic, fmt.Sprint("k", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxPresenceState: a full-mode join into a topic above the channel's
// cap is refused with presence_too_large, its count and the cap, and
// changes nothing; a count-mode join is admitted at any size; a negative
// cap is none.
func TestMaxPresenceState(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Channels[0].MaxPresenceState = 2 })
	for _, user := range []string{"a", "b"} {
		ts.dial(user).join("room:capped", `{}`) // 0, then 1 key: under the cap
	}
	c := ts.dial("c")
	c.join("room:capped", `{"presence":"full"}`) // 2 keys: at the cap, not above
	d := ts.dial("d")
	ref := d.push("1", "room:capped", "phx_join", `{}`)
	status, resp := d.reply(ref)
	if status != "error" || string(resp) != `{"reason":"presence_too_large","count":3,"max":2}` {
		t.Fatalf("join above the cap: %s %s", status, resp)
	}
	if n := ts.srv.Presence().Count("room:capped"); n != 3 {
		t.Fatalf("%d entries after the refusal, want 3", n)
	}
	if d.push("2", "room:capped", "echo", `{}`); true {
		if status, resp := d.reply(fmt.Sprint(d.ref)); status != "error" || string(resp) != `{"reason":"unmatched topic"}` {
			t.Fatalf("a refused join must leave the socket out of the topic: %s %s", status, resp)
		}
	}
	d.join("room:capped", `{"presence":"count"}`)
	if got := decodeCount(t, d.expect("count", isEvent("presence_count")).Payload); got != (presenceCount{4, 4}) {
		t.Fatalf("count-mode join into a capped topic: count %+v", got)
	}
	st := ts.srv.Stats()
	if refusalsOf(st, RefusedJoin, "presence_too_large") != 1 {
		t.Fatalf("refusals %+v", st.Refusals)
	}

	ts = newTestServer(t, func(c *Config) { c.Channels[0].MaxPresenceState = -1 })
	trackKeys(t, ts.srv, "room:open", 0, DefaultMaxPresenceState+1)
	ts.dial("e").join("room:open", `{}`)
}

// The default cap is DefaultMaxPresenceState keys.
func TestMaxPresenceStateDefault(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: DefaultMaxPresenceState + 100})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
	})
	trackKeys(t, ts.srv, "room:big", 0, DefaultMaxPresenceState)
	ts.dial("a").join("room:big", `{}`) // at the cap
	b := ts.dial("b")
	status, resp := b.reply(b.push("1", "room:big", "phx_join", `{}`))
	want := fmt.Sprintf(`{"reason":"presence_too_large","count":%d,"max":%d}`, DefaultMaxPresenceState+1, DefaultMaxPresenceState)
	if status != "error" || string(resp) != want {
		t.Fatalf("join above the default cap: %s %s, want %s", status, resp, want)
	}
}

func engineSocket(i int) engine.SocketID { return engine.SocketID(1<<40 + i) }

// TestCountPacedInLargeRooms: a topic with more count-mode sockets than
// countFanout sends its counts every PresenceWindow times their number
// over countFanout, not every window, and the last count is still right.
func TestCountPacedInLargeRooms(t *testing.T) {
	const subs, fanout, window = 20, 5, 20 * time.Millisecond // a round every 4 windows
	ts := newTestServer(t, func(c *Config) { c.PresenceWindow = window })
	ts.srv.countFanout = fanout
	socks := make([]*Socket, subs)
	var p phx.Parser
	for i := range socks {
		socks[i] = newSocket(ts.srv, nil, nil, map[string]any{"user": fmt.Sprint("u", i)})
		socks[i].dispatch(&p, []byte(`["1","1","room:paced","phx_join",{"presence":"count"}]`))
	}
	// Changes every few milliseconds, for 30 windows.
	start := time.Now()
	n := 0
	for time.Since(start) < 30*window {
		trackKeys(t, ts.srv, "room:paced", n, 1)
		ts.srv.presenceChanged("room:paced")
		n++
		time.Sleep(window / 4)
	}
	want := presenceCount{subs + n, subs + n}
	waitFor(t, "every socket's last count", func() bool {
		for _, s := range socks {
			if c, _ := lastCount(t, s); c != want {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	bound := int(elapsed/(4*window)) + 3 // the first count, and a round cut by the start
	for _, s := range socks {
		if _, k := lastCount(t, s); k > bound {
			t.Fatalf("%d counts in %v, want at most %d (a round every %v)", k, elapsed, bound, 4*window)
		}
	}
}
