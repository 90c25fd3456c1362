package load

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// hub is an in-memory presence server for the workloads' own tests. Every
// change reaches every roster under one lock, so each roster is updated by
// one goroutine at a time, as a driver's read loop would.
type hub struct {
	mu    sync.Mutex
	rooms map[string]map[*fakeClient]bool
	hide  string // a name whose presence nobody sees
	lossy bool   // drop every other leave
	drops int
	flaky map[string]int // names whose first connects fail, and how many
	mute  bool           // refuse every publish
}

func (h *hub) Name() string { return "fake" }

var errFlaky = errors.New("connection refused")

func (h *hub) Connect(_ context.Context, name string, ev *Events) (Client, error) {
	h.mu.Lock()
	if h.flaky[name] > 0 {
		h.flaky[name]--
		h.mu.Unlock()
		return nil, errFlaky
	}
	h.mu.Unlock()
	ev.Counters.Bytes.Add(100)
	return &fakeClient{h: h, name: name, ev: ev}, nil
}

type fakeClient struct {
	h    *hub
	name string
	ev   *Events
}

func (c *fakeClient) Key() string { return c.name }

func (c *fakeClient) frame(ev *Events) {
	ev.Counters.Frames.Add(1)
	ev.Counters.PresenceFrames.Add(1)
}

func (c *fakeClient) Join(_ context.Context, room string) error {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms == nil {
		h.rooms = map[string]map[*fakeClient]bool{}
	}
	if h.rooms[room] == nil {
		h.rooms[room] = map[*fakeClient]bool{}
	}
	h.rooms[room][c] = true
	c.frame(c.ev)
	c.ev.Roster.Replace(func(add func(k, id string)) {
		for o := range h.rooms[room] {
			if o.name != h.hide {
				add(o.name, o.name)
			}
		}
	})
	for o := range h.rooms[room] {
		if o != c && c.name != h.hide {
			c.frame(o.ev)
			o.ev.Roster.Add(c.name, c.name)
		}
	}
	return nil
}

func (c *fakeClient) Leave(_ context.Context, room string) error {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.rooms[room], c)
	if h.lossy {
		if h.drops++; h.drops%2 == 0 {
			return nil
		}
	}
	for o := range h.rooms[room] {
		c.frame(o.ev)
		o.ev.Roster.Remove(c.name, c.name)
	}
	return nil
}

func (c *fakeClient) Publish(_ context.Context, room string, body []byte) error {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mute {
		return errFlaky
	}
	for o := range h.rooms[room] {
		o.ev.Counters.Messages.Add(1)
		if o != c && o.ev.Message != nil {
			o.ev.Message(body)
		}
	}
	return nil
}

func (c *fakeClient) Close() error { return nil }

func fakeConfig(workload string) Config {
	return Config{Workload: workload, URL: "ws://127.0.0.1/", Clients: 20, Rooms: 4, Churners: 4, Rate: 50,
		Duration: 300 * time.Millisecond, MsgSize: 64, Timeout: 10 * time.Second, Dials: 4, Room: "r"}
}

func TestWorkloadsOnFake(t *testing.T) {
	for _, w := range Workloads {
		res, err := Run(context.Background(), &hub{}, fakeConfig(w))
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != "" || !res.Complete || res.CompleteClients != 20 && w != Fanout || res.Bytes != int64(20+btoi(w == Fanout))*100 {
			t.Fatalf("%s: %+v", w, res)
		}
		switch w {
		case Churn:
			if res.Actions < 10 || res.Unseen != 0 || res.LatencyP99Ms <= 0 || res.PresencePerSec <= 0 {
				t.Fatalf("churn: %+v", res)
			}
		case Fanout:
			if res.Sent != 15 || res.Delivered != res.Sent*20 || res.Expected != res.Delivered || res.Messages != res.Sent*21 || res.Rosters != 21 {
				t.Fatalf("fanout: %+v", res)
			}
		}
	}
}

// TestRetries: clients dial again after a failed connect, as real
// clients do, and give up after the backoff schedule.
func TestRetries(t *testing.T) {
	res, err := Run(context.Background(), &hub{flaky: map[string]int{"u1": 2, "u7": 3}}, fakeConfig(Join))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || res.Retries != 5 || res.ConnectErrors != 0 {
		t.Fatalf("%+v", res)
	}
	res, err = Run(context.Background(), &hub{flaky: map[string]int{"u2": len(backoff) + 1}}, fakeConfig(Join))
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || res.Retries != int64(len(backoff)) || res.ConnectErrors != 1 || !strings.Contains(res.Error, "connection refused") {
		t.Fatalf("%+v", res)
	}
}

func TestPublishErrorsAreReported(t *testing.T) {
	res, err := Run(context.Background(), &hub{mute: true}, fakeConfig(Fanout))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 0 || res.Delivered != 0 || !strings.Contains(res.Error, "publishes failed: connection refused") {
		t.Fatalf("%+v", res)
	}
}

// TestHiddenMemberNeverCompletes: a roster that never holds everyone is
// reported incomplete when the time is up, not complete.
func TestHiddenMemberNeverCompletes(t *testing.T) {
	cfg := fakeConfig(Join)
	cfg.Timeout = 300 * time.Millisecond
	res, err := Run(context.Background(), &hub{hide: "u3"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || res.CompleteClients != 0 || !strings.Contains(res.Error, ErrIncomplete.Error()) {
		t.Fatalf("%+v", res)
	}
}

// TestLostLeavesAreUnseen: churn counts the leaves some observer never
// saw.
func TestLostLeavesAreUnseen(t *testing.T) {
	cfg := fakeConfig(Churn)
	cfg.Timeout = 2 * time.Second // an action unseen for 500 ms counts unseen
	res, err := Run(context.Background(), &hub{lossy: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unseen == 0 || res.Unseen > res.Actions {
		t.Fatalf("unseen %d of %d actions", res.Unseen, res.Actions)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	cfg := fakeConfig(Join)
	cfg.URL = "ws://198.51.100.7/"
	if _, err := Run(context.Background(), &hub{}, cfg); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("err = %v", err)
	}
}
