// Package cluster spreads presence and broadcasts over several servers
// through core NATS, so that a node's engine lists the whole cluster's
// presence in the topics its sockets are in, and a broadcast reaches
// subscribers on every node.
//
// # Model
//
// A node is a name and an incarnation (a new one at every Start). It is
// the only writer of its own entries, those of its local sockets, and
// publishes them as ordered logs, one per bucket of topics (a topic's
// bucket is a hash of its name, one of Config.Buckets): batches of deltas
// with the bucket's sequence numbers, flushed every Config.FlushInterval, on the
// bucket's subject, and a heartbeat every Config.Heartbeat carrying each
// bucket's last sequence and a hash of its engine's limits; a node that
// hears a new node or incarnation heartbeats a tenth of a Heartbeat later,
// once for all the newcomers heard meanwhile, so that they hear it soon
// and nodes starting together do not flood each other. Other nodes
// apply the deltas in order into their own engine, under synthetic
// SocketIDs at and above 1<<63, with the same ref (phx_ref) as on the
// owner. A gap, a delta out of order or a message lost to a slow consumer
// makes the receiver ask the owner for a snapshot of the buckets
// concerned, by request and reply in pages, which it applies as a diff
// against what it holds (unchanged entries do not flap) before it replays
// the deltas that arrived meanwhile, newer than the snapshot. A new incarnation drops the old
// one's entries first. A node silent for Config.DownAfter is down: every
// other node removes its entries, and clients see them leave through
// presence_diff. A node that closes says goodbye and its entries go at
// once. Across a netsplit each side drops the other's entries after
// DownAfter, and both resync when it heals.
//
// # Interest and All
//
// Under Config.Replicate = Interest, the default, a node mirrors a
// topic's remote entries only while one of its sockets is in the topic,
// which Subscribe and Unsubscribe declare (channel.Server calls them on
// joins and leaves; a program that writes the engine directly calls them
// too). The first Subscribe of a topic subscribes to its bucket's
// subject and fetches the topic's entries from the nodes whose heartbeats
// show they published in that bucket (a node heartbeats at once after a
// flush that published in a bucket for the first time), and returns once
// they are in, so
// that the first joiner's presence_state holds the whole cluster's
// roster. After the last Unsubscribe the entries stay for Config.Linger,
// so that a reconnect storm does not fetch them again, then go. A node's
// own entries are always held and published. A batch reaches the nodes
// that follow a topic of its bucket: those in the topic, and the few in
// another topic that hashes to the same bucket.
//
// Config.Buckets trades those stray deliveries against heartbeat size:
// with T topics a batch also reaches the followers of about T/Buckets
// other topics, while each heartbeat, sent to every node every
// Heartbeat, carries about 5 bytes per bucket its node ever published
// in. The default, 8192, keeps heartbeats within 40 KiB, a size reached
// only by a node that published in every bucket (145 bytes a heartbeat
// in a simulation of 100 nodes, each in about 40 of 2,000 topics); with
// 1024 buckets the same simulation delivered 7.6 messages per change
// instead of 4.6, for 3.2 interested nodes (BENCHMARKS.md). Every node must use the same count: one with
// another is reported and not mirrored.
//
// Under All every node mirrors every entry, as one machine holds them:
// it fits a cluster that exists for availability rather than capacity, a
// few nodes whose sockets are in most topics anyway, or a program that
// reads topics no local socket is in. Interest fits everything else: a
// node holds its own entries and those of the topics its sockets are in,
// so that adding nodes adds capacity.
//
// Reads stay local: List, Count, Snapshot and the diffs of the engine
// cover the topics the node mirrors and never touch the network.
//
// The engine's Capacity covers the node's own entries and the remote
// entries of the topics it mirrors (under All, every node's): give it a
// LocalCapacity below its Capacity, so that local sockets cannot take the
// room of other nodes' entries. A remote entry the engine still refuses
// is counted (Stats.RemoteFull, NodeInfo.Pending), logged and stored as
// soon as there is room. Nodes whose engine limits differ are reported
// (Stats.LimitMismatches, NodeInfo.LimitsDiffer).
//
// # Broadcasts
//
// A node subscribes to a topic's broadcast subject only while one of its
// sockets is in the topic. Subscribe returns once the node's NATS server
// has the subscription, so a broadcast published after a join was
// answered, by a node connected to the same NATS server, reaches the
// socket. Through other servers of a NATS cluster it does so once the
// servers' routes have carried the interest to the others, about one
// network round trip later. Delivery is at most once, as in core NATS.
//
// # Concurrency
//
// All methods of Node may be called from any goroutine. A Node runs a
// goroutine that publishes local changes and keeps time, one that delivers
// broadcasts, one that applies snapshots, and the NATS client's goroutines
// for its subscriptions. Its
// state sits behind one lock, under which remote deltas are written into
// the engine: a burst of them costs engine writes, and readers of the
// engine never wait for the lock. A snapshot is written a piece of 1024
// entries at a time, the lock free in between (and so is the search
// for the entries held that it drops), so that a node applying a large one
// keeps heartbeating, applying the other nodes' deltas and
// fetching the entries of a first join from the others; the deltas
// buffered meanwhile (at most 65,536 per node) are then replayed 1024 at
// a time too. The buckets fetched count as syncing until the replay is
// over: their deltas that arrive during it wait behind it, in order, and
// a gap it finds fetches those buckets again, and only those. An owner
// serves a snapshot without copying it under the lock: taking it notes
// each topic's published map, which the owner copies before it next
// changes it, and each page request encodes about a page (256 KiB) of
// entries, kept until the snapshot expires so that a page asked twice is
// the same, so that the lock is held per page, not for the whole
// snapshot. It keeps at most 16 snapshots, one per node asking: a node
// asking while 16 others are being read gets no answer and asks again
// after its sync timeout, so that none of them has to start over. Buckets
// asked for while a node's snapshot is on its way or being applied are
// fetched from it right after, so that first joins in a row do not start
// it over.
// Subscribe waits, at most a sync timeout (the larger of Heartbeat and
// DownAfter/4), for the fetch of a topic's entries; Unsubscribe does not
// wait.
package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Config configures a Node. Node is required.
type Config struct {
	// Node names this node in the cluster: 1 to 64 letters, digits, '-'
	// or '_', unique among the nodes.
	Node string
	// Prefix starts every subject the cluster uses, so that several
	// applications can share one NATS; "" means "presence". NATS tokens
	// separated by dots, of letters, digits, '-' and '_'.
	Prefix string
	// Heartbeat is how often the node says it is alive (H); 0 means 1 s.
	Heartbeat time.Duration
	// DownAfter is how long a silent node stays up (D); 0 means 5 s. It
	// must be at least twice Heartbeat. Time this node itself spends
	// unable to read its messages, as while it applies a large snapshot,
	// does not count as the others' silence.
	DownAfter time.Duration
	// FlushInterval is how long local changes are gathered before they
	// are published; 0 means 2 ms.
	FlushInterval time.Duration
	// PendingMsgs and PendingBytes bound what the NATS client buffers for
	// the node's subscriptions; beyond them messages are dropped and the
	// node resyncs. 0 keeps the NATS client's defaults.
	PendingMsgs, PendingBytes int
	// Logger receives the cluster's warnings; nil means slog.Default().
	Logger *slog.Logger
	// OnNodeChange, if set, is called when another node's State changes,
	// on a goroutine of the Node and never under its lock.
	OnNodeChange func(NodeInfo)
	// Replicate chooses which remote entries the node mirrors: Interest
	// (the default) or All.
	Replicate Replication
	// Linger: how long a topic's remote entries stay after the last local
	// socket left it; 0 means 30 s. A socket that joins again within it
	// finds the topic mirrored and fetches nothing. What lingers costs
	// what the topic's entries cost the engine.
	Linger time.Duration
	// Buckets is how many buckets topics are hashed into, each an ordered
	// log on a NATS subject of its own (see Interest and All in the
	// package doc); 0 means 8192. A power of two from 1 to 65,536, the
	// same on every node: a node with another count is reported
	// (NodeInfo.LimitsDiffer, Stats.LimitMismatches) and nothing of it is
	// mirrored. More buckets mean fewer stray deliveries under Interest: a
	// batch reaches, besides its topic's followers, those of about
	// topics/Buckets other topics. The price is the heartbeat: about 5
	// bytes per bucket the node ever published in, sent to every node
	// every Heartbeat (about 40 KiB at 8192, 320 KiB at 65,536 once each
	// bucket was used), and up to about 40 bytes per such bucket and peer
	// held here (320 KiB a peer at 8192, once it published in every one).
	Buckets int
}

// Replication chooses which remote entries a node mirrors.
type Replication uint8

// Replications.
const (
	Interest Replication = iota // the zero value and default: mirror a topic's remote entries only while a local socket is in it
	All                         // every node mirrors every entry
)

func (r Replication) String() string {
	switch r {
	case Interest:
		return "interest"
	case All:
		return "all"
	}
	return "unknown"
}

// Defaults of Config.
const (
	DefaultPrefix        = "presence"
	DefaultHeartbeat     = time.Second
	DefaultDownAfter     = 5 * time.Second
	DefaultFlushInterval = 2 * time.Millisecond
	DefaultLinger        = 30 * time.Second
	DefaultBuckets       = numBuckets
)

// ErrInvalidConfig is returned by Start for a bad Config.
var ErrInvalidConfig = errors.New("cluster: invalid config")

var (
	nodeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func (c *Config) fill() error {
	bad := func(what string) error { return errors.New(ErrInvalidConfig.Error() + ": " + what) }
	switch {
	case !nodeName.MatchString(c.Node):
		return wrapConfig(bad("Node must be 1 to 64 letters, digits, '-' or '_'"))
	case c.Prefix != "" && (!prefixRe.MatchString(c.Prefix) || len(c.Prefix) > 128):
		return wrapConfig(bad("Prefix must be NATS tokens of letters, digits, '-' or '_' separated by dots"))
	case c.Heartbeat < 0 || c.DownAfter < 0 || c.FlushInterval < 0 || c.Linger < 0:
		return wrapConfig(bad("durations must not be negative"))
	case c.PendingMsgs < 0 || c.PendingBytes < 0:
		return wrapConfig(bad("pending limits must not be negative"))
	case c.Replicate > All:
		return wrapConfig(bad("Replicate must be Interest or All"))
	case c.Buckets < 0 || c.Buckets > maxBuckets || c.Buckets&(c.Buckets-1) != 0:
		return wrapConfig(bad("Buckets must be a power of two from 1 to 65536"))
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.DownAfter == 0 {
		c.DownAfter = max(DefaultDownAfter, 2*c.Heartbeat)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.DownAfter < 2*c.Heartbeat {
		return wrapConfig(bad("DownAfter must be at least twice Heartbeat"))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Is(target error) bool { return target == ErrInvalidConfig }

func wrapConfig(err error) error { return configError{err} }

// State is what a node knows of another node.
type State uint8

// States.
const (
	StateSyncing State = iota + 1 // heard, and its entries are being fetched
	StateUp                       // heard within DownAfter, entries current
	StateDown                     // silent for DownAfter, or gone: its entries are removed
)

func (s State) String() string {
	switch s {
	case StateSyncing:
		return "syncing"
	case StateUp:
		return "up"
	case StateDown:
		return "down"
	}
	return "unknown"
}

// MarshalText writes the State as String does, for JSON and logs.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// NodeInfo describes another node as this node sees it.
type NodeInfo struct {
	Name         string
	Incarnation  uint64
	State        State
	Entries      int  // its entries held here
	Pending      int  // of those, entries the engine refused so far (retried)
	LimitsDiffer bool // its engine's limits differ from this node's
}

// Stats are a Node's counters since Start.
type Stats struct {
	DeltasSent, DeltasApplied             uint64 // entries published, and applied from others
	BatchesSent, BatchesReceived          uint64
	BytesSent, BytesReceived              uint64 // presence messages, broadcasts excluded
	HeartbeatsSent, HeartbeatsReceived    uint64
	Resyncs                               uint64 // snapshot fetches started
	Gaps                                  uint64 // deltas missing or out of order
	SnapshotsServed                       uint64
	RemoteFull                            uint64 // remote applies refused with engine.ErrFull
	RemoteRejected                        uint64 // remote applies refused otherwise (limits differ)
	RemotePending                         int    // remote entries not stored right now, retried
	Stale                                 uint64 // messages of old incarnations or old sequences
	BadMessages                           uint64
	SlowConsumer                          uint64 // times messages were dropped by the NATS client
	NodesDown, Restarts                   uint64
	LimitMismatches                       uint64
	BroadcastsSent, BroadcastsReceived    uint64
	BroadcastBytesSent, BroadcastsDropped uint64
	TopicsMirrored                        int    // topics whose remote entries this node holds now
	RemoteEntries                         int    // remote entries held now
	SnapshotFetches                       uint64 // topic fetches done on a first join (and resyncs)
	LingerDrops                           uint64 // topics dropped after their linger
}

// subjects names the NATS subjects of one prefix.
type subjects struct{ prefix string }

func (s subjects) stream(node string) string { return s.prefix + ".n." + node }
func (s subjects) deltas(bucket uint32) string {
	return s.prefix + ".d." + strconv.FormatUint(uint64(bucket), 10)
}
func (s subjects) allDeltas() string          { return s.prefix + ".d.*" }
func (s subjects) streams() string            { return s.prefix + ".n.*" }
func (s subjects) syncReq(node string) string { return s.prefix + ".s." + node }
func (s subjects) reply(node string) string   { return s.prefix + ".r." + node }

// maxTopicToken bounds the bytes of a topic that a broadcast subject
// carries, as base64. A longer topic, and the empty one (an empty token
// makes no subject), travel on a subject named by the topic's hash: a
// subject beyond the NATS server's control line (4 KiB by default) makes
// it close the connection. A broadcast carries its topic, so that a node
// subscribed to a hash that two topics share delivers each to its own.
const maxTopicToken = 192

// broadcast encodes the topic, which may hold any character, as one token.
func (s subjects) broadcast(topic string) string {
	if len(topic) == 0 || len(topic) > maxTopicToken {
		return s.prefix + ".bh." + strconv.FormatUint(xxhash.Sum64String(topic), 16)
	}
	var b strings.Builder
	b.Grow(len(s.prefix) + 3 + len(topic)*4/3 + 4)
	b.WriteString(s.prefix)
	b.WriteString(".b.")
	b.WriteString(topicToken(topic))
	return b.String()
}

// limitsHash hashes the engine limits that nodes must agree on.
func limitsHash(vals ...int) uint64 {
	b := make([]byte, 0, 8*len(vals))
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return xxhash.Sum64(b)
}

// topicToken encodes a topic as one NATS token.
func topicToken(topic string) string { return base64.RawURLEncoding.EncodeToString([]byte(topic)) }

// RefTag derives an engine.Config.RefTag from a node name, so that the
// refs (phx_ref) that different nodes' engines generate do not collide:
//
//	engine.New(engine.Config{RefTag: cluster.RefTag("a")})
//
// Two names may map to the same tag; a node whose peer uses its tag logs a
// warning. Set distinct tags by hand where that matters.
func RefTag(node string) uint64 { return xxhash.Sum64String(node)&0xffff | 1 }
