package channel

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"
)

func TestBroadcastAfterShutdownIsErrServerClosed(t *testing.T) {
	ts := newTestServer(t, nil)
	if err := ts.srv.Broadcast("room:lobby", "news", map[string]int{"n": 1}); err != nil {
		t.Fatalf("Broadcast before Shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Broadcast("room:lobby", "news", map[string]int{"n": 2}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Broadcast after Shutdown: %v, want ErrServerClosed", err)
	}
}

// Every Socket method that acts on the connection returns ErrClosed once
// the socket closed, and changes nothing. Broadcast and BroadcastFrom go
// through the server, so that Leave callbacks, which run after the close,
// can announce the leave; they fail with ErrServerClosed after Shutdown.
func TestSocketMethodsAfterCloseAreErrClosed(t *testing.T) {
	joined := make(chan *Socket, 1)
	ts := newTestServer(t, func(c *Config) {
		c.Channels = append(c.Channels, Channel{Topic: "keep", Join: func(s *Socket, topic string, _ json.RawMessage) (any, error) {
			joined <- s
			return nil, s.Track(topic, "k", nil)
		}})
	})
	c := ts.dial("gone")
	c.join("keep", `{}`)
	s := <-joined
	if err := s.Push("keep", "ping", nil); err != nil {
		t.Fatalf("Push while open: %v", err)
	}
	c.conn.CloseNow()
	waitFor(t, "the socket's cleanup", func() bool { return ts.srv.Stats().Sockets == 0 && ts.srv.Presence().Len() == 0 })

	for name, call := range map[string]func() error{
		"Track":             func() error { return s.Track("keep", "k", nil) },
		"Push":              func() error { return s.Push("keep", "ping", nil) },
		"PushPresenceState": func() error { return s.PushPresenceState("keep") },
		"Close":             s.Close,
	} {
		if err := call(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
	if s.Untrack("keep") {
		t.Error("Untrack after close removed something")
	}
	if n := ts.srv.Presence().Len(); n != 0 {
		t.Fatalf("%d entries after the closed socket's calls, want 0", n)
	}
	if err := s.Broadcast("keep", "ping", nil); err != nil {
		t.Fatalf("Broadcast from a closed socket of a running server: %v", err)
	}
	if err := s.BroadcastFrom("keep", "ping", nil); err != nil {
		t.Fatalf("BroadcastFrom from a closed socket of a running server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Broadcast":     func() error { return s.Broadcast("keep", "ping", nil) },
		"BroadcastFrom": func() error { return s.BroadcastFrom("keep", "ping", nil) },
	} {
		if err := call(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("%s after Shutdown: %v, want ErrServerClosed", name, err)
		}
	}
}

// Close closes once: the first call succeeds, the next is ErrClosed.
func TestSocketCloseTwice(t *testing.T) {
	joined := make(chan *Socket, 1)
	ts := newTestServer(t, func(c *Config) {
		c.Channels = append(c.Channels, Channel{Topic: "keep", Join: func(s *Socket, topic string, _ json.RawMessage) (any, error) {
			joined <- s
			return nil, nil
		}})
	})
	c := ts.dial("twice")
	c.join("keep", `{}`)
	s := <-joined
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if code := c.closed(); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}
