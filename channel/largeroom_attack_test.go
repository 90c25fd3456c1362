package channel

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/presencekit/presence/phx"
)

// watchCount reads c's frames up to a marker broadcast in topic, fails on
// any presence_state or presence_diff, and returns the last presence_count
// it read (the zero value when none) and how many it read.
func (ts *testServer) watchCount(c *client, topic string) (last presenceCount, n int) {
	ts.t.Helper()
	for _, f := range c.until("marker", ts.marker(topic)) {
		switch f.Event {
		case "presence_state", "presence_diff":
			ts.t.Fatalf("a count-mode socket got %s %s", f.Event, f.Payload)
		case "presence_count":
			last, n = decodeCount(ts.t, f.Payload), n+1
		}
	}
	return last, n
}

// settleCount waits until the count-mode client c's last presence_count
// is want, failing on any presence_state or presence_diff meanwhile, and
// then checks that no further count comes (only when changed). Where the
// numbers did not change since the last call for c (ts.counts; the first
// call for a join waits for its first count), no count comes at all.
func (ts *testServer) settleCount(c *client, topic string, want presenceCount) {
	ts.t.Helper()
	if last, ok := ts.counts[c]; !ok || last != want {
		c.until(fmt.Sprintf("count %+v", want), func(f phx.Frame) bool {
			if f.Event == "presence_state" || f.Event == "presence_diff" {
				ts.t.Fatalf("a count-mode socket got %s %s", f.Event, f.Payload)
			}
			return f.Event == "presence_count" && decodeCount(ts.t, f.Payload) == want
		})
		if ts.counts == nil {
			ts.counts = map[*client]presenceCount{}
		}
		ts.counts[c] = want
	}
	if last, n := ts.watchCount(c, topic); n != 0 {
		ts.t.Fatalf("a count %+v after the count had settled at %+v", last, want)
	}
}

// TestCountConvergesThroughEveryChange drives a topic through each way
// presence changes (a key on two sockets, an update in place, a
// phx_leave, a dropped connection, duplicate joins switching between the
// modes) and checks after each that a count-mode watcher's last
// presence_count is exactly the topic's keys and entries, that it never
// receives presence_state or presence_diff, and that nothing more comes
// once the count is right.
func TestCountConvergesThroughEveryChange(t *testing.T) {
	ts := newTestServer(t, nil)
	const topic = "room:conv"
	w := ts.dial("watcher")
	w.join(topic, `{"presence":"count","no_track":true}`)
	ts.settleCount(w, topic, presenceCount{0, 0})

	a1 := ts.dial("alice")
	a1Ref := a1.join(topic, `{"presence":"count"}`)
	ts.settleCount(w, topic, presenceCount{1, 1})
	a2 := ts.dial("alice")
	a2.join(topic, `{}`)
	ts.settleCount(w, topic, presenceCount{1, 2})
	// An update in place changes no number.
	a1.push(a1Ref, topic, "update", `{"name":"alice","away":true}`)
	a1.reply(fmt.Sprint(a1.ref))
	ts.settleCount(w, topic, presenceCount{1, 2})

	b := ts.dial("bob")
	bRef := b.join(topic, `{"presence":"full"}`)
	ts.settleCount(w, topic, presenceCount{2, 3})
	// full -> count -> full -> count, the entry kept throughout.
	for i, mode := range []string{"count", "full", "count"} {
		bRef = b.join(topic, `{"presence":"`+mode+`"}`)
		ts.settleCount(w, topic, presenceCount{2, 3})
		if mode == "count" {
			if last, _ := ts.watchCount(b, topic); last != (presenceCount{2, 3}) {
				t.Fatalf("rejoin %d in count mode: last count %+v", i, last)
			}
		}
	}
	// The watcher itself switches to full mode and back.
	w.join(topic, `{"presence":"full","no_track":true}`)
	w.expect("presence_state", isEvent("presence_state"))
	w.join(topic, `{"presence":"count","no_track":true}`)
	delete(ts.counts, w) // a new join: a first count is due
	ts.settleCount(w, topic, presenceCount{2, 3})

	// phx_leave of one of alice's two entries.
	a1.push(a1Ref, topic, "phx_leave", `{}`)
	ts.settleCount(w, topic, presenceCount{2, 2})
	// bob's connection drops.
	b.conn.CloseNow()
	ts.settleCount(w, topic, presenceCount{1, 1})
	_ = bRef
	a2.conn.CloseNow()
	ts.settleCount(w, topic, presenceCount{0, 0})
}

// TestRefusedFullRejoinChangesNothing: a count-mode socket that asks, by
// a duplicate phx_join, for full mode in a topic above the cap is refused
// with presence_too_large; it stays joined in count mode, keeps its entry
// and keeps receiving counts, and Join does not run for the refused join.
func TestRefusedFullRejoinChangesNothing(t *testing.T) {
	var joins atomic.Int64
	ts := newTestServer(t, func(c *Config) {
		c.Channels[0].MaxPresenceState = 2
		inner := c.Channels[0].Join
		c.Channels[0].Join = func(s *Socket, topic string, params json.RawMessage) (any, error) {
			joins.Add(1)
			return inner(s, topic, params)
		}
	})
	const topic = "room:capr"
	trackKeys(t, ts.srv, topic, 0, 2)
	c := ts.dial("carol")
	jr := c.join(topic, `{"presence":"count"}`)
	ts.settleCount(c, topic, presenceCount{3, 3})
	before := joins.Load()
	status, resp := c.reply(c.push("", topic, "phx_join", `{"presence":"full"}`))
	if status != "error" || string(resp) != `{"reason":"presence_too_large","count":3,"max":2}` {
		t.Fatalf("full rejoin above the cap: %s %s", status, resp)
	}
	if joins.Load() != before {
		t.Fatal("Join ran for a refused join")
	}
	for _, f := range c.until("marker", ts.marker(topic)) {
		if f.Event == "phx_close" || f.Event == "presence_state" {
			t.Fatalf("a refused rejoin sent %s", f.Event)
		}
	}
	if n := ts.srv.Presence().Count(topic); n != 3 {
		t.Fatalf("%d entries after the refused rejoin, want 3", n)
	}
	trackKeys(t, ts.srv, topic, 10, 1)
	ts.srv.presenceChanged(topic)
	ts.settleCount(c, topic, presenceCount{4, 4})
	if status, _ := c.page(jr, topic, `{}`); status != "ok" {
		t.Fatal("the count-mode join is gone after a refused rejoin")
	}
}

// TestPresenceListMoreBadInput: payloads the first list of bad inputs
// left out each get a clear error reply and change nothing: the socket
// stays joined, pages still work, and counts still come.
func TestPresenceListMoreBadInput(t *testing.T) {
	ts := pagedServer(t, 1024)
	const topic = "room:bad2"
	trackKeys(t, ts.srv, topic, 0, 3)
	c := ts.dial("alice")
	jr := c.join(topic, `{"presence":"count","no_track":true}`)
	c.expect("count", isEvent("presence_count"))
	_, resp := c.page(jr, topic, `{"limit":1}`)
	var r listReply
	if err := json.Unmarshal(resp, &r); err != nil || r.Next == nil {
		t.Fatalf("first page: %s", resp)
	}
	good := *r.Next
	for payload, reason := range map[string]string{
		`null`:                          "malformed frame",
		`1`:                             "malformed frame",
		`{"limit":true}`:                "invalid_limit",
		`{"limit":{}}`:                  "invalid_limit",
		`{"limit":[1]}`:                 "invalid_limit",
		`{"limit":1000.5}`:              "invalid_limit",
		`{"limit":-1}`:                  "invalid_limit",
		`{"limit":9223372036854775808}`: "invalid_limit",
		`{"after":true}`:                "invalid_cursor",
		`{"after":{}}`:                  "invalid_cursor",
		`{"after":["` + good + `"]}`:    "invalid_cursor",
		`{"after":"` + good[:63] + `"}`: "invalid_cursor",
		`{"after":"` + good + `0"}`:     "invalid_cursor",
		`{"after":"` + strings.Repeat("f", 64) + `"}`:             "invalid_cursor",
		`{"after":"` + good[:16] + strings.Repeat("0", 48) + `"}`: "invalid_cursor",
		`{"after":"` + strings.Repeat("x", 10000) + `"}`:          "invalid_cursor",
	} {
		status, resp := c.page(jr, topic, payload)
		if status != "error" || string(resp) != `{"reason":"`+reason+`"}` {
			t.Errorf("presence_list %s: %s %s, want reason %s", payload, status, resp, reason)
		}
	}
	// Nothing changed: the walk from the good cursor goes on.
	status, resp := c.page(jr, topic, `{"limit":5,"after":"`+good+`"}`)
	r = listReply{}
	if status != "ok" || json.Unmarshal(resp, &r) != nil || len(r.Presences) != 2 || r.Next != nil || r.Count != 3 {
		t.Fatalf("the walk after the refusals: %s %s", status, resp)
	}
	// An empty after is the first page, as null is.
	for _, payload := range []string{`{"after":""}`, `{"after":null,"limit":null}`, `{}`} {
		r = listReply{}
		if status, resp := c.page(jr, topic, payload); status != "ok" || json.Unmarshal(resp, &r) != nil || len(r.Presences) != 3 {
			t.Fatalf("presence_list %s: %s %s", payload, status, resp)
		}
	}
	trackKeys(t, ts.srv, topic, 10, 1)
	ts.srv.presenceChanged(topic)
	ts.settleCount(c, topic, presenceCount{4, 4})
}

// TestPresenceListRateLimited: presence_list counts against the socket's
// event rate like any event: past the burst it is refused with
// rate_limited, and no page is served for it.
func TestPresenceListRateLimited(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxEventsPerSecond, c.MaxEventsBurst = 1, 5 })
	const topic = "room:rl"
	c := ts.dial("alice")
	jr := c.join(topic, `{"presence":"count"}`)
	refs := make([]string, 8)
	for i := range refs {
		refs[i] = c.push(jr, topic, "presence_list", `{}`)
	}
	limited := 0
	for _, ref := range refs {
		status, resp := c.reply(ref)
		if status == "error" && string(resp) == `{"reason":"rate_limited"}` {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("presence_list past the burst was not rate limited")
	}
	if served := ts.srv.Stats().PresenceLists; served+int64(limited) != int64(len(refs)) {
		t.Fatalf("%d pages served and %d refused of %d", served, limited, len(refs))
	}
}

// TestPresenceListSameFormatAsState: a page of the whole topic is, key
// for key and meta for meta, the presence_state a full-mode join gets.
func TestPresenceListSameFormatAsState(t *testing.T) {
	ts := newTestServer(t, nil)
	const topic = "room:fmt"
	for _, u := range []string{"a\"q", "b", "c\u00e9", "b"} {
		ts.dial(u).join(topic, `{"meta":"{\"x\":[1,{\"y\":\"z\"}]}"}`)
	}
	f := ts.dial("full")
	f.join(topic, `{"no_track":true}`)
	state := f.expect("presence_state", isEvent("presence_state")).Payload
	p := ts.dial("pager")
	jr := p.join(topic, `{"presence":"count","no_track":true}`)
	_, resp := p.page(jr, topic, `{}`)
	var r struct {
		Presences json.RawMessage `json:"presences"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	var a, b any
	if json.Unmarshal(state, &a) != nil || json.Unmarshal(r.Presences, &b) != nil {
		t.Fatalf("state %s, page %s", state, r.Presences)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("page %s differs from presence_state %s", r.Presences, state)
	}
}

// TestCountThroughReconnectGrace: a count-mode member whose connection
// drops is held, so a count-mode watcher is sent nothing; when it comes
// back within the grace in count mode, its first count is exact and the
// watcher still gets nothing; when it drops for good, the watcher's count
// follows once the grace ends.
func TestCountThroughReconnectGrace(t *testing.T) {
	ts := newGraceServer(t, testGrace, nil)
	const topic = "room:gracecount"
	w := ts.dial("watcher")
	w.join(topic, `{"presence":"count","no_track":true}`)
	ts.settleCount(w, topic, presenceCount{0, 0})
	alice := ts.dialSession("alice", aliceToken)
	alice.join(topic, `{"presence":"count"}`)
	ts.settleCount(w, topic, presenceCount{1, 1})

	alice.conn.CloseNow()
	waitFor(t, "the server to hold alice", func() bool { return ts.srv.Stats().HeldSessions == 1 })
	ts.settleCount(w, topic, presenceCount{1, 1})
	alice = ts.dialSession("alice", aliceToken)
	alice.join(topic, `{"presence":"count"}`)
	ts.settleCount(alice, topic, presenceCount{1, 1})
	ts.settleCount(w, topic, presenceCount{1, 1})
	if ts.srv.Stats().Resumes != 1 {
		t.Fatal("alice did not resume her session")
	}

	alice.conn.CloseNow()
	waitFor(t, "the server to hold alice again", func() bool { return ts.srv.Stats().HeldSessions == 1 })
	ts.settleCount(w, topic, presenceCount{0, 0}) // at the grace's end
}
