// Package statcollector turns a function that returns a struct of counters
// into a prometheus.Collector, one metric per described field.
//
// A Collector calls its read function once per Collect and holds no other
// state, so it is safe for concurrent use when the read function is.
package statcollector

import "github.com/prometheus/client_golang/prometheus"

// Metric describes one metric read from a snapshot of type S.
type Metric[S any] struct {
	Name    string            // the fully-qualified name
	Help    string            // one sentence
	Counter bool              // a counter when true, a gauge otherwise
	Labels  prometheus.Labels // constant labels, such as class="local"
	Value   func(*S) float64  // reads the metric from a snapshot

	// VarLabels and Each, instead of Value, make a metric with one series
	// per set of label values: Each calls emit once per series, with
	// values for VarLabels in order. The caller keeps the label values
	// bounded.
	VarLabels []string
	Each      func(s *S, emit func(value float64, labelValues ...string))
}

// Collector collects the metrics of one snapshot type.
type Collector[S any] struct {
	read    func() S
	metrics []Metric[S]
	descs   []*prometheus.Desc
}

// New returns a Collector that calls read once per Collect and reports
// each of metrics from the snapshot it returns.
func New[S any](read func() S, metrics []Metric[S]) *Collector[S] {
	c := &Collector[S]{read: read, metrics: metrics, descs: make([]*prometheus.Desc, len(metrics))}
	for i, m := range metrics {
		c.descs[i] = prometheus.NewDesc(m.Name, m.Help, m.VarLabels, m.Labels)
	}
	return c
}

// Describe sends the descriptor of every metric.
func (c *Collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads one snapshot and sends every metric's value from it.
func (c *Collector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	for i, m := range c.metrics {
		typ := prometheus.GaugeValue
		if m.Counter {
			typ = prometheus.CounterValue
		}
		emit := func(v float64, labelValues ...string) {
			metric, err := prometheus.NewConstMetric(c.descs[i], typ, v, labelValues...)
			if err != nil {
				metric = prometheus.NewInvalidMetric(c.descs[i], err)
			}
			ch <- metric
		}
		if m.Each != nil {
			m.Each(&s, emit)
		} else {
			emit(m.Value(&s))
		}
	}
}
