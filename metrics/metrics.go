// Package metrics exports the counters of an engine and of a channel server
// to Prometheus, as collectors that you register in a registry of your own:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.Engine(presence.Stats), metrics.Channel(srv.Stats))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Nothing is registered globally. Every metric is named presence_engine_* or
// presence_channel_*; to put several engines or servers in one registry,
// register each through prometheus.WrapRegistererWith with a label of its own. The cluster's counters are in the
// subpackage clustermetrics, so that a program without a cluster does not
// link NATS.
//
// A collector calls its Stats function once per scrape and keeps no state of
// its own: it is safe for concurrent use, and a scrape costs one Stats call.
// Neither engine, shard nor jsonwriter imports this package or Prometheus.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics/internal/statcollector"
)

// Engine returns a collector of the engine counters that stats returns,
// usually the method value (*engine.Engine).Stats.
func Engine(stats func() engine.Stats) prometheus.Collector {
	return statcollector.New(stats, engineMetrics)
}

// Channel returns a collector of the channel server counters that stats
// returns, usually the method value (*channel.Server).Stats.
func Channel(stats func() channel.Stats) prometheus.Collector {
	return statcollector.New(stats, channelMetrics)
}

type engineMetric = statcollector.Metric[engine.Stats]

var (
	localClass  = prometheus.Labels{"class": "local"}
	remoteClass = prometheus.Labels{"class": "remote"}
)

var engineMetrics = []engineMetric{
	{Name: "presence_engine_entries", Help: "Entries present now.",
		Value: func(s *engine.Stats) float64 { return float64(s.Len) }},
	{Name: "presence_engine_class_entries", Help: "Entries present now, by the class of their socket: local, or remote (a cluster peer's).", Labels: localClass,
		Value: func(s *engine.Stats) float64 { return float64(s.Local) }},
	{Name: "presence_engine_class_entries", Help: "Entries present now, by the class of their socket: local, or remote (a cluster peer's).", Labels: remoteClass,
		Value: func(s *engine.Stats) float64 { return float64(s.Remote) }},
	{Name: "presence_engine_capacity", Help: "Entries the engine can hold.",
		Value: func(s *engine.Stats) float64 { return float64(s.Cap) }},
	{Name: "presence_engine_local_capacity", Help: "Entries local sockets may hold; the rest of the capacity is kept for remote ones.",
		Value: func(s *engine.Stats) float64 {
			if s.LocalCapacity == 0 { // 0 means all of Capacity
				return float64(s.Cap)
			}
			return float64(s.LocalCapacity)
		}},
	{Name: "presence_engine_full_total", Help: "Tracks refused with ErrFull, by the class of their socket.", Counter: true, Labels: localClass,
		Value: func(s *engine.Stats) float64 { return float64(s.FullLocal) }},
	{Name: "presence_engine_full_total", Help: "Tracks refused with ErrFull, by the class of their socket.", Counter: true, Labels: remoteClass,
		Value: func(s *engine.Stats) float64 { return float64(s.FullRemote) }},
	{Name: "presence_engine_read_retries_total", Help: "Optimistic reads retried because a writer moved the topic.", Counter: true,
		Value: func(s *engine.Stats) float64 { return float64(s.ReadRetries) }},
	{Name: "presence_engine_read_fallbacks_total", Help: "Reads that stopped retrying and took the shard lock.", Counter: true,
		Value: func(s *engine.Stats) float64 { return float64(s.ReadFallbacks) }},
	{Name: "presence_engine_render_fallbacks_total", Help: "Times a topic was left without its rendered copy because the blocks ran out.", Counter: true,
		Value: func(s *engine.Stats) float64 { return float64(s.RenderFallbacks) }},
	{Name: "presence_engine_unrendered_topics", Help: "Topics read one entry at a time now, because the blocks ran out when they needed one.",
		Value: func(s *engine.Stats) float64 { return float64(s.UnrenderedTopics) }},
}

type channelMetric = statcollector.Metric[channel.Stats]

var channelMetrics = []channelMetric{
	{Name: "presence_channel_sockets", Help: "WebSocket connections open now.",
		Value: func(s *channel.Stats) float64 { return float64(s.Sockets) }},
	{Name: "presence_channel_connects_total", Help: "WebSocket connections accepted.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Connects) }},
	{Name: "presence_channel_connects_rejected_total", Help: "Connections refused by Connect, the origin check or the serializer version.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Rejected) }},
	{Name: "presence_channel_joins_total", Help: "Successful channel joins.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Joins) }},
	{Name: "presence_channel_joins_rejected_total", Help: "Channel joins refused: no channel for the topic, too many topics, or an error from Join.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.JoinsRejected) }},
	{Name: "presence_channel_leaves_total", Help: "Channel leaves, by phx_leave, a crashed channel or close.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Leaves) }},
	{Name: "presence_channel_pushes_total", Help: "Frames queued to sockets: replies, pushes, broadcasts and presence.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Pushes) }},
	{Name: "presence_channel_pushed_bytes_total", Help: "Bytes of the frames queued to sockets.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.PushedBytes) }},
	{Name: "presence_channel_slow_consumer_closes_total", Help: "Sockets disconnected because their send queue was full.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Drops) }},
	{Name: "presence_channel_queued_bytes", Help: "Bytes queued to sockets and not yet written.",
		Value: func(s *channel.Stats) float64 { return float64(s.QueuedBytes) }},
	{Name: "presence_channel_presence_diffs_total", Help: "presence_diff broadcasts, one per topic and window.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.PresenceDiffs) }},
	{Name: "presence_channel_presence_states_total", Help: "presence_state frames queued.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.PresenceStates) }},
	{Name: "presence_channel_presence_counts_total", Help: "presence_count frames queued, to count-mode sockets.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.PresenceCounts) }},
	{Name: "presence_channel_presence_lists_total", Help: "presence_list pages served.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.PresenceLists) }},
	{Name: "presence_channel_error_replies_total", Help: "Error replies sent.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.ErrorReplies) }},
	{Name: "presence_channel_bad_frames_total", Help: "Inbound frames that were not Phoenix messages.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.BadFrames) }},
	{Name: "presence_channel_refusals_total", Help: "Refused connections, joins and events, by kind (connect, origin, version, upgrade, join, event) and reason.", Counter: true,
		VarLabels: []string{"kind", "reason"},
		Each: func(s *channel.Stats, emit func(float64, ...string)) {
			for _, r := range s.Refusals {
				emit(float64(r.Count), r.Kind, r.Reason)
			}
		}},
	{Name: "presence_channel_held_sessions", Help: "Sessions lost abruptly whose presence is held for the reconnect grace now.",
		Value: func(s *channel.Stats) float64 { return float64(s.HeldSessions) }},
	{Name: "presence_channel_held_entries", Help: "Entries that held sessions keep in the engine now, at most: the topics they had joined.",
		Value: func(s *channel.Stats) float64 { return float64(s.HeldEntries) }},
	{Name: "presence_channel_session_resumes_total", Help: "Held sessions a new connection took over within the reconnect grace.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.Resumes) }},
	{Name: "presence_channel_held_sessions_expired_total", Help: "Held sessions that ended with no resume: the grace passed, or the server shut down.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.HeldExpired) }},
	{Name: "presence_channel_held_sessions_refused_total", Help: "Abrupt losses not held because the server held MaxHeldSessions already.", Counter: true,
		Value: func(s *channel.Stats) float64 { return float64(s.HeldRefused) }},
}
