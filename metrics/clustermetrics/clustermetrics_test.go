package clustermetrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/metrics/clustermetrics"
	"github.com/presencekit/presence/metrics/internal/coverage"
)

func TestStatsCollectorCoversEveryStatsField(t *testing.T) {
	coverage.Check(t, clustermetrics.Stats)
}

type fakeNode struct {
	stats cluster.Stats
	nodes []cluster.NodeInfo
}

func (f *fakeNode) Stats() cluster.Stats      { return f.stats }
func (f *fakeNode) Nodes() []cluster.NodeInfo { return f.nodes }

func TestNodeCollectorReportsPeers(t *testing.T) {
	n := &fakeNode{
		stats: cluster.Stats{DeltasSent: 7, Resyncs: 2, RemotePending: 3},
		nodes: []cluster.NodeInfo{
			{Name: "b", State: cluster.StateUp, Entries: 10},
			{Name: "c", State: cluster.StateSyncing, Entries: 4, Pending: 3, LimitsDiffer: true},
			{Name: "d", State: cluster.StateDown},
			{Name: "e", State: cluster.StateUp, Entries: 1},
		},
	}
	c := clustermetrics.Node(n)
	want := `
# HELP presence_cluster_deltas_sent_total Deltas of local entries published.
# TYPE presence_cluster_deltas_sent_total counter
presence_cluster_deltas_sent_total 7
# HELP presence_cluster_peer_entries Entries of a peer held here.
# TYPE presence_cluster_peer_entries gauge
presence_cluster_peer_entries{node="b"} 10
presence_cluster_peer_entries{node="c"} 4
presence_cluster_peer_entries{node="d"} 0
presence_cluster_peer_entries{node="e"} 1
# HELP presence_cluster_peer_limits_differ 1 if a peer's engine limits differ from this node's, else 0.
# TYPE presence_cluster_peer_limits_differ gauge
presence_cluster_peer_limits_differ{node="b"} 0
presence_cluster_peer_limits_differ{node="c"} 1
presence_cluster_peer_limits_differ{node="d"} 0
presence_cluster_peer_limits_differ{node="e"} 0
# HELP presence_cluster_peer_pending Entries of a peer that the engine refused so far and that are retried.
# TYPE presence_cluster_peer_pending gauge
presence_cluster_peer_pending{node="b"} 0
presence_cluster_peer_pending{node="c"} 3
presence_cluster_peer_pending{node="d"} 0
presence_cluster_peer_pending{node="e"} 0
# HELP presence_cluster_peers Other nodes this node has heard of, by state: syncing, up or down.
# TYPE presence_cluster_peers gauge
presence_cluster_peers{state="down"} 1
presence_cluster_peers{state="syncing"} 1
presence_cluster_peers{state="up"} 2
# HELP presence_cluster_remote_pending Remote entries not stored right now, retried when space frees.
# TYPE presence_cluster_remote_pending gauge
presence_cluster_remote_pending 3
# HELP presence_cluster_resyncs_total Snapshot fetches started.
# TYPE presence_cluster_resyncs_total counter
presence_cluster_resyncs_total 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"presence_cluster_deltas_sent_total", "presence_cluster_peer_entries", "presence_cluster_peer_limits_differ",
		"presence_cluster_peer_pending", "presence_cluster_peers", "presence_cluster_remote_pending",
		"presence_cluster_resyncs_total"); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}

	// With no peers, every state still reads 0, and no peer series remain.
	n.nodes = nil
	if got := testutil.CollectAndCount(c, "presence_cluster_peers"); got != 3 {
		t.Fatalf("%d presence_cluster_peers series with no peers, want 3", got)
	}
	if got := testutil.CollectAndCount(c, "presence_cluster_peer_entries"); got != 0 {
		t.Fatalf("%d presence_cluster_peer_entries series with no peers, want 0", got)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
}
