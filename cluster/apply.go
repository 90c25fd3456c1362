package cluster

import (
	"bytes"
	"cmp"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/presencekit/presence/engine"
)

// The receiver's side: other nodes' deltas applied in order, and their
// snapshots fetched and applied as diffs.

// onMessage handles one message from the node stream, a sync page or a
// sync request.
func (c *core) onMessage(data []byte) {
	if c.closed {
		return
	}
	c.st.bytesReceived += uint64(len(data))
	// Strings point into data while decoding: a batch's are copied only
	// where kept, the others' at once.
	r := reader{b: data, alias: true}
	h := readHeader(&r)
	if r.err != nil {
		c.st.badMessages++
		return
	}
	switch p := c.peers[h.node]; {
	case p != nil:
		h.node = p.name
	case h.node == c.name:
		h.node = c.name
	default:
		h.node = strings.Clone(h.node)
	}
	if h.kind != kindBatch {
		r.alias = false
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
		b := readBatch(&r, c.dec)
		c.dec = b.ops[:0]
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
		p = &peer{name: h.node, inc: h.inc, want: map[rkey]*rentry{}, socks: map[uint64]*rsock{}, failed: map[rkey]struct{}{},
			logs: map[uint32]uint64{}, hb: map[uint32]uint64{}, syncSet: map[uint32]struct{}{}, next: map[uint32]struct{}{}}
		c.peers[h.node] = p
		p.heard = c.now
		if h.kind != kindGoodbye {
			c.resyncPeer(p)
			c.heartbeatSoon() // so that a joining node hears this one soon
		}
	case h.inc < p.inc:
		c.st.stale++
		return nil
	case h.inc > p.inc:
		c.drop(p)
		c.st.restarts++
		p.inc, p.left = h.inc, false
		p.heard = c.now
		c.log.Info("cluster: node restarted", "node", p.name)
		if h.kind != kindGoodbye {
			c.resyncPeer(p)
			c.heartbeatSoon() // a new incarnation knows no node yet
		}
	case p.left:
		c.st.stale++
		return nil
	}
	p.heard = c.now
	if p.state == StateDown && h.kind != kindGoodbye {
		c.log.Info("cluster: node is back", "node", p.name)
		c.resyncPeer(p)
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
		Pending: len(p.failed), LimitsDiffer: p.limitsDiffer || p.bucketsDiffer}
}

// resyncPeer fetches again everything this node follows of p: every
// bucket under All, else the buckets of the topics followed.
func (c *core) resyncPeer(p *peer) {
	if c.replicate == All {
		p.syncAll = true
	} else {
		for k := range c.bcount {
			p.syncSet[k] = struct{}{}
		}
	}
	c.startSync(p)
}

// syncBuckets adds buckets to what is fetched from p and asks again, or,
// while a snapshot is on its way or being applied, once it is in.
func (c *core) syncBuckets(p *peer, buckets ...uint32) {
	if p.state == StateSyncing && (p.req != 0 || p.fin != nil) {
		for _, k := range buckets {
			p.next[k] = struct{}{}
		}
		return
	}
	for _, k := range buckets {
		p.syncSet[k] = struct{}{}
	}
	c.startSync(p)
}

// syncing reports whether p's batches of bucket k wait for a snapshot.
func (p *peer) syncing(k uint32) bool {
	if _, ok := p.next[k]; ok {
		return true
	}
	return p.current(k)
}

// current reports whether bucket k is in the snapshot being fetched or
// applied.
func (p *peer) current(k uint32) bool {
	if p.syncAll {
		return true
	}
	_, ok := p.syncSet[k]
	return ok
}

// startSync asks p for a new snapshot of the buckets being fetched and
// of those next. Their batches keep being buffered. With none, p is up.
func (c *core) startSync(p *peer) {
	for k := range p.next {
		p.syncSet[k] = struct{}{}
	}
	clear(p.next)
	if p.bucketsDiffer { // nothing of it is mirrored: see onHeartbeat
		p.syncAll = false
		clear(p.syncSet)
	}
	if !p.syncAll && len(p.syncSet) == 0 {
		p.fin.close()
		p.req, p.snapID, p.snapSeqs, p.pages, p.fin = 0, 0, nil, nil, nil
		c.setState(p, StateUp)
		return
	}
	c.setState(p, StateSyncing)
	c.ids++
	p.fin.close()
	p.req, p.snapID, p.snapSeqs, p.pages, p.fin, p.asked = c.ids, 0, nil, nil, nil, c.now
	c.st.resyncs++
	c.askPage(p, 0)
}

func (c *core) askPage(p *peer, offset uint64) {
	q := syncReq{req: p.req, snap: p.snapID, offset: offset, all: p.syncAll, nbuckets: c.nbuckets}
	if !p.syncAll && p.snapID == 0 {
		q.buckets = make([]uint32, 0, len(p.syncSet))
		for k := range p.syncSet {
			q.buckets = append(q.buckets, k)
		}
	}
	b := appendHeader(nil, kindSyncReq, c.name, c.inc)
	b = appendSyncReq(b, q)
	p.asked = c.now
	c.send(c.subj.syncReq(p.name), b)
}

func (c *core) onBatch(p *peer, b batch) {
	if !c.follows(b.bucket) || p.bucketsDiffer {
		return // a late batch of a bucket no longer followed, or p's buckets hold other topics
	}
	if !p.syncing(b.bucket) {
		seq := p.logs[b.bucket]
		switch {
		case b.first == seq+1:
			c.apply(p, b.ops)
			p.logs[b.bucket] = b.last()
			return
		case b.last() <= seq:
			c.st.stale++
			return
		}
		c.st.gaps++
		c.syncBuckets(p, b.bucket)
	}
	c.keep(p, b)
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
	// A node that hashes topics into another number of buckets publishes
	// and fetches other topics under each bucket: nothing of it is
	// mirrored, and it is reported as its limits differing.
	if differ := hb.buckets != c.nbuckets; differ != p.bucketsDiffer {
		p.bucketsDiffer = differ
		if !differ {
			c.resyncPeer(p)
		} else {
			c.st.limitMismatches++
			c.log.Warn("cluster: node hashes topics into another number of buckets (Config.Buckets): its entries are not mirrored", "node", p.name, "buckets", hb.buckets, "here", c.nbuckets)
			c.drop(p)
			c.startSync(p)
		}
	}
	if p.bucketsDiffer {
		return
	}
	// A bucket p published in for the first time, which this node
	// began to follow since p's previous heartbeat: p's first batches
	// there may have gone out before this node subscribed, and never
	// come. It is fetched now, not when the next heartbeat judges it.
	var fresh []uint32
	for _, s := range hb.seqs {
		k := s.bucket
		if _, seen := p.hb[k]; seen || !c.follows(k) || p.syncing(k) {
			continue
		}
		if _, ok := p.logs[k]; ok {
			continue
		}
		if at, ok := c.followedAt[k]; ok && at >= p.hbAt {
			fresh = append(fresh, k)
		}
	}
	if len(p.hb) > 0 && c.now-p.hbAt < c.hb/2 {
		// An early heartbeat (after a first batch in a bucket, or to
		// greet a new node): the batches the previous one announced
		// may still be on their way. It only adds the buckets new to
		// it, and the next heartbeat judges against the previous one.
		for _, s := range hb.seqs {
			if _, ok := p.hb[s.bucket]; !ok {
				p.hb[s.bucket] = s.seq
			}
		}
		if len(fresh) > 0 {
			c.syncBuckets(p, fresh...)
		}
		return
	}
	// The batches up to the previous heartbeat's sequences had a
	// heartbeat's time to arrive: one still missing was lost. (Those of
	// this heartbeat may still be on their way, on other subjects.)
	var behind []uint32
	for k, prev := range p.hb {
		if !c.follows(k) || p.syncing(k) {
			continue
		}
		if seq, ok := p.logs[k]; prev > seq {
			if ok {
				c.st.gaps++ // batches were lost
			} // else a bucket followed before p was heard in it
			behind = append(behind, k)
		}
	}
	clear(p.hb)
	for _, s := range hb.seqs {
		p.hb[s.bucket] = s.seq
	}
	p.hbAt = c.now
	if behind = append(behind, fresh...); len(behind) > 0 {
		c.syncBuckets(p, behind...)
	}
}

func (c *core) onSyncPage(p *peer, pg syncPage) {
	// p.req is 0 while no request is out (a snapshot being applied or
	// replayed after): no page is awaited then, whatever its req.
	if p.state != StateSyncing || p.req == 0 || pg.req != p.req {
		c.st.stale++
		return
	}
	switch {
	case pg.snap == 0, p.snapID != 0 && pg.snap != p.snapID, pg.offset != uint64(len(p.pages)):
		c.startSync(p)
		return
	}
	if pg.offset == 0 {
		p.snapSeqs = pg.seqs
	}
	p.snapID = pg.snap
	p.pages = append(p.pages, pg.entries...)
	if pg.more {
		c.askPage(p, uint64(len(p.pages)))
		return
	}
	c.finishSync(p)
}

// finishing is a snapshot being applied, a piece at a time, and then the
// batches buffered meanwhile, replayed a piece at a time too.
type finishing struct {
	phase int
	pos   int
	in    map[rkey]struct{} // the snapshot's entries of the topics followed
	// held pulls the keys of the entries held from the peer, a piece at
	// a time, to find those not in the snapshot; stop ends it.
	held func() (rkey, bool)
	stop func()
	gone []rkey // entries held here and not in the snapshot
	// work counts the entries the last step of the snapshot's
	// application went through: at most a piece (the replay's steps
	// are bounded by their budget).
	work int
	// replay holds the buffered batches being replayed, by bucket and
	// sequence; pos is the next one, and left counts the ops from it on,
	// which count against maxBuffered with p.buf.
	replay []batch
	left   int
}

// close ends the scan of the entries held, if one is under way; f may be
// nil.
func (f *finishing) close() {
	if f != nil && f.stop != nil {
		f.stop()
		f.held, f.stop = nil, nil
	}
}

// The phases of a finishing.
const (
	finIndex   = iota // index the snapshot's entries
	finGone           // find the entries held that the snapshot does not hold
	finUntrack        // untrack them
	finTrack          // track what changed
	finReplay         // replay the batches buffered
)

// finishSync starts applying the snapshot of the buckets being fetched as
// a diff against what p's entries of them are here, so that unchanged
// entries do not flap; step applies it in pieces of c.piece entries, so
// that the node's lock is free in between for heartbeats and the other
// nodes' deltas, then replays the buffered batches newer than it, in
// pieces of c.piece ops too. The buckets fetched stay syncing until the
// replay is over: their batches that arrive meanwhile are buffered
// behind it and replayed in order after it. Pages that arrive meanwhile
// are stale; a new sync of p starts over.
func (c *core) finishSync(p *peer) {
	p.req = 0
	p.fin.close()
	p.fin = &finishing{in: make(map[rkey]struct{}, len(p.pages))}
	c.busy = true
}

// step applies a piece of a snapshot being applied, or of its replay; it
// reports whether more pieces are left.
func (c *core) step() bool {
	if !c.busy {
		return false
	}
	for _, p := range c.peers {
		if p.fin != nil {
			c.stepPeer(p)
			return true
		}
	}
	c.busy = false
	return false
}

func (c *core) stepPeer(p *peer) {
	f := p.fin
	in := func(topic string) bool { return c.wants(topic) && p.current(c.bucketOf(topic)) }
	end := f.pos + c.piece
	switch f.phase {
	case finIndex:
		for ; f.pos < len(p.pages) && f.pos < end; f.pos++ {
			if o := &p.pages[f.pos]; in(o.topic) {
				f.in[rkey{o.socket, o.topic}] = struct{}{}
			}
		}
		f.work = f.pos - (end - c.piece)
		if f.pos == len(p.pages) {
			// The entries held are looked at a piece at a time too.
			// Between pieces, those of the buckets fetched may only go
			// (their batches wait for the replay): a key pulled is
			// held, and none is added that the scan could miss.
			f.phase, f.pos = finGone, 0
		}
	case finGone:
		if f.held == nil {
			if len(p.want) <= c.piece { // in one step, as most are
				for k := range p.want {
					if _, ok := f.in[k]; !ok && in(k.topic) {
						f.gone = append(f.gone, k)
					}
				}
				f.work = len(p.want)
				f.phase, f.pos, f.in = finUntrack, 0, nil
				break
			}
			f.held, f.stop = iter.Pull(maps.Keys(p.want))
		}
		for f.work = 0; f.work < c.piece; f.work++ {
			k, ok := f.held()
			if !ok {
				f.close()
				f.phase, f.pos, f.in = finUntrack, 0, nil
				break
			}
			if _, ok := f.in[k]; !ok && in(k.topic) {
				f.gone = append(f.gone, k)
			}
		}
	case finUntrack:
		for ; f.pos < len(f.gone) && f.pos < end; f.pos++ {
			c.untrack(p, f.gone[f.pos])
		}
		f.work = f.pos - (end - c.piece)
		if f.pos == len(f.gone) {
			f.phase, f.pos, f.gone = finTrack, 0, nil
		}
	case finTrack:
		for ; f.pos < len(p.pages) && f.pos < end; f.pos++ {
			o := &p.pages[f.pos]
			if !in(o.topic) {
				continue
			}
			k := rkey{o.socket, o.topic}
			if old := p.want[k]; old != nil && old.key == o.key && old.ref == o.ref && bytes.Equal(old.meta, o.meta) {
				if _, failed := p.failed[k]; !failed {
					continue
				}
			}
			c.track(p, k, o)
		}
		f.work = f.pos - (end - c.piece)
		if f.pos == len(p.pages) {
			c.startReplay(p)
		}
	case finReplay:
		c.replayPiece(p)
	}
}

// startReplay ends the application of a snapshot: the buckets fetched
// stand at the snapshot's sequences, and the replay of the batches
// buffered begins.
func (c *core) startReplay(p *peer) {
	if p.syncAll {
		clear(p.logs)
	} else {
		for k := range p.syncSet {
			delete(p.logs, k)
		}
	}
	for _, s := range p.snapSeqs {
		if p.current(s.bucket) {
			p.logs[s.bucket] = s.seq
		}
	}
	p.snapID, p.snapSeqs, p.pages = 0, nil, nil
	p.fin.phase, p.fin.pos = finReplay, 0
	if !c.takeReplay(p) {
		c.endSync(p)
	}
}

// takeReplay moves the buffered batches to replay now into the replay,
// sorted by bucket and sequence: all but those of the buckets to fetch
// next, which wait for their own snapshot. It reports whether it took
// any.
func (c *core) takeReplay(p *peer) bool {
	f := p.fin
	f.replay, f.pos, f.left = f.replay[:0], 0, 0
	kept := p.buf[:0]
	for _, b := range p.buf {
		switch _, next := p.next[b.bucket]; {
		case !c.follows(b.bucket):
		case next:
			kept = append(kept, b)
		default:
			f.replay = append(f.replay, b)
			f.left += len(b.ops)
		}
	}
	clear(p.buf[len(kept):])
	p.buf = kept
	p.bufOps = 0
	for _, b := range kept {
		p.bufOps += len(b.ops)
	}
	slices.SortFunc(f.replay, func(a, b batch) int {
		return cmp.Or(cmp.Compare(a.bucket, b.bucket), cmp.Compare(a.first, b.first))
	})
	return len(f.replay) > 0
}

// replayPiece replays up to c.piece ops of the buffered batches, in
// order. A bucket's sequence moves with each op applied, so that a batch
// cut between two pieces goes on from where it stopped. Once the batches
// taken are replayed, those buffered meanwhile are taken in turn; with
// none, the sync ends.
func (c *core) replayPiece(p *peer) {
	f := p.fin
	for budget := c.piece; budget > 0 && f.pos < len(f.replay); budget-- {
		b := &f.replay[f.pos]
		k := b.bucket
		_, next := p.next[k]
		seq := p.logs[k]
		switch {
		case !c.follows(k) || b.last() <= seq:
			// No longer followed, or stale.
		case next:
			// Fetched again (asked for meanwhile, or a gap below): it
			// waits for that snapshot.
			p.buf = append(p.buf, *b)
			p.bufOps += len(b.ops)
		case b.first > seq+1:
			// A gap: what is missing is newer than the snapshot.
			c.st.gaps++
			p.next[k] = struct{}{}
			p.buf = append(p.buf, *b)
			p.bufOps += len(b.ops)
		default:
			from := int(seq + 1 - b.first)
			to := min(len(b.ops), from+budget)
			c.apply(p, b.ops[from:to])
			p.logs[k] = b.first + uint64(to) - 1
			if budget -= to - from - 1; to < len(b.ops) {
				return // the rest of b in the next piece
			}
		}
		f.left -= len(b.ops)
		f.replay[f.pos] = batch{}
		f.pos++
	}
	if f.pos == len(f.replay) && !c.takeReplay(p) {
		c.endSync(p)
	}
}

// endSync ends a sync whose snapshot is applied and whose buffered
// batches are replayed; the buckets asked for meanwhile are fetched next.
func (c *core) endSync(p *peer) {
	p.fin.close()
	p.fin = nil
	p.syncAll = false
	clear(p.syncSet)
	p.req, p.snapID, p.snapSeqs, p.pages = 0, 0, nil, nil
	c.st.fetches++
	c.fetchGen++
	c.startSync(p) // up, unless buckets wait to be fetched
}

// keep buffers b until the snapshot of its bucket is applied and
// replayed; a buffer over maxBuffered ops, with the replay under way, is
// emptied, and what it lost shows as a gap later.
func (c *core) keep(p *peer, b batch) {
	replaying := 0
	if p.fin != nil && p.fin.phase == finReplay {
		replaying = p.fin.left
	}
	if p.bufOps+replaying+len(b.ops) > maxBuffered {
		p.buf, p.bufOps = nil, 0
		return
	}
	p.buf = append(p.buf, b.clone())
	p.bufOps += len(b.ops)
}

// apply applies the ops of the topics this node follows.
func (c *core) apply(p *peer, ops []op) {
	for i := range ops {
		o := &ops[i]
		if !c.wants(o.topic) {
			continue
		}
		k := rkey{o.socket, o.topic}
		if o.kind == opTrack {
			c.track(p, k, o)
		} else {
			c.untrack(p, k)
		}
	}
	c.st.deltasApplied += uint64(len(ops))
}

// track records and stores a remote entry. o's strings may point into a
// message: what is kept is copied, and an update of an entry held is
// written in place, without allocating.
func (c *core) track(p *peer, k rkey, o *op) {
	e := p.want[k]
	if e == nil {
		e = &rentry{topic: strings.Clone(k.topic), key: strings.Clone(o.key), meta: bytes.Clone(o.meta), ref: o.ref}
		k.topic = e.topic
		p.want[k] = e
		c.rtopics[e.topic]++
		rs := p.socks[k.socket]
		if rs == nil {
			rs = &rsock{id: c.nextID}
			c.nextID++
			p.socks[k.socket] = rs
		}
		rs.n++
	} else {
		k.topic = e.topic
		if e.key != o.key {
			e.key = strings.Clone(o.key)
		}
		e.meta = append(e.meta[:0], o.meta...)
		e.ref = o.ref
	}
	c.store(p, k, e)
}

// store writes a remote entry into the engine; a refusal is counted,
// logged (once per node until all its entries are stored), and retried by
// tick. k.topic is e.topic.
func (c *core) store(p *peer, k rkey, e *rentry) {
	res, err := c.e.TrackWithRef(p.socks[k.socket].id, e.topic, e.key, e.meta, e.ref)
	if err != nil {
		if errors.Is(err, engine.ErrFull) {
			c.st.remoteFull++
		} else {
			c.st.remoteRejects++
		}
		if _, ok := p.failed[k]; !ok {
			if len(p.failed) == 0 { // once until all are stored, not per entry
				c.log.Warn("cluster: remote entries cannot be stored; retrying (see Stats and Nodes)", "node", p.name, "topic", e.topic, "key", e.key, "err", err)
			}
			p.failed[k] = struct{}{}
		}
		return
	}
	if len(p.failed) > 0 {
		delete(p.failed, k)
	}
	if res != engine.Unchanged {
		c.notify[e.topic] = struct{}{}
	}
}

func (c *core) untrack(p *peer, k rkey) {
	e := p.want[k]
	if e == nil {
		return
	}
	delete(p.want, k)
	delete(p.failed, k)
	c.lessRemote(e.topic)
	rs := p.socks[k.socket]
	if c.e.Untrack(rs.id, e.topic) {
		c.notify[e.topic] = struct{}{}
	}
	if rs.n--; rs.n == 0 {
		delete(p.socks, k.socket)
	}
}

func (c *core) lessRemote(topic string) {
	if c.rtopics[topic]--; c.rtopics[topic] <= 0 {
		delete(c.rtopics, topic)
	}
}

// drop removes every entry of p from the engine and forgets what p
// published; a sync in progress ends.
func (c *core) drop(p *peer) {
	for k := range p.want {
		c.notify[k.topic] = struct{}{}
		c.lessRemote(k.topic)
	}
	for _, rs := range p.socks {
		c.e.UntrackAll(rs.id)
	}
	clear(p.want)
	clear(p.socks)
	clear(p.failed)
	clear(p.logs)
	clear(p.hb)
	clear(p.syncSet)
	clear(p.next)
	p.syncAll = false
	p.fin.close()
	p.req, p.snapID, p.snapSeqs, p.pages, p.fin = 0, 0, nil, nil, nil
	p.buf, p.bufOps = nil, 0
	c.fetchGen++
}
