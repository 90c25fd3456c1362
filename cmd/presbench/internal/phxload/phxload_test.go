package phxload

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/chatroom"
	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/engine"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chatServer serves presence-chat's room, shaped by o, and returns its
// WebSocket URL.
func chatServer(t *testing.T, o chatroom.Options) string {
	t.Helper()
	e, err := engine.New(engine.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := chatroom.New(e, o)
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
	res := smoke(t, chatServer(t, chatroom.Options{}), load.Config{Workload: load.Join, Clients: n})
	// Every client got at least its presence_state, and the rosters
	// were built from presence frames only.
	if res.PresenceFrames < n || res.Frames < res.PresenceFrames+n {
		t.Fatalf("%d frames, %d presence frames for %d joins", res.Frames, res.PresenceFrames, n)
	}
}

func TestChurn(t *testing.T) {
	res := smoke(t, chatServer(t, chatroom.Options{}), load.Config{Workload: load.Churn, Clients: 30, Churners: 6, Rate: 10, Duration: 2 * time.Second})
	// About 20 cycles of two actions each, all seen by all 24 observers.
	if res.Actions < 20 || res.Unseen != 0 || res.LatencyP99Ms <= 0 || res.PresencePerSec <= 0 {
		t.Fatalf("churn: %+v", res)
	}
}

func TestFanout(t *testing.T) {
	const n = 10
	res := smoke(t, chatServer(t, chatroom.Options{}), load.Config{Workload: load.Fanout, Clients: n, Rate: 20, Duration: time.Second, MsgSize: 100})
	if res.Sent < 10 || res.Delivered != res.Sent*n || res.Expected != res.Delivered || res.Messages != res.Sent*(n+1) || res.LatencyP50Ms <= 0 {
		t.Fatalf("fanout: sent %d, delivered %d of %d, p50 %.2f ms", res.Sent, res.Delivered, res.Expected, res.LatencyP50Ms)
	}
}

func TestIdle(t *testing.T) {
	res := smoke(t, chatServer(t, chatroom.Options{}), load.Config{Workload: load.Idle, Clients: 40, Rooms: 4})
	if res.ServerRSS == 0 || res.Rooms != 4 {
		t.Fatalf("idle: %+v", res)
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

// TestAnnouncedJoinsAreNotPresence: with the demo's user_joined
// broadcasts, clients receive more frames, but the presence frames alone
// are what the rosters are built from.
func TestAnnouncedJoinsAreNotPresence(t *testing.T) {
	const n = 12
	res := smoke(t, chatServer(t, chatroom.Options{Announce: true}), load.Config{Workload: load.Join, Clients: n})
	// Besides the n join replies and the presence frames, the clients
	// heard user_joined of the clients that joined after them.
	if res.Frames <= res.PresenceFrames+n {
		t.Fatalf("%d frames, %d presence frames: no announcements", res.Frames, res.PresenceFrames)
	}
}
