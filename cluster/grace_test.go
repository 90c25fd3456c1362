package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The reconnect grace across nodes: a client lost on one node that comes
// back on another keeps its key present in every roster; the entry held
// on the first node leaves when its grace ends, and the new one stays.

// roster is what a client knows of a topic's presence, applied as the
// phoenix JavaScript client applies presence_state and presence_diff:
// metas by phx_ref, under their key.
type clientRoster map[string]map[string]bool

func (r clientRoster) apply(t *testing.T, event string, payload json.RawMessage) {
	t.Helper()
	refs := func(m metas) map[string][]string {
		out := map[string][]string{}
		for key, p := range m {
			for _, meta := range p.Metas {
				out[key] = append(out[key], meta["phx_ref"].(string))
			}
		}
		return out
	}
	switch event {
	case "presence_state":
		var st metas
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		clear(r)
		for key, rs := range refs(st) {
			r[key] = map[string]bool{}
			for _, ref := range rs {
				r[key][ref] = true
			}
		}
	case "presence_diff":
		var d struct{ Joins, Leaves metas }
		if err := json.Unmarshal(payload, &d); err != nil {
			t.Fatal(err)
		}
		for key, rs := range refs(d.Joins) {
			if r[key] == nil {
				r[key] = map[string]bool{}
			}
			for _, ref := range rs {
				r[key][ref] = true
			}
		}
		for key, rs := range refs(d.Leaves) {
			for _, ref := range rs {
				delete(r[key], ref)
			}
			if len(r[key]) == 0 {
				delete(r, key)
			}
		}
	}
}

// watcher is a client whose roster must keep alice once it has her.
type watcher struct {
	*wsClient
	roster  clientRoster
	seen    bool // alice was in the roster
	aliceUp int  // presence frames that named alice
}

// until reads presence frames into the roster until done holds, and
// fails if alice ever leaves the roster once she was in it.
func (w *watcher) until(what string, done func(r clientRoster) bool) {
	w.t.Helper()
	w.wsClient.until(func(f []json.RawMessage, event string) bool {
		if event != "presence_state" && event != "presence_diff" {
			return false
		}
		w.roster.apply(w.t, event, f[4])
		if strings.Contains(string(f[4]), `"alice"`) {
			w.aliceUp++
		}
		if w.seen && len(w.roster["alice"]) == 0 {
			w.t.Fatalf("alice left a roster while %s: %s", what, f[4])
		}
		w.seen = w.seen || len(w.roster["alice"]) > 0
		return done(w.roster)
	})
}

func dialSession(t *testing.T, base, name, token, topic string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"?vsn=2.0.0&name="+name+"&session="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &wsClient{t: t, conn: conn}
	c.send(`["1","1","` + topic + `","phx_join",{}]`)
	c.until(func(f []json.RawMessage, event string) bool { return event == "phx_reply" })
	return c
}

func only(ref string) func(r clientRoster) bool {
	return func(r clientRoster) bool { return len(r["alice"]) == 1 && r["alice"][ref] }
}

func TestGraceResumeOnAnotherNode(t *testing.T) {
	leakCheck(t)
	const grace = 500 * time.Millisecond
	ss := startNATS(t, 2, nil, nil)
	a, b := startNode(t, ss[0], "a", nil), startNode(t, ss[1], "b", nil)
	srvA, urlA := startChatServerWith(t, a, grace)
	srvB, urlB := startChatServerWith(t, b, grace)

	watchers := []*watcher{
		{wsClient: dialJoin(t, urlA, "carol", "room:1"), roster: clientRoster{}},
		{wsClient: dialJoin(t, urlB, "bob", "room:1"), roster: clientRoster{}},
	}
	const token = "alice-session-0123456789"
	alice := dialSession(t, urlA, "alice", token, "room:1")
	var firstRef string
	for _, w := range watchers {
		w.until("alice joins", func(r clientRoster) bool { return len(r["alice"]) == 1 })
		for ref := range w.roster["alice"] {
			firstRef = ref
		}
	}

	dropped := time.Now()
	alice.conn.CloseNow()
	waitUntil(t, "node a sees the loss", 5*time.Second, func() bool { return srvA.Stats().Sockets == 1 })
	dialSession(t, urlB, "alice", token, "room:1")
	for _, w := range watchers {
		w.until("alice comes back on b", func(r clientRoster) bool { return len(r["alice"]) == 2 })
	}
	var secondRef string
	for ref := range watchers[0].roster["alice"] {
		if ref != firstRef {
			secondRef = ref
		}
	}
	for _, w := range watchers {
		before := w.aliceUp
		w.until("alice's held entry expires", only(secondRef))
		if n := w.aliceUp - before; n != 1 {
			t.Fatalf("the expiry took %d presence frames, want one leave", n)
		}
	}
	if since := time.Since(dropped); since < grace {
		t.Fatalf("the held entry left %v after the loss, before the grace of %v", since, grace)
	}
	if st := srvB.Stats(); st.Resumes != 0 {
		t.Fatalf("b resumed a session it never held: %+v", st)
	}
	if st := srvA.Stats(); st.HeldExpired != 1 || st.HeldSessions != 0 {
		t.Fatalf("a's stats %+v: want one expired", st)
	}

	// Nothing more about alice: dave's join comes next, and alice is
	// still there with her new entry.
	dialJoin(t, urlA, "dave", "room:1")
	for _, w := range watchers {
		before := w.aliceUp
		w.until("dave joins", func(r clientRoster) bool { return len(r["dave"]) == 1 })
		if w.aliceUp != before || !only(secondRef)(w.roster) {
			t.Fatalf("alice changed again: %v", w.roster)
		}
	}
}
