package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence/engine"
)

// TestMetricsEndpointFollowsAJoin serves the demo's routes over loopback,
// joins a room with a WebSocket client, and scrapes /metrics before and
// after.
func TestMetricsEndpointFollowsAJoin(t *testing.T) {
	presence, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(presence, 5*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(routes(srv))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)

	before := scrapeMetrics(t, hs.URL+"/metrics")
	if _, ok := before["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
	for name, want := range map[string]float64{"presence_engine_entries": 0, "presence_engine_capacity": 64, "presence_channel_joins_total": 0} {
		if got, ok := before[name]; !ok || got != want {
			t.Errorf("before the join: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?name=alice&vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","chat:lobby","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	for joined := false; !joined; {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var frame [5]json.RawMessage
		if err := json.Unmarshal(data, &frame); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		if string(frame[3]) == `"phx_reply"` && string(frame[1]) == `"1"` {
			if !strings.Contains(string(frame[4]), `"status":"ok"`) {
				t.Fatalf("join reply %s", frame[4])
			}
			joined = true
		}
	}

	after := scrapeMetrics(t, hs.URL+"/metrics")
	for name, want := range map[string]float64{"presence_engine_entries": 1, "presence_channel_sockets": 1, "presence_channel_joins_total": 1} {
		if got := after[name]; got != want {
			t.Errorf("after the join: %s = %v, want %v", name, got, want)
		}
	}
}

// scrapeMetrics returns the value of each sample line of the text format
// at url, by its name and labels.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %s, %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}
