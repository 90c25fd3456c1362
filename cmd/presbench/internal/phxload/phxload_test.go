package phxload

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chatServer serves presence-chat's protocol without the user_joined and
// user_left announcements: a join tracks the client's name and pushes the
// presence, new_msg is broadcast to the others. A name in skip joins
// without presence.
func chatServer(t *testing.T, skip string) string {
	t.Helper()
	e, err := engine.New(engine.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := channel.NewServer(channel.Config{
		Presence: e,
		Connect: func(_ *http.Request, params url.Values) (map[string]any, error) {
			if params.Get("name") == "" {
				return nil, errors.New("name required")
			}
			return map[string]any{"name": params.Get("name")}, nil
		},
		Channels: []channel.Channel{{
			Topic: "chat:*",
			Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
				v, _ := s.Get("name")
				name := v.(string)
				if name != skip {
					meta, _ := json.Marshal(map[string]string{"name": name})
					if err := s.Track(topic, name, meta); err != nil {
						return nil, err
					}
				}
				return nil, s.PushPresenceState(topic)
			},
			Handlers: map[string]channel.Handler{
				"new_msg": func(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
					var msg struct {
						Body string `json:"body"`
					}
					if err := json.Unmarshal(payload, &msg); err != nil {
						return nil, err
					}
					v, _ := s.Get("name")
					return channel.NoReply, s.BroadcastFrom(topic, "new_msg", map[string]string{"user": v.(string), "body": msg.Body})
				},
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func smoke(t *testing.T, url string, cfg load.Config) *load.Result {
	t.Helper()
	cfg.URL = url
	cfg.Room = "chat:room"
	cfg.Dials = 16
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.ServerPID = os.Getpid() // the server runs in this process
	res, err := load.Run(context.Background(), &Driver{URL: url}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != "" {
		t.Fatalf("%s: %s", cfg.Workload, res.Error)
	}
	if !res.Complete || res.CompleteClients != res.Clients && cfg.Workload != load.Fanout {
		t.Fatalf("%s: rosters incomplete: %d of %d", cfg.Workload, res.CompleteClients, res.Clients)
	}
	if res.Frames == 0 || res.Bytes == 0 || res.PresenceFrames == 0 || res.Disconnects != 0 || res.ConnectErrors != 0 {
		t.Fatalf("%s: counters: %+v", cfg.Workload, res)
	}
	if res.ServerPeakRSS == 0 {
		t.Fatalf("%s: no server memory read", cfg.Workload)
	}
	return res
}

func TestJoinStorm(t *testing.T) {
	const n = 30
	res := smoke(t, chatServer(t, ""), load.Config{Workload: load.Join, Clients: n})
	// Every client got at least its presence_state, and the rosters
	// were built from presence frames only.
	if res.PresenceFrames < n || res.Frames < res.PresenceFrames+n {
		t.Fatalf("%d frames, %d presence frames for %d joins", res.Frames, res.PresenceFrames, n)
	}
}

func TestChurn(t *testing.T) {
	res := smoke(t, chatServer(t, ""), load.Config{Workload: load.Churn, Clients: 30, Churners: 6, Rate: 10, Duration: 2 * time.Second})
	// About 20 cycles of two actions each, all seen by all 24 observers.
	if res.Actions < 20 || res.Unseen != 0 || res.LatencyP99Ms <= 0 || res.PresencePerSec <= 0 {
		t.Fatalf("churn: %+v", res)
	}
}

func TestFanout(t *testing.T) {
	const n = 10
	res := smoke(t, chatServer(t, ""), load.Config{Workload: load.Fanout, Clients: n, Rate: 20, Duration: time.Second, MsgSize: 100})
	if res.Sent < 10 || res.Delivered != res.Sent*n || res.Expected != res.Delivered || res.LatencyP50Ms <= 0 {
		t.Fatalf("fanout: sent %d, delivered %d of %d, p50 %.2f ms", res.Sent, res.Delivered, res.Expected, res.LatencyP50Ms)
	}
}

func TestIdle(t *testing.T) {
	res := smoke(t, chatServer(t, ""), load.Config{Workload: load.Idle, Clients: 40, Rooms: 4})
	if res.ServerRSS == 0 || res.Rooms != 4 {
		t.Fatalf("idle: %+v", res)
	}
}

// TestMissingPresenceNeverCompletes checks that the join storm does not
// report complete rosters when one member's presence never shows.
func TestMissingPresenceNeverCompletes(t *testing.T) {
	url := chatServer(t, "u3")
	res, err := load.Run(context.Background(), &Driver{URL: url}, load.Config{
		Workload: load.Join, URL: url, Room: "chat:room", Clients: 10, Dials: 4, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || res.CompleteClients != 0 || !strings.Contains(res.Error, load.ErrIncomplete.Error()) {
		t.Fatalf("complete %v (%d clients), error %q", res.Complete, res.CompleteClients, res.Error)
	}
}

func TestRefusesRemoteServer(t *testing.T) {
	_, err := load.Run(context.Background(), &Driver{URL: "ws://192.0.2.1/socket/websocket"}, load.Config{
		Workload: load.Join, URL: "ws://192.0.2.1/socket/websocket", Room: "chat:room", Clients: 2, Dials: 1, Timeout: time.Second,
	})
	if !errors.Is(err, load.ErrNotLoopback) {
		t.Fatalf("err = %v, want ErrNotLoopback", err)
	}
}
