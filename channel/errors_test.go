package channel

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/presencekit/presence/engine"
)

// syncBuffer is a bytes.Buffer for a logger that several goroutines use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLoggedServer(t *testing.T) (*testServer, *syncBuffer) {
	var log syncBuffer
	ts := newTestServer(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	return ts, &log
}

func TestReasonFor(t *testing.T) {
	for _, c := range []struct {
		err       error
		reason    string
		forClient bool
	}{
		{engine.ErrFull, "full", false},
		{fmt.Errorf("track: %w", engine.ErrInvalidMeta), "invalid_meta", false},
		{engine.ErrSocketLimit, "socket_limit", false},
		{engine.ErrKeyTooLong, "key_too_long", false},
		{ErrReservedMeta, "reserved_meta", false},
		{Reason("room is full"), "room is full", true},
		{fmt.Errorf("wrapped: %w", Reason("banned")), "banned", true},
		{errors.New("pq: connection refused"), "fallback", false},
	} {
		if reason, forClient := reasonFor(c.err, "fallback"); reason != c.reason || forClient != c.forClient {
			t.Errorf("reasonFor(%v) = %q, %v; want %q, %v", c.err, reason, forClient, c.reason, c.forClient)
		}
	}
}

// TestJoinErrorsBecomeReasons: a refused join tells the client a short
// reason, never an error's text unless the error was made for the client;
// the server's log has the detail.
func TestJoinErrorsBecomeReasons(t *testing.T) {
	ts, log := newLoggedServer(t)
	c := ts.dial("alice")
	for i, tc := range []struct{ params, want string }{
		{`{"meta":"{\"a\":1,\"a\":2}"}`, "invalid_meta"},
		{`{"meta":"{\"phx_ref\":\"x\"}"}`, "reserved_meta"},
		{`{"reject":"room is full"}`, "room is full"},
		{`{"fail":"pq: password authentication failed for user app"}`, "join failed"},
		{`{"panic":true}`, "join crashed"},
	} {
		ref := c.push(fmt.Sprint(i+1), "room:lobby", "phx_join", tc.params)
		if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"`+tc.want+`"}` {
			t.Errorf("join %s: %s %s, want reason %q", tc.params, status, resp, tc.want)
		}
	}
	logged := log.String()
	for _, detail := range []string{"pq: password authentication failed", "engine: meta is not one valid JSON object"} {
		if !strings.Contains(logged, detail) {
			t.Errorf("log lacks %q:\n%s", detail, logged)
		}
	}
	for line := range strings.Lines(logged) {
		if strings.Contains(line, "room is full") && !strings.Contains(line, "level=INFO") {
			t.Errorf("a reason made for the client was logged as a failure:\n%s", line)
		}
	}
	if n := ts.srv.Presence().Count("room:lobby"); n != 0 {
		t.Fatalf("refused joins left %d entries", n)
	}
}

func TestHandlerErrorsBecomeReasons(t *testing.T) {
	ts, log := newLoggedServer(t)
	c := ts.dial("alice")
	jr := c.join("room:lobby", `{}`)
	for _, tc := range []struct{ event, payload, want string }{
		{"fail", `{}`, "it failed"},
		{"fail_plain", `{}`, "event failed"},
		{"update", `{"a":1,"a":2}`, "invalid_meta"},
		{"update", `{"phx_ref_prev":"1"}`, "reserved_meta"},
	} {
		ref := c.push(jr, "room:lobby", tc.event, tc.payload)
		if status, resp := c.reply(ref); status != "error" || string(resp) != `{"reason":"`+tc.want+`"}` {
			t.Errorf("%s %s: %s %s, want reason %q", tc.event, tc.payload, status, resp, tc.want)
		}
	}
	if !strings.Contains(log.String(), "10.0.0.7 refused") {
		t.Errorf("log lacks the handler's error:\n%s", log.String())
	}
}

// TestTrackRejectsOnlyTopLevelPhxRef: phx_ref and phx_ref_prev are the
// server's keys at the top level of a meta; anywhere else they are data.
func TestTrackRejectsOnlyTopLevelPhxRef(t *testing.T) {
	for meta, want := range map[string]bool{
		`{"phx_ref":"x"}`:                  true,
		`{"name":"a","phx_ref_prev":"1"}`:  true,
		`{"phx\u005fref":"x"}`:             true,
		` { "a" : 1 , "phx_ref" : null } `: true,
		`{"status":"phx_ref is a word"}`:   false,
		`{"s":"\"phx_ref\":1"}`:            false,
		`{"nested":{"phx_ref":"x"}}`:       false,
		`{"list":["phx_ref"]}`:             false,
		`{"phx_refs":1}`:                   false,
		`{"name":"alice"}`:                 false,
		`not json "phx_ref"`:               false, // the engine refuses it
	} {
		if got := reservedKey([]byte(meta)); got != want {
			t.Errorf("reservedKey(%s) = %v, want %v", meta, got, want)
		}
	}
	ts := newTestServer(t, nil)
	c := ts.dial("alice")
	c.join("room:lobby", `{"meta":"{\"status\":\"phx_ref is a word\",\"x\":{\"phx_ref\":1}}"}`)
	if n := ts.srv.Presence().Count("room:lobby"); n != 1 {
		t.Fatalf("Count %d after a join whose meta holds phx_ref in values", n)
	}
}

// TestPanicIsLoggedWithStack: a recovered panic is logged with the stack
// of the goroutine that panicked, down to the callback's own line.
func TestPanicIsLoggedWithStack(t *testing.T) {
	ts, log := newLoggedServer(t)
	c := ts.dial("alice")
	jr := c.join("room:lobby", `{}`)
	c.reply(c.push(jr, "room:lobby", "panic", `{}`))
	logged := log.String()
	if !strings.Contains(logged, "handler panicked") || !strings.Contains(logged, "stack=") ||
		!strings.Contains(logged, "channel_test.go:") || !strings.Contains(logged, "(*Socket).event") {
		t.Fatalf("log has no stack of the panic:\n%s", logged)
	}
}
