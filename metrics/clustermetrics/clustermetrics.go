// Package clustermetrics exports a cluster node's counters and what it
// knows of its peers to Prometheus. It is apart from package metrics so
// that only a program with a cluster links NATS:
//
//	reg.MustRegister(clustermetrics.Node(node)) // node is a *cluster.Node
//
// Every metric is named presence_cluster_*. A collector reads Stats and
// Nodes once per scrape and keeps no state of its own: it is safe for
// concurrent use.
package clustermetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/metrics/internal/statcollector"
)

// Source is what the collector reads; *cluster.Node implements it.
type Source interface {
	Stats() cluster.Stats
	Nodes() []cluster.NodeInfo
}

// Node returns a collector of n's counters and of its peers: how many are
// in each state, and per peer its entries held here.
func Node(n Source) prometheus.Collector {
	return &collector{stats: Stats(n.Stats), nodes: n.Nodes}
}

// Stats returns a collector of the counters that stats returns, usually
// the method value (*cluster.Node).Stats.
func Stats(stats func() cluster.Stats) prometheus.Collector {
	return statcollector.New(stats, statsMetrics)
}

type collector struct {
	stats prometheus.Collector
	nodes func() []cluster.NodeInfo
}

var (
	peersDesc = prometheus.NewDesc("presence_cluster_peers",
		"Other nodes this node has heard of, by state: syncing, up or down.", []string{"state"}, nil)
	peerEntriesDesc = prometheus.NewDesc("presence_cluster_peer_entries",
		"Entries of a peer held here.", []string{"node"}, nil)
	peerPendingDesc = prometheus.NewDesc("presence_cluster_peer_pending",
		"Entries of a peer that the engine refused so far and that are retried.", []string{"node"}, nil)
	peerLimitsDesc = prometheus.NewDesc("presence_cluster_peer_limits_differ",
		"1 if a peer's engine limits differ from this node's, else 0.", []string{"node"}, nil)
)

var states = []cluster.State{cluster.StateSyncing, cluster.StateUp, cluster.StateDown}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.stats.Describe(ch)
	ch <- peersDesc
	ch <- peerEntriesDesc
	ch <- peerPendingDesc
	ch <- peerLimitsDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.stats.Collect(ch)
	nodes := c.nodes()
	for _, s := range states {
		n := 0
		for _, p := range nodes {
			if p.State == s {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, float64(n), s.String())
	}
	for _, p := range nodes {
		differ := 0.0
		if p.LimitsDiffer {
			differ = 1
		}
		ch <- prometheus.MustNewConstMetric(peerEntriesDesc, prometheus.GaugeValue, float64(p.Entries), p.Name)
		ch <- prometheus.MustNewConstMetric(peerPendingDesc, prometheus.GaugeValue, float64(p.Pending), p.Name)
		ch <- prometheus.MustNewConstMetric(peerLimitsDesc, prometheus.GaugeValue, differ, p.Name)
	}
}

type metric = statcollector.Metric[cluster.Stats]

func counter(name, help string, value func(*cluster.Stats) uint64) metric {
	return metric{Name: "presence_cluster_" + name, Help: help, Counter: true,
		Value: func(s *cluster.Stats) float64 { return float64(value(s)) }}
}

var statsMetrics = []metric{
	counter("deltas_sent_total", "Deltas of local entries published.", func(s *cluster.Stats) uint64 { return s.DeltasSent }),
	counter("deltas_applied_total", "Deltas of other nodes applied here.", func(s *cluster.Stats) uint64 { return s.DeltasApplied }),
	counter("batches_sent_total", "Delta batches published.", func(s *cluster.Stats) uint64 { return s.BatchesSent }),
	counter("batches_received_total", "Delta batches received.", func(s *cluster.Stats) uint64 { return s.BatchesReceived }),
	counter("bytes_sent_total", "Bytes of presence messages published, broadcasts excluded.", func(s *cluster.Stats) uint64 { return s.BytesSent }),
	counter("bytes_received_total", "Bytes of presence messages received, broadcasts excluded.", func(s *cluster.Stats) uint64 { return s.BytesReceived }),
	counter("heartbeats_sent_total", "Heartbeats published.", func(s *cluster.Stats) uint64 { return s.HeartbeatsSent }),
	counter("heartbeats_received_total", "Heartbeats received.", func(s *cluster.Stats) uint64 { return s.HeartbeatsReceived }),
	counter("resyncs_total", "Snapshot fetches started.", func(s *cluster.Stats) uint64 { return s.Resyncs }),
	counter("gaps_total", "Deltas found missing or out of order.", func(s *cluster.Stats) uint64 { return s.Gaps }),
	counter("snapshots_served_total", "Snapshots served to other nodes.", func(s *cluster.Stats) uint64 { return s.SnapshotsServed }),
	counter("remote_full_total", "Remote entries the engine refused with ErrFull.", func(s *cluster.Stats) uint64 { return s.RemoteFull }),
	counter("remote_rejected_total", "Remote entries the engine refused otherwise, as when limits differ.", func(s *cluster.Stats) uint64 { return s.RemoteRejected }),
	{Name: "presence_cluster_remote_pending", Help: "Remote entries not stored right now, retried when space frees.",
		Value: func(s *cluster.Stats) float64 { return float64(s.RemotePending) }},
	counter("stale_messages_total", "Messages of old incarnations or old sequences, ignored.", func(s *cluster.Stats) uint64 { return s.Stale }),
	counter("bad_messages_total", "Messages that could not be decoded, ignored.", func(s *cluster.Stats) uint64 { return s.BadMessages }),
	counter("slow_consumer_total", "Times the NATS client dropped messages for a slow consumer.", func(s *cluster.Stats) uint64 { return s.SlowConsumer }),
	counter("nodes_down_total", "Times a peer was found down, by silence or goodbye.", func(s *cluster.Stats) uint64 { return s.NodesDown }),
	counter("restarts_total", "Times a peer came back with a new incarnation.", func(s *cluster.Stats) uint64 { return s.Restarts }),
	counter("limit_mismatches_total", "Times a peer was found with engine limits other than this node's.", func(s *cluster.Stats) uint64 { return s.LimitMismatches }),
	counter("broadcasts_sent_total", "Broadcasts published to other nodes.", func(s *cluster.Stats) uint64 { return s.BroadcastsSent }),
	counter("broadcasts_received_total", "Broadcasts received from other nodes.", func(s *cluster.Stats) uint64 { return s.BroadcastsReceived }),
	counter("broadcast_bytes_sent_total", "Bytes of broadcasts published.", func(s *cluster.Stats) uint64 { return s.BroadcastBytesSent }),
	counter("broadcasts_dropped_total", "Broadcasts the NATS client dropped for a slow consumer.", func(s *cluster.Stats) uint64 { return s.BroadcastsDropped }),
	{Name: "presence_cluster_topics_mirrored", Help: "Topics whose remote entries this node holds now.",
		Value: func(s *cluster.Stats) float64 { return float64(s.TopicsMirrored) }},
	{Name: "presence_cluster_remote_entries", Help: "Remote entries held now.",
		Value: func(s *cluster.Stats) float64 { return float64(s.RemoteEntries) }},
	counter("snapshot_fetches_total", "Snapshot fetches done, on first joins and resyncs.", func(s *cluster.Stats) uint64 { return s.SnapshotFetches }),
	counter("linger_drops_total", "Topics whose remote entries were dropped after their linger.", func(s *cluster.Stats) uint64 { return s.LingerDrops }),
}
