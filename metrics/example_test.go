package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics"
)

// Register the engine's collector in a registry of your own and serve it
// at /metrics. A channel server's goes beside it:
// reg.MustRegister(metrics.Channel(srv.Stats)).
func ExampleEngine() {
	presence, _ := engine.New(engine.Config{Capacity: 1024})
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Engine(presence.Stats))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	presence.Track(1, "chat:lobby", "user_42", []byte(`{"name":"Alice"}`))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := bufio.NewScanner(rec.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "presence_engine_entries") || strings.HasPrefix(line, "presence_engine_capacity") {
			fmt.Println(line)
		}
	}
	// Output:
	// presence_engine_capacity 1024
	// presence_engine_entries 1
}
