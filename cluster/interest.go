package cluster

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Interest: which remote entries this node mirrors.
//
// Topics are hashed into nbuckets buckets (Config.Buckets). Each node publishes its deltas
// as one ordered log per bucket, on the bucket's subject, and its
// heartbeat carries every used bucket's last sequence. Under Interest a
// node follows a topic while a local socket is in it (join, leave) and for
// the linger after; it subscribes to the subjects of the buckets of the
// topics it follows, applies the ops of those topics only, and fetches a
// topic's entries on the first join from the nodes whose heartbeat shows
// they published in its bucket, as a snapshot of that bucket: the same
// ordered logs, gaps and snapshots as under All, per bucket. Under All
// every bucket is followed.
//
// A bucket rather than a subject per topic: a heartbeat can then carry
// every log's sequence in a bounded size (at most nbuckets pairs), so that
// a lost last batch of any followed topic shows as a gap within a
// heartbeat, as it does for the whole log under All: a batch is lost
// when it is still missing at the heartbeat after the one that announced
// it. A heartbeat that comes within half a period of the previous one (a
// node heartbeats at once after a flush that opened a bucket, and to greet
// a new node) judges nothing, so that the batches still on their way are
// not taken for lost. A bucket a node opens after this node began to
// follow it is fetched from it at the heartbeat that shows it: its first
// batches may have gone out before this node subscribed. The price is that a batch reaches the nodes that follow another
// topic of the same bucket: with B buckets and T topics, the followers
// of about T/B other topics.
//
// Memory: a heartbeat holds at most B pairs (40 KiB on the wire at the
// default 8192), one per bucket its node ever published in, and a node
// keeps per peer the last heartbeat's pairs and the sequences of the
// buckets it follows: at most about 40 bytes a bucket a peer (320 KiB at
// 8192), that much only once the peer has published in every bucket.

// interest is a topic followed: n local subscribers, and while n is 0,
// until, when its remote entries go.
type interest struct {
	n     int
	until int64
}

func (c *core) bucketOf(topic string) uint32 {
	return uint32(xxhash.Sum64String(topic) % uint64(c.nbuckets))
}

// follows reports whether this node applies the deltas of bucket k.
func (c *core) follows(k uint32) bool { return c.replicate == All || c.bcount[k] > 0 }

// wants reports whether this node mirrors topic's remote entries.
func (c *core) wants(topic string) bool {
	if c.replicate == All {
		return true
	}
	_, ok := c.interest[topic]
	return ok
}

// join records a local subscriber of topic. On the first, unless the
// topic lingers, the node follows the topic and fetches its entries from
// the nodes that published in its bucket: fetched tells when they are in.
func (c *core) join(topic string) {
	if c.replicate == All {
		return
	}
	if in := c.interest[topic]; in != nil {
		in.n++
		return
	}
	c.interest[topic] = &interest{n: 1}
	k := c.bucketOf(topic)
	if c.bcount[k]++; c.bcount[k] == 1 {
		c.followedAt[k] = c.now
		if c.subscribe != nil {
			c.subscribe(k, true)
		}
	}
	for _, p := range c.peers {
		if _, queued := p.next[k]; p.state == StateDown || queued || p.current(k) && p.fin == nil {
			continue // down, or fetching k already: its snapshot holds topic
		}
		if p.hb[k] > 0 || p.logs[k] > 0 {
			c.syncBuckets(p, k)
		}
	}
}

// leave undoes one join; after the last, the topic lingers.
func (c *core) leave(topic string) {
	in := c.interest[topic]
	if in == nil || in.n == 0 {
		return
	}
	if in.n--; in.n == 0 {
		in.until = c.now + c.linger
	}
}

// fetched reports whether topic's entries are in from every live node
// asked for them.
func (c *core) fetched(topic string) bool {
	k := c.bucketOf(topic)
	for _, p := range c.peers {
		if p.state != StateDown && p.syncing(k) {
			return false
		}
	}
	return true
}

// expireLinger drops the topics whose linger ended.
func (c *core) expireLinger(now int64) {
	var gone map[string]struct{}
	for topic, in := range c.interest {
		if in.n == 0 && now >= in.until {
			if gone == nil {
				gone = map[string]struct{}{}
			}
			gone[topic] = struct{}{}
		}
	}
	if gone != nil {
		c.dropTopics(gone)
	}
}

// dropTopics stops following the topics gone: their remote entries go, in
// one pass over the remote entries however many topics go at once (after
// a mass disconnect, thousands), and the subscription to a bucket too when
// no other followed topic is in it.
func (c *core) dropTopics(gone map[string]struct{}) {
	for topic := range gone {
		delete(c.interest, topic)
		c.st.lingerDrops++
	}
	for _, p := range c.peers {
		for k := range p.want {
			if _, ok := gone[k.topic]; ok {
				c.untrack(p, k)
			}
		}
	}
	for topic := range gone {
		c.unfollow(c.bucketOf(topic))
	}
	c.fetchGen++
}

// unfollow undoes the following of bucket k by one topic.
func (c *core) unfollow(k uint32) {
	if c.bcount[k]--; c.bcount[k] > 0 {
		return
	}
	delete(c.bcount, k)
	delete(c.followedAt, k)
	if c.subscribe != nil {
		c.subscribe(k, false)
	}
	for _, p := range c.peers {
		delete(p.logs, k)
		_, now := p.syncSet[k]
		_, next := p.next[k]
		if !now && !next {
			continue
		}
		delete(p.syncSet, k)
		delete(p.next, k)
		p.buf = slices.DeleteFunc(p.buf, func(b batch) bool { return b.bucket == k })
		p.bufOps = 0
		for _, b := range p.buf {
			p.bufOps += len(b.ops)
		}
		if !p.syncAll && len(p.syncSet) == 0 {
			c.startSync(p) // nothing left to fetch: up
		}
	}
}
