package statcollector

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

type snapshot struct{ A, B int }

func TestCollectReadsOneSnapshotPerScrape(t *testing.T) {
	reads := 0
	c := New(func() snapshot { reads++; return snapshot{A: reads, B: 10 * reads} }, []Metric[snapshot]{
		{Name: "t_a_total", Help: "A.", Counter: true, Value: func(s *snapshot) float64 { return float64(s.A) }},
		{Name: "t_b", Help: "B.", Labels: prometheus.Labels{"x": "y"}, Value: func(s *snapshot) float64 { return float64(s.B) }},
	})
	want := `
# HELP t_a_total A.
# TYPE t_a_total counter
t_a_total 1
# HELP t_b B.
# TYPE t_b gauge
t_b{x="y"} 10
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Fatalf("%d reads for one scrape, want 1", reads)
	}
}

func TestAnInvalidNameIsAnErrorNotAPanic(t *testing.T) {
	c := New(func() snapshot { return snapshot{} }, []Metric[snapshot]{
		{Name: "", Help: "No name.", Value: func(s *snapshot) float64 { return 0 }},
	})
	if err := prometheus.NewRegistry().Register(c); err == nil {
		t.Fatal("a collector with an empty metric name registered")
	}
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	if err := (<-ch).Write(&dto.Metric{}); err == nil {
		t.Fatal("writing a metric with an empty name succeeded")
	}
}

func TestEachReportsOneSeriesPerLabelValues(t *testing.T) {
	type counts struct{ By map[string]int }
	c := New(func() counts { return counts{By: map[string]int{"a": 1, "b": 2}} }, []Metric[counts]{
		{Name: "t_by_total", Help: "By key.", Counter: true, VarLabels: []string{"key"},
			Each: func(s *counts, emit func(float64, ...string)) {
				for k, v := range s.By {
					emit(float64(v), k)
				}
			}},
	})
	want := `
# HELP t_by_total By key.
# TYPE t_by_total counter
t_by_total{key="a"} 1
t_by_total{key="b"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
