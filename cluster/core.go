package cluster

import (
	"log/slog"

	"github.com/presencekit/presence/engine"
)

// remoteBase is where synthetic SocketIDs start: the engine keeps the IDs
// at and above it in their own class, and channel's sockets never reach it.
const remoteBase = engine.FirstRemoteSocket

// store is the part of *engine.Engine the cluster writes through.
type store interface {
	TrackWithRef(s engine.SocketID, topic, key string, meta []byte, ref uint64) (engine.TrackResult, error)
	Untrack(s engine.SocketID, topic string) bool
	UntrackAll(s engine.SocketID) int
	Snapshot(dst *engine.Snapshot, topic string)
	ChangesSince(dst *engine.Changes, topic string, since engine.Cursor)
	Count(topic string) int
}

var _ store = (*engine.Engine)(nil)

// Tuning that tests may change; the defaults suit NATS's 1 MiB payloads.
const (
	// numBuckets is how many buckets topics are hashed into, each an
	// ordered log with a subject of its own (see interest.go).
	numBuckets = 8192
	// applyPiece bounds the entries of a snapshot, or the buffered ops
	// replayed after it, applied at once under the node's lock: about a
	// millisecond of engine writes.
	applyPiece    = 1024
	maxBatchBytes = 64 << 10  // a delta message is cut after this many bytes
	pageBytes     = 256 << 10 // a snapshot page holds about this many bytes
	// maxBuffered bounds the deltas buffered per node while it syncs,
	// those being replayed included: 80 bytes an op plus its topic, key
	// and meta, so about 12 MiB per syncing node at 100 bytes of them.
	maxBuffered = 1 << 16
	// maxSnaps bounds the snapshots an owner keeps for paging, each
	// with the pages it served (its entries' size on the wire) until
	// 4 sync timeouts after it was taken. A node's request for a new
	// one forgets those taken for it before; a new one also replaces
	// one served whole or abandoned, and while all are being read a
	// request for a new one goes unanswered: its receiver asks again
	// after its sync timeout.
	maxSnaps = 16
)

// pubEntry is a local entry as this node last published it.
type pubEntry struct {
	ref       uint64
	key, meta string
}

// rkey names a remote entry: the owner's socket and the topic.
type rkey struct {
	socket uint64
	topic  string
}

// rentry is a remote entry as its owner published it; topic is the
// string the engine and the maps hold. An update writes it in place.
type rentry struct {
	topic, key string
	meta       []byte
	ref        uint64
}

// rsock is a remote socket's synthetic ID here and its entry count.
type rsock struct {
	id engine.SocketID
	n  int
}

// peer is what this node knows of another node.
type peer struct {
	name         string
	inc          uint64
	state        State
	left         bool  // said goodbye: later messages of inc are stale
	heard        int64 // when a message of inc last arrived
	limitsDiffer bool
	// bucketsDiffer: its Config.Buckets is not this node's (onHeartbeat).
	bucketsDiffer bool
	refTagClash   bool
	// logs holds, per followed bucket, the last sequence applied; a
	// followed bucket missing is at 0.
	logs map[uint32]uint64
	// hb holds each bucket's last sequence as its last heartbeat said,
	// received at hbAt.
	hb   map[uint32]uint64
	hbAt int64

	// While syncing: the buckets being fetched (every one if syncAll),
	// whose batches are buffered meanwhile.
	syncAll bool
	syncSet map[uint32]struct{}
	// next holds the buckets to fetch once the snapshot on its way or
	// being applied is in: starting it over for each would throw it
	// away, and first joins in a row would never let one end. Their
	// batches are buffered meanwhile too.
	next     map[uint32]struct{}
	req      uint64 // the request being answered
	snapID   uint64
	snapSeqs []bseq
	asked    int64
	pages    []op
	fin      *finishing // the snapshot being applied, then the replay, in pieces
	buf      []batch    // batches that arrived while syncing, replayed after
	bufOps   int

	want   map[rkey]*rentry  // the entries the owner published
	socks  map[uint64]*rsock // owner's socket -> synthetic socket here
	failed map[rkey]struct{} // entries of want the engine refused
}

// counters are the core's statistics, guarded by the node's lock.
type counters struct {
	deltasSent, deltasApplied, batchesSent, batchesReceived   uint64
	bytesSent, bytesReceived, heartbeatsSent, heartbeatsRecv  uint64
	resyncs, gaps, snapshotsServed, remoteFull, remoteRejects uint64
	stale, badMessages, slowConsumer, nodesDown, restarts     uint64
	limitMismatches, duplicateNames, fetches, lingerDrops     uint64
}

// core is the cluster's state machine: it has no goroutines and no clock
// of its own; the Node (or a test) feeds it messages and the time, and it
// publishes through emit. Every method must be called under one lock.
type core struct {
	name   string
	inc    uint64
	hb     int64 // heartbeat period, ns
	down   int64 // down-after, ns
	e      store
	log    *slog.Logger
	subj   subjects
	emit   func(subject string, data []byte)
	limits uint64
	refTag uint64

	now    int64
	nextHB int64
	// stallEnd is where the last wait credited to the peers ended.
	stallEnd int64
	// nbuckets is how many buckets topics are hashed into: numBuckets
	// but in tests.
	nbuckets uint32
	// bseq holds each bucket's last sequence published, for the buckets
	// used.
	bseq map[uint32]uint64
	pub  map[string]map[engine.SocketID]pubEntry
	// cursors holds, per topic with local entries published, the engine
	// cursor they stand at. Only the flusher writes it (under the lock),
	// so the flusher may read it without.
	cursors map[string]engine.Cursor
	snap    engine.Snapshot
	ch      engine.Changes
	small   int // topics up to this size are read whole, see smallTopic
	// batchBytes and pageBytes cut delta messages and snapshot pages:
	// maxBatchBytes and pageBytes but in tests.
	batchBytes, pageBytes int
	seen                  map[engine.SocketID]struct{}
	dec                   []op // the ops of the batch being decoded
	ops                   []byte
	opsN                  int
	opsBucket             uint32
	first                 uint64
	opened                bool // a bucket's first batch went out since the last heartbeat
	snaps                 []*ownSnap
	// shared holds the topics whose map in pub a snapshot still reads
	// (see serve.go), while reading counts such snapshots.
	shared  map[string]struct{}
	reading int
	ids     uint64 // snapshot and request ids
	nextID  engine.SocketID

	// What this node follows: see interest.go.
	replicate Replication
	linger    int64
	interest  map[string]*interest
	bcount    map[uint32]int // followed topics per bucket
	// followedAt holds when each followed bucket began to be followed.
	followedAt map[uint32]int64
	// subscribe, if set, subscribes to a bucket's deltas or unsubscribes.
	subscribe func(bucket uint32, on bool)
	rtopics   map[string]int // remote entries held per topic
	fetchGen  uint64         // bumped when a fetch ends or a peer goes down

	// piece bounds the entries a step applies: applyPiece but in tests.
	piece int
	busy  bool // a snapshot is being applied or replayed after: see step

	closed bool // the node said goodbye: nothing comes in any more
	peers  map[string]*peer
	notify map[string]struct{} // topics whose presence changed by remote applies
	events []NodeInfo          // node changes not yet reported
	st     counters
}

func newCore(name string, inc uint64, hb, down int64, e store, log *slog.Logger, subj subjects, limits, refTag uint64) *core {
	return &core{
		name: name, inc: inc, hb: hb, down: down, e: e, log: log, subj: subj,
		limits: limits, refTag: refTag,
		nbuckets:   numBuckets,
		piece:      applyPiece,
		bseq:       map[uint32]uint64{},
		linger:     int64(DefaultLinger),
		interest:   map[string]*interest{},
		bcount:     map[uint32]int{},
		followedAt: map[uint32]int64{},
		rtopics:    map[string]int{},
		pub:        map[string]map[engine.SocketID]pubEntry{},
		cursors:    map[string]engine.Cursor{},
		small:      smallTopic,
		batchBytes: maxBatchBytes,
		pageBytes:  pageBytes,
		seen:       map[engine.SocketID]struct{}{},
		shared:     map[string]struct{}{},
		nextID:     remoteBase,
		peers:      map[string]*peer{},
		notify:     map[string]struct{}{},
	}
}

func (c *core) send(subject string, data []byte) {
	c.st.bytesSent += uint64(len(data))
	c.emit(subject, data)
}

// syncTimeout is how long a sync request may go unanswered before it is
// asked again.
func (c *core) syncTimeout() int64 { return max(c.hb, c.down/4) }

// remoteEntries counts the remote entries held.
func (c *core) remoteEntries() int {
	n := 0
	for _, p := range c.peers {
		n += len(p.want)
	}
	return n
}

func (c *core) pending() int {
	n := 0
	for _, p := range c.peers {
		n += len(p.failed)
	}
	return n
}

// resumed credits the live peers with a wait for the node's lock, from
// asked to now, when it is longer than a quarter heartbeat: while the node
// could not read, as while it applied a large snapshot, its peers'
// messages waited unread, and that time is not their silence. Waits that
// overlap are credited once.
func (c *core) resumed(asked, now int64) {
	from := max(asked, c.stallEnd)
	if now-from <= c.hb/4 {
		return
	}
	for _, p := range c.peers {
		if p.state != StateDown {
			p.heard = min(p.heard+now-from, now)
		}
	}
	c.stallEnd = now
}

// tick advances the clock: heartbeats, down detection, sync retries and
// retries of refused remote entries.
func (c *core) tick(now int64) {
	c.now = now
	if now >= c.nextHB {
		c.endBatch()
		c.heartbeat(kindHeartbeat)
		if c.nextHB += c.hb; c.nextHB <= now {
			c.nextHB = now + c.hb
		}
	}
	for name, p := range c.peers {
		switch {
		case p.state == StateDown:
			if now-p.heard > 10*c.down {
				delete(c.peers, name) // forget it; its messages are long gone
			}
			continue
		case now-p.heard > c.down:
			c.log.Warn("cluster: node is down", "node", p.name)
			c.drop(p)
			c.st.nodesDown++
			c.setState(p, StateDown)
			continue
		case p.state == StateSyncing && p.fin == nil && now-p.asked > c.syncTimeout():
			c.startSync(p)
		}
		for k := range p.failed {
			c.store(p, k, p.want[k])
		}
	}
	c.expireLinger(now)
	for len(c.snaps) > 0 && now-c.snaps[0].taken > 4*c.syncTimeout() {
		c.evictSnap(0)
	}
}

// resyncAll starts over with every live node, after messages were lost
// (a slow consumer).
func (c *core) resyncAll() {
	for _, p := range c.peers {
		if p.state != StateDown {
			c.resyncPeer(p)
		}
	}
}
