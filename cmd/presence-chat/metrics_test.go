package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence/engine"
)

// demo serves the demo's routes over loopback, once per test binary:
// routes publishes expvar variables, which a process can do only once.
var demo = sync.OnceValues(func() (*httptest.Server, error) {
	presence, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		return nil, err
	}
	srv, err := newServer(presence, 5*time.Millisecond, time.Minute)
	if err != nil {
		return nil, err
	}
	return httptest.NewServer(routes(srv)), nil
})

// TestMetricsEndpointFollowsAJoin joins a room of the demo with a
// WebSocket client, and checks that /metrics moves with the join and back
// with the close.
func TestMetricsEndpointFollowsAJoin(t *testing.T) {
	hs, err := demo()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	before := scrapeMetrics(t, hs.URL+"/metrics")
	if _, ok := before["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
	for _, name := range []string{"presence_engine_entries", "presence_channel_sockets", "presence_channel_joins_total", "presence_channel_leaves_total"} {
		if _, ok := before[name]; !ok {
			t.Fatalf("no %s", name)
		}
	}
	if got := before["presence_engine_capacity"]; got != 64 {
		t.Errorf("presence_engine_capacity = %v, want 64", got)
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
	for _, name := range []string{"presence_engine_entries", "presence_channel_sockets", "presence_channel_joins_total"} {
		if got, want := after[name], before[name]+1; got != want {
			t.Errorf("after the join: %s = %v, want %v", name, got, want)
		}
	}

	conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrapeMetrics(t, hs.URL+"/metrics")
		if m["presence_engine_entries"] == before["presence_engine_entries"] &&
			m["presence_channel_sockets"] == before["presence_channel_sockets"] &&
			m["presence_channel_leaves_total"] == before["presence_channel_leaves_total"]+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the close: entries %v, sockets %v, leaves %v; before the join: %v, %v, %v",
				m["presence_engine_entries"], m["presence_channel_sockets"], m["presence_channel_leaves_total"],
				before["presence_engine_entries"], before["presence_channel_sockets"], before["presence_channel_leaves_total"])
		}
		time.Sleep(10 * time.Millisecond)
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
