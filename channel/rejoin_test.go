package channel

import (
	"encoding/json"
	"testing"

	"github.com/presencekit/presence/phx"
)

type diffPayload struct {
	Joins  presenceMap `json:"joins"`
	Leaves presenceMap `json:"leaves"`
}

// nextDiff returns the observer's next presence_diff.
func nextDiff(t *testing.T, c *client) diffPayload {
	t.Helper()
	f := c.expect("presence_diff", isEvent("presence_diff"))
	var d diffPayload
	if err := json.Unmarshal(f.Payload, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// A second phx_join of a joined topic closes the first join (phx_close to
// its join_ref) and joins afresh, as in Phoenix; when the new join tracks
// the same key and meta, observers receive no presence frame.
func TestDuplicateJoinIsPhoenixRejoinWithoutFlap(t *testing.T) {
	ts := newTestServer(t, nil)
	observer := ts.dial("observer")
	observer.join("room:r", `{}`)
	observer.expect("presence_state", isEvent("presence_state"))

	subject := ts.dial("subject")
	first := subject.join("room:r", `{}`)
	if d := nextDiff(t, observer); len(d.Joins["subject"].Metas) != 1 {
		t.Fatalf("first join: diff %+v", d)
	}
	ref := subject.push("99", "room:r", "phx_join", `{}`)
	closed := subject.expect("phx_close of the first join", isEvent("phx_close"))
	if closed.JoinRef.S != first || closed.Topic != "room:r" {
		t.Fatalf("phx_close %+v, want join_ref %s", closed, first)
	}
	reply := subject.expect("the rejoin's reply", func(f phx.Frame) bool { return f.Event == "phx_reply" && f.Ref.S == ref })
	if reply.JoinRef.S != "99" || !json.Valid(reply.Payload) || string(reply.Payload) != `{"status":"ok","response":{"welcome":"subject"}}` {
		t.Fatalf("rejoin reply %+v %s", reply, reply.Payload)
	}
	subject.expect("presence_state of the rejoin", isEvent("presence_state"))
	// The next diff the observer gets is a later join's alone: the rejoin
	// sent nothing.
	ts.dial("later").join("room:r", `{}`)
	if d := nextDiff(t, observer); len(d.Leaves) != 0 || len(d.Joins) != 1 || len(d.Joins["later"].Metas) != 1 {
		t.Fatalf("diff after the rejoin: %+v; want only later's join", d)
	}
	// Events go to the new join_ref.
	if status, _ := subject.reply(subject.push("99", "room:r", "echo", `{}`)); status != "ok" {
		t.Fatalf("event after the rejoin: %s", status)
	}
	if n := ts.srv.Presence().Count("room:r"); n != 3 {
		t.Fatalf("Count %d, want 3", n)
	}
}

// A rejoin with other meta is one update; one that tracks nothing, or
// fails, is a leave.
func TestRejoinChangesPresenceOnlyAsItMust(t *testing.T) {
	ts := newTestServer(t, nil)
	observer := ts.dial("observer")
	observer.join("room:r", `{}`)
	observer.expect("presence_state", isEvent("presence_state"))
	subject := ts.dial("subject")
	subject.join("room:r", `{}`)
	nextDiff(t, observer)

	subject.join("room:r", `{"meta":"{\"status\":\"away\"}"}`)
	d := nextDiff(t, observer)
	if len(d.Leaves["subject"].Metas) != 1 || len(d.Joins["subject"].Metas) != 1 || d.Joins["subject"].Metas[0]["status"] != "away" {
		t.Fatalf("rejoin with other meta: diff %+v; want one update", d)
	}

	subject.join("room:r", `{"no_track":true}`)
	if d := nextDiff(t, observer); len(d.Leaves["subject"].Metas) != 1 || len(d.Joins) != 0 {
		t.Fatalf("rejoin that tracks nothing: diff %+v; want a leave", d)
	}
	subject.join("room:r", `{}`)
	nextDiff(t, observer)
	ref := subject.push("77", "room:r", "phx_join", `{"reject":"no"}`)
	if status, _ := subject.reply(ref); status != "error" {
		t.Fatalf("failing rejoin: %s", status)
	}
	if d := nextDiff(t, observer); len(d.Leaves["subject"].Metas) != 1 || len(d.Joins) != 0 {
		t.Fatalf("failing rejoin: diff %+v; want a leave", d)
	}
	if n := ts.srv.Presence().Count("room:r"); n != 1 {
		t.Fatalf("Count %d, want the observer alone", n)
	}
}
