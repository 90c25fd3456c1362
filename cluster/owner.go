package cluster

import (
	"encoding/binary"

	"github.com/presencekit/presence/engine"
)

// The owner's side: this node's entries published as an ordered log (the
// snapshots of them are served by serve.go).

// flushLocal publishes what changed in the local entries of topics since
// they were last published, as one or more ordered batches.
func (c *core) flushLocal(topics []string) {
	for _, t := range topics {
		c.diffTopic(t)
	}
	c.endFlush()
}

// endFlush publishes the last batch of a flush, and a heartbeat if the
// flush opened buckets: a node that does not follow such a bucket yet
// learns that this node publishes in it, so that its first join of a
// topic of the bucket asks this node now, not a heartbeat later. One
// heartbeat however many buckets were opened; at most one a bucket.
func (c *core) endFlush() {
	c.endBatch()
	if c.opened {
		c.heartbeat(kindHeartbeat)
	}
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
	if len(c.seen) > 0 {
		m = c.own(topic, m)
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
	} else {
		m = c.own(topic, m)
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
	for s := range m { // the map as it was: own may give m a copy below
		if _, ok := c.seen[s]; !ok {
			m = c.own(topic, m)
			delete(m, s)
			c.addOp(&op{kind: opUntrack, socket: uint64(s), topic: topic})
		}
	}
	if m != nil && len(m) == 0 {
		delete(c.pub, topic)
	}
}

// addOp adds o to the batch of its topic's bucket, after the batch of
// another bucket is published.
func (c *core) addOp(o *op) {
	k := c.bucketOf(o.topic)
	if c.opsN > 0 && k != c.opsBucket {
		c.endBatch()
	}
	c.bseq[k]++
	if c.opsN == 0 {
		c.first, c.opsBucket = c.bseq[k], k
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
	b := appendHeader(make([]byte, 0, len(c.ops)+40+len(c.name)), kindBatch, c.name, c.inc)
	b = binary.AppendUvarint(b, uint64(c.opsBucket))
	b = binary.AppendUvarint(b, c.first)
	b = binary.AppendUvarint(b, uint64(c.opsN))
	b = append(b, c.ops...)
	c.st.deltasSent += uint64(c.opsN)
	c.st.batchesSent++
	c.ops, c.opsN = c.ops[:0], 0
	c.send(c.subj.deltas(c.opsBucket), b)
	if c.first == 1 {
		c.opened = true // the bucket's first batch: see endFlush
	}
}

// seqsOf lists the sequences of the buckets used among buckets, or of
// every bucket used if all.
func (c *core) seqsOf(all bool, buckets []uint32) []bseq {
	var out []bseq
	if all {
		out = make([]bseq, 0, len(c.bseq))
		for k, s := range c.bseq {
			out = append(out, bseq{k, s})
		}
		return out
	}
	for _, k := range buckets {
		if s := c.bseq[k]; s > 0 {
			out = append(out, bseq{k, s})
		}
	}
	return out
}

func (c *core) heartbeat(kind byte) {
	c.endBatch() // the heartbeat's sequences must have been published
	b := appendHeader(nil, kind, c.name, c.inc)
	b = appendHeartbeat(b, heartbeat{seqs: c.seqsOf(true, nil), limits: c.limits, refTag: c.refTag, buckets: c.nbuckets})
	c.opened = false
	c.st.heartbeatsSent++
	c.send(c.subj.stream(c.name), b)
}

// heartbeatSoon brings the next heartbeat forward to a tenth of a
// heartbeat from now, or keeps it if it comes sooner, so that a joining
// node hears this one well before DownAfter, and the newcomers heard
// meanwhile share that heartbeat: N nodes starting together cost about 2N
// heartbeats, not N², each delivered to every node.
func (c *core) heartbeatSoon() { c.nextHB = min(c.nextHB, c.now+c.hb/10) }

// goodbye tells the others this node is leaving: they drop its entries at
// once.
func (c *core) goodbye() {
	c.endBatch()
	c.heartbeat(kindGoodbye)
}
