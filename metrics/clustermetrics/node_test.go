package clustermetrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics/clustermetrics"
)

// TestTwoNodesOverNATS runs two nodes through an in-process NATS server,
// tracks an entry on one, and checks that the other's metrics show the
// delta applied and the peer up.
func TestTwoNodesOverNATS(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // registered first, so it runs last
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(name string, refTag uint64) (*engine.Engine, *cluster.Node) {
		nc, err := nats.Connect("", nats.InProcessServer(ns))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		e, err := engine.New(engine.Config{Capacity: 64, RefTag: refTag})
		if err != nil {
			t.Fatal(err)
		}
		n, err := cluster.Start(ctx, nc, e, cluster.Config{Node: name, Heartbeat: 20 * time.Millisecond, DownAfter: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return e, n
	}
	ea, a := start("a", 1)
	eb, b := start("b", 2)
	ca, cb := clustermetrics.Node(a), clustermetrics.Node(b)
	for _, c := range []prometheus.Collector{ca, cb} {
		if err := prometheus.NewPedanticRegistry().Register(c); err != nil {
			t.Fatal(err)
		}
	}

	// Once each node holds the other up, a change travels as a delta.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(onlyLabel(ca, "presence_cluster_peers", "up")) != 1 || testutil.ToFloat64(onlyLabel(cb, "presence_cluster_peers", "up")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the nodes never saw each other up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Subscribe("room:x") // a socket of b joins: b mirrors room:x
	if err := ea.Track(1, "room:x", "alice", []byte(`{"name":"Alice"}`)); err != nil {
		t.Fatal(err)
	}
	a.Changed("room:x")
	for eb.Count("room:x") != 1 || testutil.ToFloat64(only(cb, "presence_cluster_peer_entries")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("b holds %d entries of room:x, want 1", eb.Count("room:x"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The first entry may reach b in the fetch of its first join; a change
	// after it, in a topic b follows and holds, travels as a delta.
	if err := ea.Track(1, "room:x", "alice", []byte(`{"name":"Alice","away":true}`)); err != nil {
		t.Fatal(err)
	}
	a.Changed("room:x")
	for testutil.ToFloat64(only(cb, "presence_cluster_deltas_applied_total")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("b: no delta applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := testutil.ToFloat64(only(ca, "presence_cluster_deltas_sent_total")); got < 1 {
		t.Errorf("a: deltas sent %v, want at least 1", got)
	}
	if got := testutil.ToFloat64(only(cb, "presence_cluster_heartbeats_received_total")); got < 1 {
		t.Errorf("b: heartbeats received %v, want at least 1", got)
	}
	if got := testutil.ToFloat64(only(cb, "presence_cluster_topics_mirrored")); got != 1 {
		t.Errorf("b: topics mirrored %v, want 1", got)
	}
	if got := testutil.ToFloat64(only(cb, "presence_cluster_remote_entries")); got != 1 {
		t.Errorf("b: remote entries %v, want 1", got)
	}
	if got := testutil.ToFloat64(only(ca, "presence_cluster_remote_entries")); got != 0 {
		t.Errorf("a: remote entries %v, want 0: no socket of a is in room:x", got)
	}
}

// only passes on the metrics of one name.
func only(c prometheus.Collector, name string) prometheus.Collector {
	return onlyLabel(c, name, "")
}

// onlyLabel passes on the metrics of one name and, if value is not empty,
// with a label of that value.
func onlyLabel(c prometheus.Collector, name, value string) prometheus.Collector {
	return prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		all := make(chan prometheus.Metric)
		go func() { c.Collect(all); close(all) }()
		for m := range all {
			if !strings.Contains(m.Desc().String(), `"`+name+`"`) {
				continue
			}
			if value != "" {
				var pb dto.Metric
				m.Write(&pb)
				if !hasLabelValue(&pb, value) {
					continue
				}
			}
			ch <- m
		}
	})
}

func hasLabelValue(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}
