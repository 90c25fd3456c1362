package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
)

// largeRoomDemo serves the demo with maxState as its cap on full-mode
// joins; it returns the base URL of a connection, to which a name is added.
func largeRoomDemo(t *testing.T, maxState int) string {
	t.Helper()
	presence, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newNodeServer(presence, 5*time.Millisecond, time.Minute, nil, "local", maxPresenceState(maxState))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { // after the clients' cleanups, which close them
		srv.Shutdown(context.Background())
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "?vsn=2.0.0&name="
}

// Joins and leaves of count-mode members are not announced: in a room of
// thousands, each would reach every member. Those of full-mode members
// are, as before.
func TestDemoCountModeMembersAreNotAnnounced(t *testing.T) {
	base := largeRoomDemo(t, 0)
	ann := dialDemo(t, base+"ann")
	ann.join("chat:hall")

	// A count-mode member joins, says something, and leaves: ann hears the
	// message (broadcasts keep their order, so an announcement of the join
	// would come before it) and sees the join and the leave in presence,
	// but is told of neither in the log.
	cara := dialDemo(t, base+"cara")
	cara.send(`["1","1","chat:hall","phx_join",{"presence":"count"}]`)
	cara.until("cara's join reply", func(event, payload string) bool { return event == "phx_reply" })
	cara.send(`["1","2","chat:hall","new_msg",{"body":"hi from cara"}]`)
	var message, joined bool
	ann.until("cara's message and join", func(event, payload string) bool {
		switch {
		case event == "user_joined":
			t.Fatalf("ann was told %s %s", event, payload)
		case event == "new_msg":
			message = strings.Contains(payload, "hi from cara")
		case event == "presence_diff":
			joined = joined || strings.Contains(payload, `"joins":{"cara"`)
		}
		return message && joined
	})
	cara.send(`["1","3","chat:hall","phx_leave",{}]`)
	ann.until("cara's leave", func(event, payload string) bool {
		if event == "user_left" {
			t.Fatalf("ann was told %s %s", event, payload)
		}
		return event == "presence_diff" && strings.Contains(payload, `"leaves":{"cara"`)
	})

	// A full-mode member is announced, joining and leaving.
	dan := dialDemo(t, base+"dan")
	dan.join("chat:hall")
	ann.until("dan's announced join", func(event, payload string) bool {
		return event == "user_joined" && strings.Contains(payload, `"dan"`)
	})
	dan.send(`["1","2","chat:hall","phx_leave",{}]`)
	ann.until("dan's announced leave", func(event, payload string) bool {
		return event == "user_left" && strings.Contains(payload, `"dan"`)
	})
}

// -max-presence-state reaches the chat channel: past it, a full-mode join
// is refused with presence_too_large and a count-mode join gets the count.
func TestDemoMaxPresenceState(t *testing.T) {
	base := largeRoomDemo(t, 2)
	for _, name := range []string{"ann", "ben", "cat"} {
		dialDemo(t, base+name).join("chat:small")
	}
	cy := dialDemo(t, base+"cy")
	cy.send(`["1","1","chat:small","phx_join",{}]`)
	cy.until("the refusal", func(event, payload string) bool {
		if event != "phx_reply" {
			return false
		}
		if want := `{"status":"error","response":{"reason":"presence_too_large","count":3,"max":2}}`; payload != want {
			t.Fatalf("full-mode join past the cap: %s, want %s", payload, want)
		}
		return true
	})
	cy.send(`["2","2","chat:small","phx_join",{"presence":"count"}]`)
	cy.until("the count", func(event, payload string) bool {
		if event == "presence_state" {
			t.Fatalf("a count-mode join got %s", payload)
		}
		return event == "presence_count" && payload == `{"count":4,"entries":4}`
	})
}
