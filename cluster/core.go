package cluster

import (
	"cmp"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"

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
	maxBatchBytes = 64 << 10  // a delta message is cut after this many bytes
	pageBytes     = 256 << 10 // a snapshot page holds about this many bytes
	maxBuffered   = 1 << 16   // deltas buffered per node while it syncs
	maxSnaps      = 16        // snapshots an owner keeps for paging
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

// rentry is a remote entry as its owner published it.
type rentry struct {
	key, meta string
	ref       uint64
}

// rsock is a remote socket's synthetic ID here and its entry count.
type rsock struct {
	id engine.SocketID
	n  int
}

// ownSnap is a copy of this node's published entries, served in pages.
type ownSnap struct {
	id, seq uint64
	taken   int64
	entries []op
}

// peer is what this node knows of another node.
type peer struct {
	name         string
	inc          uint64
	seq          uint64 // last sequence applied
	state        State
	left         bool  // said goodbye: later messages of inc are stale
	heard        int64 // when a message of inc last arrived
	limitsDiffer bool
	refTagClash  bool

	// While syncing.
	req     uint64 // the request being answered
	snapID  uint64
	snapSeq uint64
	asked   int64
	pages   []op
	buf     []batch // batches that arrived while syncing, replayed after
	bufOps  int

	want   map[rkey]rentry   // the entries the owner published
	socks  map[uint64]*rsock // owner's socket -> synthetic socket here
	failed map[rkey]struct{} // entries of want the engine refused
}

// counters are the core's statistics, guarded by the node's lock.
type counters struct {
	deltasSent, deltasApplied, batchesSent, batchesReceived   uint64
	bytesSent, bytesReceived, heartbeatsSent, heartbeatsRecv  uint64
	resyncs, gaps, snapshotsServed, remoteFull, remoteRejects uint64
	stale, badMessages, slowConsumer, nodesDown, restarts     uint64
	limitMismatches, duplicateNames                           uint64
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
	seq      uint64
	pub      map[string]map[engine.SocketID]pubEntry
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
	ops                   []byte
	opsN                  int
	first                 uint64
	snaps                 []*ownSnap
	ids                   uint64 // snapshot and request ids
	nextID                engine.SocketID

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
		pub:        map[string]map[engine.SocketID]pubEntry{},
		cursors:    map[string]engine.Cursor{},
		small:      smallTopic,
		batchBytes: maxBatchBytes,
		pageBytes:  pageBytes,
		seen:       map[engine.SocketID]struct{}{},
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

// ---- the owner's side ----

// flushLocal publishes what changed in the local entries of topics since
// they were last published, as one or more ordered batches.
func (c *core) flushLocal(topics []string) {
	for _, t := range topics {
		c.diffTopic(t)
	}
	c.endBatch()
}

func (c *core) diffTopic(topic string) {
	if c.e.Count(topic) <= c.small {
		c.e.Snapshot(&c.snap, topic)
		c.diffSnapshot(topic, &c.snap)
		return
	}
	c.e.ChangesSince(&c.ch, topic, c.cursors[topic])
	c.diffChanges(topic, &c.ch)
}

// smallTopic is the default of core.small: topics up to this size are read
// whole. Reading a topic's changes from the history costs less even for a
// topic of 16 entries when the history reaches back (BenchmarkPublishOneChange,
// BenchmarkPublishManyTopics), and falls back to a whole read by itself
// when it does not, so only an empty topic is read whole.
const smallTopic = 0

// diffSnapshot publishes what changed in topic's local entries, from a
// snapshot of all its entries.
func (c *core) diffSnapshot(topic string, snap *engine.Snapshot) {
	c.diffEntries(topic, snap.Entries)
	c.setCursor(topic, snap.Cursor)
}

// diffChanges publishes what changed in topic's local entries, from ch:
// the engine's changes since c.cursors[topic], the cursor of what was last
// published, read after the topic was marked changed. It costs O(changes);
// when the engine's history no longer reaches back, O(entries of topic).
func (c *core) diffChanges(topic string, ch *engine.Changes) {
	if ch.Full {
		c.diffEntries(topic, ch.Joins)
		c.setCursor(topic, ch.Next)
		return
	}
	m := c.pub[topic]
	clear(c.seen) // the sockets whose published entry left
	for i := range ch.Leaves {
		l := &ch.Leaves[i]
		if l.Socket >= remoteBase {
			continue
		}
		if pe, ok := m[l.Socket]; !ok || pe.ref != l.Ref {
			// Not what was published: start over from the entries.
			c.e.Snapshot(&c.snap, topic)
			c.diffEntries(topic, c.snap.Entries)
			c.setCursor(topic, c.snap.Cursor)
			return
		}
		c.seen[l.Socket] = struct{}{}
	}
	for i := range ch.Joins {
		j := &ch.Joins[i]
		if j.Socket >= remoteBase {
			continue
		}
		delete(c.seen, j.Socket)
		m = c.publish(topic, m, j)
	}
	for s := range c.seen {
		delete(m, s)
		c.addOp(&op{kind: opUntrack, socket: uint64(s), topic: topic})
	}
	if m != nil && len(m) == 0 {
		delete(c.pub, topic)
	}
	c.setCursor(topic, ch.Next)
}

// setCursor records the cursor topic's published entries stand at, and
// forgets it with the topic's last local entry.
func (c *core) setCursor(topic string, cur engine.Cursor) {
	if _, ok := c.pub[topic]; ok {
		c.cursors[topic] = cur
	} else {
		delete(c.cursors, topic)
	}
}

// publish records ent as topic's published entry of its socket and
// publishes it, unless it is published already; it returns topic's map.
func (c *core) publish(topic string, m map[engine.SocketID]pubEntry, ent *engine.Entry) map[engine.SocketID]pubEntry {
	if pe, ok := m[ent.Socket]; ok && pe.ref == ent.Ref {
		return m
	}
	if m == nil {
		m = map[engine.SocketID]pubEntry{}
		c.pub[topic] = m
	}
	pe := pubEntry{ref: ent.Ref, key: string(ent.Key), meta: string(ent.Meta)}
	m[ent.Socket] = pe
	c.addOp(&op{kind: opTrack, socket: uint64(ent.Socket), topic: topic, key: pe.key, meta: ent.Meta, ref: pe.ref})
	return m
}

// diffEntries publishes the difference between topic's local entries
// among entries, all of topic's entries at one instant, and what was
// published.
func (c *core) diffEntries(topic string, entries []engine.Entry) {
	m := c.pub[topic]
	clear(c.seen)
	for i := range entries {
		ent := &entries[i]
		if ent.Socket >= remoteBase {
			continue
		}
		c.seen[ent.Socket] = struct{}{}
		m = c.publish(topic, m, ent)
	}
	for s := range m {
		if _, ok := c.seen[s]; !ok {
			delete(m, s)
			c.addOp(&op{kind: opUntrack, socket: uint64(s), topic: topic})
		}
	}
	if m != nil && len(m) == 0 {
		delete(c.pub, topic)
	}
}

func (c *core) addOp(o *op) {
	c.seq++
	if c.opsN == 0 {
		c.first = c.seq
	}
	c.ops = appendOp(c.ops, o)
	c.opsN++
	if len(c.ops) >= c.batchBytes {
		c.endBatch()
	}
}

func (c *core) endBatch() {
	if c.opsN == 0 {
		return
	}
	b := appendHeader(make([]byte, 0, len(c.ops)+32+len(c.name)), kindBatch, c.name, c.inc)
	b = binary.AppendUvarint(b, c.first)
	b = binary.AppendUvarint(b, uint64(c.opsN))
	b = append(b, c.ops...)
	c.st.deltasSent += uint64(c.opsN)
	c.st.batchesSent++
	c.ops, c.opsN = c.ops[:0], 0
	c.send(c.subj.stream(c.name), b)
}

func (c *core) heartbeat(kind byte) {
	c.endBatch() // the heartbeat's sequence must have been published
	b := appendHeader(nil, kind, c.name, c.inc)
	b = appendHeartbeat(b, heartbeat{seq: c.seq, limits: c.limits, refTag: c.refTag})
	c.st.heartbeatsSent++
	c.send(c.subj.stream(c.name), b)
}

// goodbye tells the others this node is leaving: they drop its entries at
// once.
func (c *core) goodbye() {
	c.endBatch()
	c.heartbeat(kindGoodbye)
}

func (c *core) onSyncReq(h header, q syncReq) {
	var s *ownSnap
	if q.snap == 0 {
		s = c.takeSnap()
	} else {
		for _, x := range c.snaps {
			if x.id == q.snap {
				s = x
			}
		}
	}
	pg := syncPage{req: q.req}
	var body []byte
	n := 0
	if s != nil && q.offset <= uint64(len(s.entries)) {
		pg.snap, pg.seq, pg.offset = s.id, s.seq, q.offset
		for i := q.offset; i < uint64(len(s.entries)) && (n == 0 || len(body) < c.pageBytes); i++ {
			body = appendOp(body, &s.entries[i])
			n++
		}
		pg.more = q.offset+uint64(n) < uint64(len(s.entries))
	}
	b := appendHeader(make([]byte, 0, len(body)+64), kindSyncPage, c.name, c.inc)
	b = appendSyncPageHead(b, &pg, n)
	b = append(b, body...)
	c.send(c.subj.reply(h.node), b)
}

// takeSnap copies the published entries, which are exactly those through
// c.seq, since both change together.
func (c *core) takeSnap() *ownSnap {
	c.endBatch()
	c.ids++
	s := &ownSnap{id: c.ids, seq: c.seq, taken: c.now}
	for topic, m := range c.pub {
		for sock, pe := range m {
			s.entries = append(s.entries, op{kind: opTrack, socket: uint64(sock), topic: topic, key: pe.key, meta: []byte(pe.meta), ref: pe.ref})
		}
	}
	if len(c.snaps) == maxSnaps {
		c.snaps = slices.Delete(c.snaps, 0, 1)
	}
	c.snaps = append(c.snaps, s)
	c.st.snapshotsServed++
	return s
}

// ---- the receiver's side ----

// onMessage handles one message from the node stream, a sync page or a
// sync request.
func (c *core) onMessage(data []byte) {
	if c.closed {
		return
	}
	c.st.bytesReceived += uint64(len(data))
	r := reader{b: data}
	h := readHeader(&r)
	if r.err != nil {
		c.st.badMessages++
		return
	}
	if h.node == c.name { // this node's own stream, echoed: not decoded
		if h.inc != c.inc {
			if c.st.duplicateNames == 0 {
				c.log.Error("cluster: another node uses this node's name", "node", c.name)
			}
			c.st.duplicateNames++
		}
		return
	}
	switch h.kind {
	case kindBatch:
		b := readBatch(&r)
		if r.done() != nil {
			c.st.badMessages++
			return
		}
		c.st.batchesReceived++
		if p := c.peerFor(h); p != nil {
			c.onBatch(p, b)
		}
	case kindHeartbeat, kindGoodbye:
		hb := readHeartbeat(&r)
		if r.done() != nil {
			c.st.badMessages++
			return
		}
		c.st.heartbeatsRecv++
		if p := c.peerFor(h); p != nil {
			c.onHeartbeat(p, h.kind, hb)
		}
	case kindSyncReq:
		q := readSyncReq(&r)
		if r.done() != nil {
			c.st.badMessages++
			return
		}
		c.onSyncReq(h, q)
	case kindSyncPage:
		pg := readSyncPage(&r)
		if r.done() != nil {
			c.st.badMessages++
			return
		}
		if p := c.peerFor(h); p != nil {
			c.onSyncPage(p, pg)
		}
	default:
		c.st.badMessages++
	}
}

// peerFor returns the peer a message of the current incarnation came
// from, handling new nodes and new incarnations; nil means ignore the
// message.
func (c *core) peerFor(h header) *peer {
	p := c.peers[h.node]
	switch {
	case p == nil:
		p = &peer{name: h.node, inc: h.inc, want: map[rkey]rentry{}, socks: map[uint64]*rsock{}, failed: map[rkey]struct{}{}}
		c.peers[h.node] = p
		p.heard = c.now
		if h.kind != kindGoodbye {
			c.startSync(p)
			c.heartbeat(kindHeartbeat) // so that a joining node hears this one now
		}
	case h.inc < p.inc:
		c.st.stale++
		return nil
	case h.inc > p.inc:
		c.drop(p)
		c.st.restarts++
		p.inc, p.seq, p.left = h.inc, 0, false
		p.buf, p.bufOps = nil, 0
		p.heard = c.now
		c.log.Info("cluster: node restarted", "node", p.name)
		if h.kind != kindGoodbye {
			c.startSync(p)
		}
	case p.left:
		c.st.stale++
		return nil
	}
	p.heard = c.now
	if p.state == StateDown && h.kind != kindGoodbye {
		c.log.Info("cluster: node is back", "node", p.name)
		c.startSync(p)
	}
	return p
}

func (c *core) setState(p *peer, s State) {
	if p.state == s {
		return
	}
	p.state = s
	c.events = append(c.events, c.info(p))
}

func (c *core) info(p *peer) NodeInfo {
	return NodeInfo{Name: p.name, Incarnation: p.inc, State: p.state, Entries: len(p.want),
		Pending: len(p.failed), LimitsDiffer: p.limitsDiffer}
}

// startSync asks p for a new snapshot. Batches keep being buffered.
func (c *core) startSync(p *peer) {
	c.setState(p, StateSyncing)
	c.ids++
	p.req, p.snapID, p.snapSeq, p.pages, p.asked = c.ids, 0, 0, nil, c.now
	c.st.resyncs++
	c.askPage(p, 0)
}

func (c *core) askPage(p *peer, offset uint64) {
	b := appendHeader(nil, kindSyncReq, c.name, c.inc)
	b = appendSyncReq(b, syncReq{req: p.req, snap: p.snapID, offset: offset})
	p.asked = c.now
	c.send(c.subj.syncReq(p.name), b)
}

func (c *core) onBatch(p *peer, b batch) {
	if p.state == StateUp {
		switch {
		case b.first == p.seq+1:
			c.apply(p, b.ops)
			p.seq = b.last()
			return
		case b.last() <= p.seq:
			c.st.stale++
			return
		}
		c.st.gaps++
		c.startSync(p)
	}
	if p.bufOps+len(b.ops) > maxBuffered {
		p.buf, p.bufOps = nil, 0
		return
	}
	p.buf = append(p.buf, b)
	p.bufOps += len(b.ops)
}

func (c *core) onHeartbeat(p *peer, kind byte, hb heartbeat) {
	differ := hb.limits != c.limits
	if differ && !p.limitsDiffer {
		c.st.limitMismatches++
		c.log.Warn("cluster: node's engine limits differ from this node's", "node", p.name)
	}
	p.limitsDiffer = differ
	clash := hb.refTag == c.refTag
	if clash && !p.refTagClash {
		c.log.Warn("cluster: node uses this node's engine RefTag: phx_refs may collide", "node", p.name)
	}
	p.refTagClash = clash
	if kind == kindGoodbye {
		c.drop(p)
		p.left = true
		c.setState(p, StateDown)
		return
	}
	if p.state == StateUp && hb.seq > p.seq {
		c.st.gaps++
		c.startSync(p)
	}
}

func (c *core) onSyncPage(p *peer, pg syncPage) {
	if p.state != StateSyncing || pg.req != p.req {
		c.st.stale++
		return
	}
	switch {
	case pg.snap == 0, p.snapID != 0 && pg.snap != p.snapID, pg.offset != uint64(len(p.pages)):
		c.startSync(p)
		return
	}
	p.snapID, p.snapSeq = pg.snap, pg.seq
	p.pages = append(p.pages, pg.entries...)
	if pg.more {
		c.askPage(p, uint64(len(p.pages)))
		return
	}
	c.finishSync(p)
}

// finishSync applies the snapshot as a diff against what p's entries are
// here, so that unchanged entries do not flap, then replays the buffered
// batches newer than it.
func (c *core) finishSync(p *peer) {
	next := make(map[rkey]rentry, len(p.pages))
	for i := range p.pages {
		o := &p.pages[i]
		next[rkey{o.socket, o.topic}] = rentry{key: o.key, meta: string(o.meta), ref: o.ref}
	}
	for k := range p.want {
		if _, ok := next[k]; !ok {
			c.untrack(p, k)
		}
	}
	for k, v := range next {
		if old, ok := p.want[k]; ok && old == v {
			if _, failed := p.failed[k]; !failed {
				continue
			}
		}
		c.track(p, k, v, nil)
	}
	p.seq, p.pages = p.snapSeq, nil
	// A buffer that overflowed was emptied: what it lost shows as a gap
	// at the next batch or heartbeat.
	buf := p.buf
	p.buf, p.bufOps = nil, 0
	slices.SortFunc(buf, func(a, b batch) int { return cmp.Compare(a.first, b.first) })
	for i, b := range buf {
		switch {
		case b.last() <= p.seq:
			continue
		case b.first == p.seq+1:
			c.apply(p, b.ops)
			p.seq = b.last()
			continue
		}
		// A gap: what is missing is newer than this snapshot.
		c.st.gaps++
		c.startSync(p)
		p.buf = buf[i:]
		for _, x := range p.buf {
			p.bufOps += len(x.ops)
		}
		return
	}
	c.setState(p, StateUp)
}

func (c *core) apply(p *peer, ops []op) {
	for i := range ops {
		o := &ops[i]
		k := rkey{o.socket, o.topic}
		if o.kind == opTrack {
			c.track(p, k, rentry{key: o.key, meta: string(o.meta), ref: o.ref}, o.meta)
		} else {
			c.untrack(p, k)
		}
	}
	c.st.deltasApplied += uint64(len(ops))
}

// track records and stores a remote entry; meta, if not nil, is v.meta as
// bytes.
func (c *core) track(p *peer, k rkey, v rentry, meta []byte) {
	if _, ok := p.want[k]; !ok {
		rs := p.socks[k.socket]
		if rs == nil {
			rs = &rsock{id: c.nextID}
			c.nextID++
			p.socks[k.socket] = rs
		}
		rs.n++
	}
	p.want[k] = v
	c.store(p, k, v, meta)
}

// store writes a remote entry into the engine; a refusal is counted,
// logged (once per node until all its entries are stored), and retried by
// tick.
func (c *core) store(p *peer, k rkey, v rentry, meta []byte) {
	if meta == nil {
		meta = []byte(v.meta)
	}
	res, err := c.e.TrackWithRef(p.socks[k.socket].id, k.topic, v.key, meta, v.ref)
	if err != nil {
		if errors.Is(err, engine.ErrFull) {
			c.st.remoteFull++
		} else {
			c.st.remoteRejects++
		}
		if _, ok := p.failed[k]; !ok {
			if len(p.failed) == 0 { // once until all are stored, not per entry
				c.log.Warn("cluster: remote entries cannot be stored; retrying (see Stats and Nodes)", "node", p.name, "topic", k.topic, "key", v.key, "err", err)
			}
			p.failed[k] = struct{}{}
		}
		return
	}
	delete(p.failed, k)
	if res != engine.Unchanged {
		c.notify[k.topic] = struct{}{}
	}
}

func (c *core) untrack(p *peer, k rkey) {
	if _, ok := p.want[k]; !ok {
		return
	}
	delete(p.want, k)
	delete(p.failed, k)
	rs := p.socks[k.socket]
	if c.e.Untrack(rs.id, k.topic) {
		c.notify[k.topic] = struct{}{}
	}
	if rs.n--; rs.n == 0 {
		delete(p.socks, k.socket)
	}
}

// drop removes every entry of p from the engine.
func (c *core) drop(p *peer) {
	for k := range p.want {
		c.notify[k.topic] = struct{}{}
	}
	for _, rs := range p.socks {
		c.e.UntrackAll(rs.id)
	}
	clear(p.want)
	clear(p.socks)
	clear(p.failed)
	p.pages = nil
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
			p.buf, p.bufOps = nil, 0
			c.st.nodesDown++
			c.setState(p, StateDown)
			continue
		case p.state == StateSyncing && now-p.asked > c.syncTimeout():
			c.startSync(p)
		}
		for k := range p.failed {
			c.store(p, k, p.want[k], nil)
		}
	}
	for len(c.snaps) > 0 && now-c.snaps[0].taken > 4*c.syncTimeout() {
		c.snaps = c.snaps[1:]
	}
}

// resyncAll starts over with every live node, after messages were lost
// (a slow consumer).
func (c *core) resyncAll() {
	for _, p := range c.peers {
		if p.state != StateDown {
			c.startSync(p)
		}
	}
}

func (c *core) pending() int {
	n := 0
	for _, p := range c.peers {
		n += len(p.failed)
	}
	return n
}
