package channel

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/presencekit/presence/engine"
)

func joinOK(*Socket, string, json.RawMessage) (any, error) { return nil, nil }

// Each Config NewServer cannot serve is ErrInvalidConfig, in one line that
// names what is wrong.
func TestNewServerRefusesBadConfig(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 1024}) // MaxPerSocket 64
	if err != nil {
		t.Fatal(err)
	}
	small, err := engine.New(engine.Config{Capacity: 1024, MaxPerSocket: 200, LocalCapacity: 50})
	if err != nil {
		t.Fatal(err)
	}
	chat := Channel{Topic: "chat:*", Join: joinOK}
	for _, c := range []struct {
		name  string
		cfg   Config
		names []string // what the error must name
	}{
		{"no presence", Config{Channels: []Channel{chat}}, []string{"Presence"}},
		{"no channels", Config{Presence: e}, []string{"Channels"}},
		{"duplicate pattern", Config{Presence: e, Channels: []Channel{chat, {Topic: "room:1", Join: joinOK}, chat}}, []string{`"chat:*"`}},
		{"no join", Config{Presence: e, Channels: []Channel{{Topic: "room:*"}}}, []string{`"room:*"`}},
		{"no topic", Config{Presence: e, Channels: []Channel{chat, {Join: joinOK}}}, []string{"Channels[1]"}},
		{"topics above the engine's per-socket entries", Config{Presence: e, Channels: []Channel{chat}, MaxTopicsPerSocket: 100}, []string{"100", "64"}},
		{"topics above the local capacity", Config{Presence: small, Channels: []Channel{chat}, MaxTopicsPerSocket: 60}, []string{"60", "50"}},
		{"negative topics", Config{Presence: e, Channels: []Channel{chat}, MaxTopicsPerSocket: -1}, []string{"-1"}},
		{"negative burst", Config{Presence: e, Channels: []Channel{chat}, MaxEventsBurst: -1}, []string{"MaxEventsBurst"}},
	} {
		srv, err := NewServer(c.cfg)
		if srv != nil || !errors.Is(err, ErrInvalidConfig) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, %v; want one line of ErrInvalidConfig", c.name, srv, err)
			continue
		}
		for _, n := range c.names {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("%s: %q does not name %s", c.name, err, n)
			}
		}
	}
}

// The engine decides how many topics a socket may join: with defaults on
// both sides, the join past the engine's MaxPerSocket is refused as
// too_many_topics, never socket_limit, and the socket keeps what it has.
func TestTopicLimitFollowsTheEngine(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 4096}) // MaxPerSocket 64
		if err != nil {
			t.Fatal(err)
		}
		c.Presence, c.MaxTopicsPerSocket = e, 0
	})
	if got := ts.srv.cfg.MaxTopicsPerSocket; got != engine.DefaultMaxPerSocket {
		t.Fatalf("MaxTopicsPerSocket %d, want the engine's %d", got, engine.DefaultMaxPerSocket)
	}
	c := ts.dial("many")
	reasons := map[string]int{}
	for i := range 70 {
		ref := c.push(fmt.Sprint(i+1000), fmt.Sprint("room:t", i), "phx_join", `{"no_state":true}`)
		status, resp := c.reply(ref)
		if status == "ok" {
			reasons["ok"]++
			continue
		}
		var r struct{ Reason string }
		json.Unmarshal(resp, &r)
		reasons[r.Reason]++
	}
	if reasons["ok"] != 64 || reasons["too_many_topics"] != 6 || len(reasons) != 2 {
		t.Fatalf("70 joins: %v; want 64 ok and 6 too_many_topics", reasons)
	}
	if n := ts.srv.Presence().Len(); n != 64 {
		t.Fatalf("%d entries, want 64", n)
	}
}
