package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/chatroom"
	"github.com/presencekit/presence/engine"
)

// countServer serves presence-chat's room with capacity for n clients,
// and returns its WebSocket URL and engine.
func countServer(t *testing.T, n int) (string, *engine.Engine) {
	t.Helper()
	e, err := engine.New(engine.Config{Capacity: n + 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := chatroom.New(e, chatroom.Options{})
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
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket", e
}

func serverRun(t *testing.T, args ...string) (int, []*serverResult, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"-mode", "server", "-quiet", "-json"}, args...), &out, &errOut)
	var rs []*serverResult
	if out.Len() > 0 {
		envelope(t, out.Bytes(), "server", &rs)
	}
	return code, rs, errOut.String()
}

// TestServerModeCountPresence: a join storm in count mode completes when
// every client's last presence_count is the whole room, and costs each
// client a small fraction of what full mode costs at the same size.
func TestServerModeCountPresence(t *testing.T) {
	n := 200
	if raceEnabled {
		n = 60
	}
	url, _ := countServer(t, 2*n)
	code, rs, stderr := serverRun(t, "-url", url, "-workload", "join", "-presence", "count", "-clients", fmt.Sprint(n), "-room", "chat:count", "-timeout", "60s")
	if code != 0 || len(rs) != 1 {
		t.Fatalf("count mode: exit %d: %s", code, stderr)
	}
	c := rs[0]
	if !c.Complete || c.CompleteClients != n || c.Presence != "count" || c.Disconnects != 0 || c.ConnectErrors != 0 || c.Error != "" {
		t.Fatalf("count mode report: %+v", c)
	}
	if c.BytesPerClient <= 0 || c.BytesPerClient > 8<<10 || c.NoFile == 0 {
		t.Fatalf("count mode: %.0f bytes per client, nofile %d", c.BytesPerClient, c.NoFile)
	}
	code, rs, stderr = serverRun(t, "-url", url, "-workload", "join", "-clients", fmt.Sprint(n), "-room", "chat:full", "-timeout", "60s")
	if code != 0 || len(rs) != 1 || !rs[0].Complete || rs[0].Presence != "full" {
		t.Fatalf("full mode: exit %d: %s", code, stderr)
	}
	t.Logf("%d clients: count mode %.0f bytes per client in %.0f ms, full mode %.0f in %.0f ms",
		n, c.BytesPerClient, c.CompleteMs, rs[0].BytesPerClient, rs[0].CompleteMs)
	if c.BytesPerClient*3 > rs[0].BytesPerClient {
		t.Fatalf("count mode %.0f bytes per client, full mode %.0f: want count mode far below", c.BytesPerClient, rs[0].BytesPerClient)
	}
}

// TestServerModeCountWrongFails: when the room holds a key that is not a
// client's, no client's count is the number of clients: the run fails,
// exit 1, saying how many counts were whole.
func TestServerModeCountWrongFails(t *testing.T) {
	url, e := countServer(t, 64)
	if err := e.Track(1<<40, "chat:room0", "stranger", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	code, rs, stderr := serverRun(t, "-url", url, "-workload", "join", "-presence", "count", "-clients", "10", "-timeout", "1s")
	if code != 1 || len(rs) != 1 || rs[0].Complete || rs[0].CompleteClients != 0 || !strings.Contains(stderr, "0 of 10 counts whole") {
		t.Fatalf("exit %d, report %+v, stderr %s", code, rs, stderr)
	}
}

// -presence takes full or count, and count only with the join workload.
func TestServerModePresenceFlag(t *testing.T) {
	for args, want := range map[string]string{
		"-presence some":                    `presence "some": want full or count`,
		"-presence count -workload churn":   "-presence count runs the join workload only, not churn",
		"-presence count -workload fanout":  "-presence count runs the join workload only, not fanout",
		"-presence full -workload churn -x": "flag provided but not defined",
	} {
		got := usageError(t, append([]string{"-mode", "server"}, strings.Fields(args)...)...)
		if !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", args, got, want)
		}
	}
	if got := usageError(t, "-mode", "engine", "-presence", "count"); !strings.Contains(got, "-presence (-mode server)") {
		t.Errorf("-presence in engine mode: %q", got)
	}
}
