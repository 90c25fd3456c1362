package metrics_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics"
)

// TestScrapeCountsAndPages: a count-mode join's presence_count and a
// presence_list page show in their counters.
func TestScrapeCountsAndPages(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 128})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := channel.NewServer(channel.Config{
		Presence: e,
		Channels: []channel.Channel{{
			Topic: "room:*",
			Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
				return nil, s.Track(topic, "alice", []byte(`{}`))
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Channel(srv.Stats))
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)

	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, frame := range []string{`["1","1","room:a","phx_join",{"presence":"count"}]`, `["1","2","room:a","presence_list",{}]`} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(data), `["1","2","room:a","phx_reply",{"status":"ok"`) {
			break
		}
	}
	got := scrape(t, hs.URL+"/metrics")
	if got["presence_channel_presence_counts_total"] != 1 || got["presence_channel_presence_lists_total"] != 1 {
		t.Fatalf("counts %v, lists %v; want 1 and 1", got["presence_channel_presence_counts_total"], got["presence_channel_presence_lists_total"])
	}
}
