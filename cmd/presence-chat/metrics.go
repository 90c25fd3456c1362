package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/metrics"
)

// metricsHandler serves, in Prometheus's text format, the counters of srv
// and of its engine, those of the Go runtime and the process, and those of
// more (a cluster's, for instance), from a registry of its own.
func metricsHandler(srv *channel.Server, more ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.Engine(srv.Presence().Stats),
		metrics.Channel(srv.Stats),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(more...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
