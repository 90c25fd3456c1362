package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics"
	"github.com/presencekit/presence/metrics/internal/coverage"
)

func TestEngineCollectorCoversEveryStatsField(t *testing.T) {
	coverage.Check(t, metrics.Engine)
}

func TestChannelCollectorCoversEveryStatsField(t *testing.T) {
	coverage.Check(t, metrics.Channel)
}

func TestCollectorsPassLint(t *testing.T) {
	for name, c := range map[string]prometheus.Collector{
		"engine":  metrics.Engine(func() engine.Stats { return engine.Stats{} }),
		"channel": metrics.Channel(func() channel.Stats { return channel.Stats{} }),
	} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", name, p.Metric, p.Text)
		}
	}
}

func TestEngineCollectorReadsTheEngine(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 8, LocalCapacity: 3, MaxPerSocket: 8})
	if err != nil {
		t.Fatal(err)
	}
	track := func(s engine.SocketID, key string) error {
		return e.Track(s, "room:a", key, []byte(`{}`))
	}
	for i := range 3 {
		if err := track(engine.SocketID(i+1), fmt.Sprint("local", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := track(4, "local3"); !errors.Is(err, engine.ErrFull) {
		t.Fatalf("a fourth local entry: %v, want ErrFull", err)
	}
	for i := range 5 {
		if err := track(engine.FirstRemoteSocket+engine.SocketID(i), fmt.Sprint("remote", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := track(engine.FirstRemoteSocket+5, "remote5"); !errors.Is(err, engine.ErrFull) {
		t.Fatalf("a ninth entry: %v, want ErrFull", err)
	}
	c := metrics.Engine(e.Stats)
	want := `
# HELP presence_engine_capacity Entries the engine can hold.
# TYPE presence_engine_capacity gauge
presence_engine_capacity 8
# HELP presence_engine_class_entries Entries present now, by the class of their socket: local, or remote (a cluster peer's).
# TYPE presence_engine_class_entries gauge
presence_engine_class_entries{class="local"} 3
presence_engine_class_entries{class="remote"} 5
# HELP presence_engine_entries Entries present now.
# TYPE presence_engine_entries gauge
presence_engine_entries 8
# HELP presence_engine_full_total Tracks refused with ErrFull, by the class of their socket.
# TYPE presence_engine_full_total counter
presence_engine_full_total{class="local"} 1
presence_engine_full_total{class="remote"} 1
# HELP presence_engine_local_capacity Entries local sockets may hold; the rest of the capacity is kept for remote ones.
# TYPE presence_engine_local_capacity gauge
presence_engine_local_capacity 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"presence_engine_capacity", "presence_engine_class_entries", "presence_engine_entries",
		"presence_engine_full_total", "presence_engine_local_capacity"); err != nil {
		t.Fatal(err)
	}
	e.UntrackAll(2)
	if got := testutil.ToFloat64(filtered{c, "presence_engine_entries"}); got != 7 {
		t.Fatalf("entries after UntrackAll = %v, want 7", got)
	}
}

func TestEngineCollectorLocalCapacityDefaultsToCapacity(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(filtered{metrics.Engine(e.Stats), "presence_engine_local_capacity"}); got != 16 {
		t.Fatalf("local capacity = %v, want 16", got)
	}
}

// filtered passes on one metric of a collector, for testutil.ToFloat64.
type filtered struct {
	prometheus.Collector
	name string
}

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.Collector.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}

func TestCollectorsRegisterTogetherAndTwiceFails(t *testing.T) {
	e, _ := engine.New(engine.Config{})
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(metrics.Engine(e.Stats)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(metrics.Channel(func() channel.Stats { return channel.Stats{} })); err != nil {
		t.Fatal(err)
	}
	// A second engine in the same registry must be told apart by a label.
	if err := reg.Register(metrics.Engine(e.Stats)); err == nil {
		t.Fatal("registering the engine collector twice succeeded")
	}
	two := prometheus.NewPedanticRegistry()
	for _, name := range []string{"a", "b"} {
		wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"engine": name}, two)
		if err := wrapped.Register(metrics.Engine(e.Stats)); err != nil {
			t.Fatalf("engine %s: %v", name, err)
		}
	}
	if _, err := two.Gather(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// scrape fetches url and returns each sample line's value by its name and
// labels, as the text format writes them.
func scrape(t *testing.T, url string) map[string]float64 {
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
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

// TestScrapeFollowsAJoin serves a channel server and its metrics over
// loopback, joins a topic with a real WebSocket client, and checks that the
// scraped counters moved.
func TestScrapeFollowsAJoin(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, err := engine.New(engine.Config{Capacity: 128})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := channel.NewServer(channel.Config{
		Presence:       e,
		PresenceWindow: 5 * time.Millisecond,
		Channels: []channel.Channel{{
			Topic: "room:*",
			Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
				return nil, s.Track(topic, "alice", []byte(`{"status":"online"}`))
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Engine(e.Stats), metrics.Channel(srv.Stats))
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)

	before := scrape(t, hs.URL+"/metrics")
	for name, want := range map[string]float64{
		"presence_engine_entries": 0, "presence_engine_capacity": 128,
		"presence_channel_sockets": 0, "presence_channel_joins_total": 0,
	} {
		if got, ok := before[name]; !ok || got != want {
			t.Errorf("before the join: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:a","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var frame []json.RawMessage
		if err := json.Unmarshal(data, &frame); err != nil || len(frame) != 5 {
			t.Fatalf("frame %s: %v", data, err)
		}
		if string(frame[3]) == `"phx_reply"` && string(frame[1]) == `"1"` {
			if !strings.Contains(string(frame[4]), `"status":"ok"`) {
				t.Fatalf("join reply %s", frame[4])
			}
			break
		}
	}

	after := scrape(t, hs.URL+"/metrics")
	for name, want := range map[string]float64{
		"presence_engine_entries": 1, "presence_channel_sockets": 1,
		"presence_channel_connects_total": 1, "presence_channel_joins_total": 1,
	} {
		if got := after[name]; got != want {
			t.Errorf("after the join: %s = %v, want %v", name, got, want)
		}
	}

	conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := scrape(t, hs.URL+"/metrics")
		if s["presence_engine_entries"] == 0 && s["presence_channel_sockets"] == 0 && s["presence_channel_leaves_total"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the close: entries %v, sockets %v, leaves %v", s["presence_engine_entries"], s["presence_channel_sockets"], s["presence_channel_leaves_total"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChannelCollectorReportsRefusalsByKindAndReason(t *testing.T) {
	c := metrics.Channel(func() channel.Stats {
		return channel.Stats{Refusals: []channel.RefusalCount{
			{Kind: channel.RefusedConnect, Reason: "refused", Count: 3},
			{Kind: channel.RefusedEvent, Reason: "rate_limited", Count: 7},
		}}
	})
	want := `
# HELP presence_channel_refusals_total Refused connections, joins and events, by kind (connect, origin, version, upgrade, join, event) and reason.
# TYPE presence_channel_refusals_total counter
presence_channel_refusals_total{kind="connect",reason="refused"} 3
presence_channel_refusals_total{kind="event",reason="rate_limited"} 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "presence_channel_refusals_total"); err != nil {
		t.Fatal(err)
	}
}
