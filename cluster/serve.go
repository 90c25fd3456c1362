package cluster

import (
	"cmp"
	"maps"
	"slices"

	"github.com/presencekit/presence/engine"
)

// The owner's snapshots, served in pages without holding the node's lock
// for a copy of them all.
//
// Taking a snapshot records the buckets' sequences and the published
// map of each topic concerned, which together are exactly the entries
// through those sequences, since both change together (publish, under
// the lock). The maps are not copied then: while a snapshot may still
// read a topic's map, the topic is shared, and the owner copies the map
// (own) before it next changes it, leaving the snapshot's map as it was.
// Each page request encodes only the entries it sends, so that the lock
// is held, per request, for about a page (pageBytes) and for listing the
// socket IDs of one topic; taking the snapshot costs a look at each
// published topic, and a change to a shared topic costs a copy of that
// topic's map, once (about 7 ms for a topic of 100,000 entries, listing
// included, on a loaded 2-core machine). The maps a snapshot has not
// read yet stay in memory until it has read them or expires: at most one
// copy of a topic's map per snapshot kept (maxSnaps), since each copy
// follows a snapshot's take.

// ownSnap is this node's published entries at one instant, served in
// pages: pages holds those encoded so far, in order, and topics the maps
// the rest are read from.
type ownSnap struct {
	id    uint64
	seqs  []bseq
	taken int64
	asked int64  // when a page of it was last asked for
	node  string // the node it was taken for
	pages []servedPage
	read  int // entries encoded into pages
	total int // entries in all
	// topics are the maps still to read, as they were when taken; the
	// first is being read, and keys holds its socket IDs not read yet.
	topics []snapTopic
	keys   []engine.SocketID
	listed bool // keys lists topics[0]
}

// servedPage is a page's entries, encoded, kept so that a request asked
// twice gets the same answer.
type servedPage struct {
	offset int
	n      int
	body   []byte
}

type snapTopic struct {
	topic string
	m     map[engine.SocketID]pubEntry
}

func (c *core) onSyncReq(h header, q syncReq) {
	if q.nbuckets != c.nbuckets {
		return // its buckets hold other topics: see onHeartbeat
	}
	var s *ownSnap
	switch {
	case q.snap != 0:
		for _, x := range c.snaps {
			if x.id == q.snap {
				s, x.asked = x, c.now
			}
		}
	case q.offset == 0:
		// A node reads one snapshot of this node at a time: asking for
		// a new one, it gave up those it asked for before.
		c.forgetSnapsOf(h.node)
		if s = c.takeSnap(q.all, q.buckets); s == nil {
			// Every snapshot kept is being read: no answer, and the
			// receiver asks again after its sync timeout, by when one
			// is served or abandoned. Answering it as unknown would
			// make it ask again at once.
			return
		}
		s.node = h.node
	}
	pg := syncPage{req: q.req}
	var sp *servedPage
	if s != nil {
		sp = c.page(s, q.offset)
	}
	// An offset where no page starts is none a receiver asks for (it
	// asks for the entries after those it received): it is answered as
	// an unknown snapshot.
	var body []byte
	n := 0
	if sp != nil {
		pg.snap, pg.offset, pg.more = s.id, q.offset, sp.offset+sp.n < s.total
		if q.offset == 0 {
			pg.seqs = s.seqs
		}
		body, n = sp.body, sp.n
	}
	b := appendHeader(make([]byte, 0, len(body)+64), kindSyncPage, c.name, c.inc)
	b = appendSyncPageHead(b, &pg, n)
	b = append(b, body...)
	c.send(c.subj.reply(h.node), b)
}

// page returns s's page at offset: one served already, or the next, read
// now; nil if no page starts there.
func (c *core) page(s *ownSnap, offset uint64) *servedPage {
	i, found := slices.BinarySearchFunc(s.pages, offset, func(p servedPage, off uint64) int {
		return cmp.Compare(uint64(p.offset), off)
	})
	switch {
	case found:
		return &s.pages[i]
	case offset == uint64(s.read) && (s.read < s.total || len(s.pages) == 0):
		return c.readPage(s)
	}
	return nil
}

// readPage encodes s's next page, of about c.pageBytes and at least one
// entry, from the maps taken: it lists the socket IDs of one topic at
// most.
func (c *core) readPage(s *ownSnap) *servedPage {
	p := servedPage{offset: s.read, body: make([]byte, 0, min(c.pageBytes, pageBytes)+256)}
	for len(s.topics) > 0 && (p.n == 0 || len(p.body) < c.pageBytes) {
		t := &s.topics[0]
		if !s.listed {
			s.keys = s.keys[:0]
			for k := range t.m {
				s.keys = append(s.keys, k)
			}
			s.listed = true
		}
		for len(s.keys) > 0 && (p.n == 0 || len(p.body) < c.pageBytes) {
			k := s.keys[len(s.keys)-1]
			s.keys = s.keys[:len(s.keys)-1]
			pe := t.m[k]
			p.body = appendTrack(p.body, uint64(k), t.topic, pe.key, pe.meta, pe.ref)
			p.n++
		}
		if len(s.keys) == 0 {
			s.topics[0] = snapTopic{}
			s.topics, s.listed = s.topics[1:], false
			if len(s.topics) == 0 {
				c.doneReading(s)
			}
		}
	}
	s.read += p.n
	s.pages = append(s.pages, p)
	return &s.pages[len(s.pages)-1]
}

// takeSnap takes a snapshot of the published entries of the topics in
// buckets, or of every topic if all: see the top of this file. With
// maxSnaps kept and each being read, it takes none and returns nil.
func (c *core) takeSnap(all bool, buckets []uint32) *ownSnap {
	if len(c.snaps) == maxSnaps && !c.evictIdle() {
		return nil
	}
	c.endBatch()
	c.ids++
	s := &ownSnap{id: c.ids, seqs: c.seqsOf(all, buckets), taken: c.now, asked: c.now}
	var in map[uint32]struct{}
	if !all {
		in = make(map[uint32]struct{}, len(buckets))
		for _, k := range buckets {
			in[k] = struct{}{}
		}
	}
	for topic, m := range c.pub {
		if !all {
			if _, ok := in[c.bucketOf(topic)]; !ok {
				continue
			}
		}
		s.topics = append(s.topics, snapTopic{topic, m})
		s.total += len(m)
		c.shared[topic] = struct{}{}
	}
	if len(s.topics) > 0 {
		c.reading++
	}
	c.snaps = append(c.snaps, s)
	c.st.snapshotsServed++
	return s
}

// doneReading forgets the maps s still reads; once no snapshot reads any,
// no topic is shared.
func (c *core) doneReading(s *ownSnap) {
	s.topics, s.keys = nil, nil
	if c.reading--; c.reading == 0 {
		clear(c.shared)
	}
}

// evictIdle forgets the oldest snapshot that no receiver reads any more:
// served to its last page, or not asked for within a sync timeout (its
// receiver has asked for a new one since). It reports whether it found
// one. Forgetting a snapshot still being read instead would make its
// receiver start over, taking a snapshot that forgets another's: with
// more receivers than maxSnaps at once, none would ever end.
func (c *core) evictIdle() bool {
	for i, s := range c.snaps {
		if len(s.pages) > 0 && s.read == s.total || c.now-s.asked > c.syncTimeout() {
			c.evictSnap(i)
			return true
		}
	}
	return false
}

// forgetSnapsOf forgets the snapshots taken for node.
func (c *core) forgetSnapsOf(node string) {
	for i := len(c.snaps) - 1; i >= 0; i-- {
		if c.snaps[i].node == node {
			c.evictSnap(i)
		}
	}
}

// evictSnap forgets snapshot i.
func (c *core) evictSnap(i int) {
	if s := c.snaps[i]; len(s.topics) > 0 {
		c.doneReading(s)
	}
	c.snaps = slices.Delete(c.snaps, i, i+1)
}

// own returns topic's published map m, to be changed: a copy of it if a
// snapshot may still read it, then kept as the topic's map.
func (c *core) own(topic string, m map[engine.SocketID]pubEntry) map[engine.SocketID]pubEntry {
	if len(c.shared) == 0 || m == nil {
		return m
	}
	if _, ok := c.shared[topic]; !ok {
		return m
	}
	delete(c.shared, topic)
	m = maps.Clone(m)
	c.pub[topic] = m
	return m
}
