package cluster

import (
	"cmp"
	"errors"
	"slices"

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
