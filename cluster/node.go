package cluster

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// Node is this server's member of a cluster. Create it with Start; hand it
// to channel.Config.Cluster, or, writing local presence into the engine
// directly, call Subscribe and Unsubscribe as sockets join and leave
// topics and Changed after each write.
type Node struct {
	cfg   Config
	nc    *nats.Conn
	e     *engine.Engine
	log   *slog.Logger
	subj  subjects
	epoch time.Time

	mu    sync.Mutex
	c     *core
	subs  []*msub          // streams, sync requests, replies (and deltas under All)
	dsubs map[uint32]*msub // the deltas of the buckets followed
	fetch chan struct{}    // closed when a fetch ends, then replaced
	gen   uint64           // the core's fetchGen that fetch stands for
	// heardBy is a Heartbeat after the first heartbeat: every live node
	// has been heard by then.
	heardBy int64

	ch   engine.Changes // the flusher's, outside mu
	snap engine.Snapshot

	dirtyMu sync.Mutex
	dirty   map[string]struct{}
	kick    chan struct{}
	// applyKick wakes the goroutine that applies snapshots in pieces.
	applyKick chan struct{}

	hooks atomic.Pointer[channel.ClusterHooks]

	bmu   sync.Mutex
	bsubs map[string]*bsub
	bch   chan *nats.Msg

	bcSent, bcBytes, bcRecv atomic.Uint64

	quit      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// msub is a subscription to presence messages and the messages it had
// dropped when last looked at.
type msub struct {
	sub     *nats.Subscription
	dropped int
}

type bsub struct {
	sub   *nats.Subscription
	n     int
	ready chan struct{} // closed once the server confirmed sub
}

var _ channel.Cluster = (*Node)(nil)

// Start joins the cluster on conn with the local engine presence: it
// subscribes first, announces itself, and then fetches from every node it
// hears the entries it mirrors (under All, all of them; under Interest,
// those of the topics subscribed). The node runs until Close, or until ctx is done,
// which closes it as Close does; ctx also bounds the start (10 s when it
// has no deadline). presence should have its own Config.RefTag (see
// RefTag) and, to keep room for other nodes' entries, a LocalCapacity
// below its Capacity. Local changes are published from the engine's change
// history (Config.History), read whole when it does not reach back to the
// last flush: a History of a few thousand keeps that rare under load.
func Start(ctx context.Context, conn *nats.Conn, presence *engine.Engine, cfg Config) (*Node, error) {
	if conn == nil || presence == nil {
		return nil, wrapConfig(errorString("cluster: Start needs a NATS connection and an engine"))
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ec := presence.Config()
	n := &Node{
		cfg: cfg, nc: conn, e: presence, log: cfg.Logger, subj: subjects{cfg.Prefix},
		epoch:     time.Now(),
		dirty:     map[string]struct{}{},
		kick:      make(chan struct{}, 1),
		applyKick: make(chan struct{}, 1),
		bsubs:     map[string]*bsub{},
		dsubs:     map[uint32]*msub{},
		fetch:     make(chan struct{}),
		bch:       make(chan *nats.Msg, 4096),
		quit:      make(chan struct{}),
	}
	inc := uint64(time.Now().UnixNano())
	n.c = newCore(cfg.Node, inc, int64(cfg.Heartbeat), int64(cfg.DownAfter), presence, n.log, n.subj,
		limitsHash(ec.Capacity, ec.LocalCapacity, ec.MaxPerSocket, ec.MaxTopicLen, ec.MaxKeyLen, ec.MaxMetaLen), ec.RefTag)
	n.c.emit = n.publish
	n.c.replicate, n.c.linger, n.c.nbuckets = cfg.Replicate, int64(cfg.Linger), uint32(cfg.Buckets)
	n.c.subscribe = n.subscribeBucket
	subjects := []string{n.subj.streams(), n.subj.syncReq(cfg.Node), n.subj.reply(cfg.Node)}
	if cfg.Replicate == All {
		subjects = append(subjects, n.subj.allDeltas())
	}
	for _, subject := range subjects {
		sub, err := n.subscribe(subject)
		if err != nil {
			n.unsubscribeAll()
			return nil, err
		}
		n.subs = append(n.subs, &msub{sub: sub})
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := conn.FlushWithContext(fctx); err != nil {
		n.unsubscribeAll()
		return nil, err
	}
	n.mu.Lock()
	n.c.tick(n.now()) // the first heartbeat: the others sync this node and answer
	n.heardBy = n.now() + int64(cfg.Heartbeat)
	n.mu.Unlock()
	n.wg.Add(3)
	go n.run()
	go n.deliver()
	go n.applier()
	go func() {
		select {
		case <-ctx.Done():
			n.Close()
		case <-n.quit:
		}
	}()
	return n, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func (n *Node) now() int64 { return int64(time.Since(n.epoch)) }

// subscribe subscribes to presence messages on subject.
func (n *Node) subscribe(subject string) (*nats.Subscription, error) {
	sub, err := n.nc.Subscribe(subject, n.onMsg)
	if err == nil && (n.cfg.PendingMsgs > 0 || n.cfg.PendingBytes > 0) {
		err = sub.SetPendingLimits(orDefault(n.cfg.PendingMsgs, nats.DefaultSubPendingMsgsLimit), orDefault(n.cfg.PendingBytes, nats.DefaultSubPendingBytesLimit))
		if err != nil {
			sub.Unsubscribe()
		}
	}
	return sub, err
}

// subscribeBucket subscribes to a bucket's deltas, or unsubscribes; the
// core calls it under n.mu. A subscription that fails is logged, and the
// topics of the bucket fill in at the next resync.
func (n *Node) subscribeBucket(k uint32, on bool) {
	if !on {
		if s := n.dsubs[k]; s != nil {
			s.sub.Unsubscribe()
			delete(n.dsubs, k)
		}
		return
	}
	if n.c.closed {
		return // Close unsubscribed everything: a late join subscribes nothing
	}
	sub, err := n.subscribe(n.subj.deltas(k))
	if err != nil {
		n.log.Warn("cluster: delta subscription failed", "bucket", k, "err", err)
		return
	}
	n.dsubs[k] = &msub{sub: sub}
}

// lock takes n.mu for the goroutines that read messages and check for
// silent nodes, and tells the core how long it waited.
func (n *Node) lock() {
	asked := n.now()
	n.mu.Lock()
	n.c.resumed(asked, n.now())
}

// publish sends a message; it runs under n.mu, which keeps a node's
// messages in sequence order.
func (n *Node) publish(subject string, data []byte) {
	if err := n.nc.Publish(subject, data); err != nil {
		n.log.Warn("cluster: publish failed", "err", err)
	}
}

func (n *Node) onMsg(m *nats.Msg) {
	n.lock()
	n.c.now = n.now()
	n.c.onMessage(m.Data)
	busy := n.c.busy
	notify, events := n.drain()
	n.mu.Unlock()
	n.report(notify, events)
	if busy {
		select {
		case n.applyKick <- struct{}{}:
		default:
		}
	}
}

// applier applies snapshots, and the deltas buffered while they came, a
// piece at a time, the lock free in between: the node keeps heartbeating
// and applying other nodes' deltas, and the subscription that carries
// snapshot pages keeps reading them, so that the fetch of a first join
// does not queue behind a large snapshot. Each piece's changes are
// reported, and each fetch's end, as it comes.
func (n *Node) applier() {
	defer n.wg.Done()
	for {
		select {
		case <-n.quit:
			return
		case <-n.applyKick:
		}
		for more := true; more; {
			n.lock()
			n.c.now = n.now()
			more = n.c.step()
			notify, events := n.drain()
			n.mu.Unlock()
			n.report(notify, events)
			select {
			case <-n.quit:
				return
			default:
			}
			runtime.Gosched()
		}
	}
}

// drain takes the topics to notify and the node events; the caller holds
// n.mu.
func (n *Node) drain() ([]string, []NodeInfo) {
	var topics []string
	if len(n.c.notify) > 0 {
		topics = make([]string, 0, len(n.c.notify))
		for t := range n.c.notify {
			topics = append(topics, t)
		}
		clear(n.c.notify)
	}
	events := n.c.events
	n.c.events = nil
	if n.gen != n.c.fetchGen {
		n.gen = n.c.fetchGen
		close(n.fetch)
		n.fetch = make(chan struct{})
	}
	return topics, events
}

func (n *Node) report(topics []string, events []NodeInfo) {
	if h := n.hooks.Load(); h != nil && h.PresenceChanged != nil {
		for _, t := range topics {
			h.PresenceChanged(t)
		}
	}
	if n.cfg.OnNodeChange != nil {
		for _, ev := range events {
			n.cfg.OnNodeChange(ev)
		}
	}
}

// run flushes local changes and drives the clock.
func (n *Node) run() {
	defer n.wg.Done()
	period := max(min(n.cfg.Heartbeat/4, 250*time.Millisecond), time.Millisecond)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	var topics []string
	for {
		select {
		case <-n.quit:
			return
		case <-n.kick:
			wait.Reset(n.cfg.FlushInterval)
			select {
			case <-n.quit:
				return
			case <-wait.C:
			}
			topics = n.flush(topics[:0])
		case <-ticker.C:
			n.tick()
		}
	}
}

func (n *Node) flush(topics []string) []string {
	n.dirtyMu.Lock()
	for t := range n.dirty {
		topics = append(topics, t)
	}
	clear(n.dirty)
	n.dirtyMu.Unlock()
	if len(topics) == 0 {
		return topics
	}
	// Each topic's changes are read outside the lock, so that a long
	// flush does not hold up the messages of other nodes.
	for _, t := range topics {
		small := n.e.Count(t) <= n.c.small
		if small {
			n.e.Snapshot(&n.snap, t)
		} else {
			n.e.ChangesSince(&n.ch, t, n.c.cursors[t])
		}
		n.mu.Lock()
		n.c.now = n.now()
		if small {
			n.c.diffSnapshot(t, &n.snap)
		} else {
			n.c.diffChanges(t, &n.ch)
		}
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.c.endFlush()
	n.mu.Unlock()
	return topics
}

// lostSome reports whether s dropped messages since it was last asked.
func (s *msub) lostSome() bool {
	d, err := s.sub.Dropped()
	if err != nil || d <= s.dropped {
		return false
	}
	s.dropped = d
	return true
}

func (n *Node) tick() {
	n.lock()
	lost := false
	for _, s := range n.subs {
		lost = s.lostSome() || lost
	}
	for _, s := range n.dsubs {
		lost = s.lostSome() || lost
	}
	if lost {
		n.c.st.slowConsumer++
		n.log.Warn("cluster: messages were dropped (slow consumer); resyncing")
		n.c.resyncAll()
	}
	n.c.tick(n.now())
	notify, events := n.drain()
	n.mu.Unlock()
	n.report(notify, events)
}

// Changed tells the node that local presence in topic changed: the
// change is published within FlushInterval. channel.Server calls it
// through PresenceChanged; call it after writing the engine directly.
// Under Interest, a local socket in a topic also needs Subscribe (which
// channel.Server calls on a join): without it the node publishes its own
// entries of the topic but mirrors none of the others'.
func (n *Node) Changed(topic string) {
	n.dirtyMu.Lock()
	n.dirty[topic] = struct{}{}
	n.dirtyMu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// ErrNilNode is what Attach returns on a nil *Node, such as the one a
// failed Start returns: a Server given it fails NewServer instead of
// panicking later.
var ErrNilNode = errors.New("cluster: nil *Node (did Start fail?)")

// Attach implements channel.Cluster.
func (n *Node) Attach(h channel.ClusterHooks) error {
	if n == nil {
		return ErrNilNode
	}
	if !n.hooks.CompareAndSwap(nil, &h) {
		return channel.ErrClusterAttached
	}
	return nil
}

// PresenceChanged implements channel.Cluster; it is Changed.
func (n *Node) PresenceChanged(topic string) { n.Changed(topic) }

// Subscribe implements channel.Cluster: call it when a local socket joins
// topic, before its presence_state, and Unsubscribe when it leaves. Under
// Interest, the first call for a topic not lingering makes the node
// follow the topic and fetch its entries from the other nodes; Subscribe
// returns once they are in the engine, or after SyncTimeout (the larger of
// Heartbeat and DownAfter/4) when a node does not answer, whose entries
// then come in later. Every call waits for a fetch still under way. A
// call within the first Heartbeat after Start waits until that heartbeat
// has passed, so that the nodes not yet heard from are asked too. It
// subscribes to topic's broadcasts on the first call for topic and waits
// until the NATS server confirmed it (at most a second; not at all while
// disconnected, as the client subscribes again when it reconnects).
func (n *Node) Subscribe(topic string) {
	if n.closed.Load() {
		return
	}
	n.mu.Lock()
	n.c.now = n.now()
	n.c.join(topic)
	n.mu.Unlock()
	n.subscribeBroadcasts(topic)
	if n.nc.IsConnected() { // else no answer can come: the entries come after the reconnection
		n.awaitFetch(topic)
	}
}

// awaitFetch waits until topic's entries are fetched, or a sync timeout.
// Within the first Heartbeat after Start it also waits until that
// heartbeat has passed: every live node has been heard by then, and is
// being asked for the topic's entries.
func (n *Node) awaitFetch(topic string) {
	var timeout, heard <-chan time.Time
	for {
		n.mu.Lock()
		early := n.now() < n.heardBy
		done := n.c.closed || !early && n.c.fetched(topic)
		wait := n.fetch
		n.mu.Unlock()
		if done {
			return
		}
		if timeout == nil {
			t := time.NewTimer(time.Duration(n.c.syncTimeout()))
			defer t.Stop()
			timeout = t.C
		}
		if early && heard == nil {
			t := time.NewTimer(time.Duration(n.heardBy - n.now()))
			defer t.Stop()
			heard = t.C
		}
		select {
		case <-wait:
		case <-heard:
		case <-timeout:
			return
		case <-n.quit:
			return
		}
	}
}

// subscribeBroadcasts subscribes to topic's broadcasts on the first call
// for topic.
func (n *Node) subscribeBroadcasts(topic string) {
	n.bmu.Lock()
	if n.closed.Load() {
		n.bmu.Unlock()
		return
	}
	if b := n.bsubs[topic]; b != nil {
		b.n++
		n.bmu.Unlock()
		select { // the first subscriber's confirmation
		case <-b.ready:
		case <-time.After(time.Second):
		}
		return
	}
	sub, err := n.nc.ChanSubscribe(n.subj.broadcast(topic), n.bch)
	if err != nil {
		n.bmu.Unlock()
		n.log.Warn("cluster: broadcast subscription failed", "topic", topic, "err", err)
		return
	}
	b := &bsub{sub: sub, n: 1, ready: make(chan struct{})}
	n.bsubs[topic] = b
	n.bmu.Unlock()
	defer close(b.ready)
	if !n.nc.IsConnected() {
		return // the client subscribes again when it reconnects
	}
	if err := n.nc.FlushTimeout(time.Second); err != nil {
		n.log.Warn("cluster: broadcast subscription not confirmed", "topic", topic, "err", err)
	}
}

// Unsubscribe implements channel.Cluster: it undoes one Subscribe. After
// the last, topic's remote entries stay for Config.Linger, then go.
func (n *Node) Unsubscribe(topic string) {
	n.mu.Lock()
	n.c.now = n.now()
	n.c.leave(topic)
	n.mu.Unlock()
	n.bmu.Lock()
	defer n.bmu.Unlock()
	b := n.bsubs[topic]
	if b == nil {
		return
	}
	if b.n--; b.n == 0 {
		delete(n.bsubs, topic)
		b.sub.Unsubscribe()
	}
}

// Publish implements channel.Cluster: it sends a broadcast to the other
// nodes' sockets in topic.
func (n *Node) Publish(topic, event string, payload []byte) {
	if n.closed.Load() {
		return
	}
	b := appendHeader(make([]byte, 0, 32+len(n.cfg.Node)+len(topic)+len(event)+len(payload)), kindBroadcast, n.cfg.Node, n.c.inc)
	b = appendBroadcast(b, broadcastMsg{topic: topic, event: event, payload: payload})
	if err := n.nc.Publish(n.subj.broadcast(topic), b); err != nil {
		n.log.Warn("cluster: broadcast failed", "topic", topic, "err", err)
		return
	}
	n.bcSent.Add(1)
	n.bcBytes.Add(uint64(len(b)))
}

// deliver hands broadcasts from other nodes to the channel layer.
func (n *Node) deliver() {
	defer n.wg.Done()
	for {
		select {
		case <-n.quit:
			return
		case m := <-n.bch:
			r := reader{b: m.Data}
			h := readHeader(&r)
			bm := readBroadcast(&r)
			if r.done() != nil || h.kind != kindBroadcast {
				n.mu.Lock()
				n.c.st.badMessages++
				n.mu.Unlock()
				continue
			}
			if h.node == n.cfg.Node {
				continue // local sockets got it from the channel layer
			}
			n.bcRecv.Add(1)
			if hk := n.hooks.Load(); hk != nil && hk.Broadcast != nil {
				hk.Broadcast(bm.topic, bm.event, bm.payload)
			}
		}
	}
}

// Nodes reports the other nodes this node has heard of, in no particular
// order.
func (n *Node) Nodes() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]NodeInfo, 0, len(n.c.peers))
	for _, p := range n.c.peers {
		out = append(out, n.c.info(p))
	}
	return out
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	st := n.c.st
	pending := n.c.pending()
	mirrored, remote := len(n.c.rtopics), n.c.remoteEntries()
	n.mu.Unlock()
	var dropped uint64
	n.bmu.Lock()
	for _, b := range n.bsubs {
		if d, err := b.sub.Dropped(); err == nil {
			dropped += uint64(d)
		}
	}
	n.bmu.Unlock()
	return Stats{
		DeltasSent: st.deltasSent, DeltasApplied: st.deltasApplied,
		BatchesSent: st.batchesSent, BatchesReceived: st.batchesReceived,
		BytesSent: st.bytesSent, BytesReceived: st.bytesReceived,
		HeartbeatsSent: st.heartbeatsSent, HeartbeatsReceived: st.heartbeatsRecv,
		Resyncs: st.resyncs, Gaps: st.gaps, SnapshotsServed: st.snapshotsServed,
		RemoteFull: st.remoteFull, RemoteRejected: st.remoteRejects, RemotePending: pending,
		Stale: st.stale, BadMessages: st.badMessages, SlowConsumer: st.slowConsumer,
		NodesDown: st.nodesDown, Restarts: st.restarts, LimitMismatches: st.limitMismatches,
		BroadcastsSent: n.bcSent.Load(), BroadcastsReceived: n.bcRecv.Load(),
		BroadcastBytesSent: n.bcBytes.Load(), BroadcastsDropped: dropped,
		TopicsMirrored: mirrored, RemoteEntries: remote, SnapshotFetches: st.fetches, LingerDrops: st.lingerDrops,
	}
}

// Close says goodbye, so that the other nodes drop this node's entries at
// once, removes the other nodes' entries from the local engine, and stops
// the node. It does not close the NATS connection. Calling it again does
// nothing.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.bmu.Lock()
		n.closed.Store(true)
		n.bmu.Unlock()
		close(n.quit)
		n.wg.Wait()
		n.flush(nil)
		n.mu.Lock()
		n.c.goodbye()
		n.c.closed = true // messages still being delivered change nothing now
		for _, p := range n.c.peers {
			n.c.drop(p)
		}
		notify, _ := n.drain()
		n.mu.Unlock()
		n.unsubscribeAll()
		err = n.nc.FlushTimeout(time.Second)
		n.report(notify, nil)
	})
	return err
}

func (n *Node) unsubscribeAll() {
	for _, s := range n.subs {
		s.sub.Unsubscribe()
	}
	n.mu.Lock()
	for k, s := range n.dsubs {
		s.sub.Unsubscribe()
		delete(n.dsubs, k)
	}
	n.mu.Unlock()
	n.bmu.Lock()
	for t, b := range n.bsubs {
		b.sub.Unsubscribe()
		delete(n.bsubs, t)
	}
	n.bmu.Unlock()
}
