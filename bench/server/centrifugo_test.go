package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/presencekit/presence/bench/load"
)

// node serves the centrifuge library, which Centrifugo is built on, with
// the options Centrifugo's config turns on: anonymous clients, presence,
// join and leave pushed to everyone, publishing by subscribers. The test
// suite never builds Centrifugo itself.
func node(t *testing.T) string {
	t.Helper()
	n, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError})
	if err != nil {
		t.Fatal(err)
	}
	n.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil
	})
	n.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{EmitPresence: true, EmitJoinLeave: true, PushJoinLeave: true}}, nil)
		})
		c.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
		c.OnPresence(func(_ centrifuge.PresenceEvent, cb centrifuge.PresenceCallback) {
			cb(centrifuge.PresenceReply{}, nil)
		})
	})
	if err := n.Run(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(n, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/connection/websocket"
}

func smoke(t *testing.T, cfg load.Config) *load.Result {
	t.Helper()
	cfg.URL = node(t)
	cfg.Room, cfg.Dials, cfg.Timeout, cfg.ServerPID = "room", 16, 30*time.Second, os.Getpid()
	cfg.SetDefaults()
	res, err := load.Run(context.Background(), &driver{url: cfg.URL}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != "" || !res.Complete || res.Frames == 0 || res.Bytes == 0 || res.PresenceFrames == 0 || res.Disconnects != 0 || res.ConnectErrors != 0 {
		t.Fatalf("%s: %+v", cfg.Workload, res)
	}
	return res
}

func TestJoinStorm(t *testing.T) {
	const n = 20
	res := smoke(t, load.Config{Workload: load.Join, Clients: n})
	// One presence reply per client, and a join push per pair at most.
	if res.CompleteClients != n || res.PresenceFrames < n || res.PresenceFrames > n+n*n {
		t.Fatalf("%+v", res)
	}
}

func TestChurn(t *testing.T) {
	res := smoke(t, load.Config{Workload: load.Churn, Clients: 20, Churners: 4, Rate: 10, Duration: 2 * time.Second})
	if res.Actions < 20 || res.Unseen != 0 || res.LatencyP99Ms <= 0 {
		t.Fatalf("%+v", res)
	}
}

func TestFanout(t *testing.T) {
	const n = 10
	res := smoke(t, load.Config{Workload: load.Fanout, Clients: n, Rate: 20, Duration: time.Second, MsgSize: 100})
	if res.Sent < 10 || res.Delivered != res.Sent*n || res.Messages != res.Sent*(n+1) {
		t.Fatalf("sent %d, delivered %d of %d", res.Sent, res.Delivered, res.Expected)
	}
}

func TestIdle(t *testing.T) {
	res := smoke(t, load.Config{Workload: load.Idle, Clients: 30, Rooms: 3, Duration: time.Millisecond})
	if res.ServerRSS == 0 {
		t.Fatalf("%+v", res)
	}
}

func TestTable(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for name, r := range map[string]*load.Result{
		a: {Server: "presence", Workload: load.Join, Clients: 5, Complete: true, CompleteMs: 10},
		b: {Server: "centrifugo", Workload: load.Join, Clients: 5, Complete: true, CompleteMs: 30},
	} {
		var buf bytes.Buffer
		if err := load.WriteJSON(&buf, r); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-table", a, b}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "presence  centrifugo") || !strings.Contains(out.String(), "0.03 s") {
		t.Fatalf("table:\n%s", out.String())
	}
	if code := run([]string{"-url", "ws://10.0.0.1/connection/websocket"}, &out, &errOut); code != 2 {
		t.Fatalf("remote url: exit %d", code)
	}
}
