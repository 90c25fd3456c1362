package shard

import "sync"

// Shard holds the topics whose hash selects it: their index, their member
// lists and their change history. Its writers are serialized by its mutex;
// its readers take no lock.
type Shard struct {
	// What readers load, in a cache line that writers store to only when
	// they link or unlink a topic.
	//
	// seq is the seqlock of the topic index: odd while a writer links or
	// unlinks a topic record.
	seq    uint64
	p      *Pool
	id     int32
	mask   uint64
	topics []uint64 // bucket heads, topic+1, reader-visible
	_      [64 - 56]byte

	// What only writers touch, in lines of their own: a Track's lock and
	// ref counter no longer take the readers' line from the other core.
	mu    sync.Mutex
	refs  uint64  // ref counter; see nextRef
	pairs []int32 // bucket heads, slot+1, writer-only
	// scratch holds an entry rendered with an escaped key; moveBuf holds
	// bytes a block move copies, in the all-atomic build.
	scratch, moveBuf []byte
	keyHeads         []int32 // key record buckets, key+1, writer-only (keys.go)
	spareKey         int32   // a free key record kept for this shard's next key, key+1
	// keySeq counts key joins (nextKeyGen); readers load it for a walk's
	// horizon. Placed after spareKey it is 8-aligned on 32-bit targets
	// too, and ends the writers' two lines.
	keySeq uint64

	hist history
	// To a whole number of lines, so that the next shard of the array
	// starts on a line of its own.
	_ [128 - 48]byte
}

// Outcome says what a Track did.
type Outcome uint8

const (
	Added     Outcome = iota + 1 // a new entry
	Updated                      // new key or meta for the pair, with a new ref
	Unchanged                    // same key and meta: nothing changed
)

func (s *Shard) init(p *Pool, id, buckets int) {
	s.p = p
	s.id = int32(id)
	s.mask = uint64(buckets - 1)
	s.topics = make([]uint64, buckets)
	s.pairs = make([]int32, buckets)
	s.keyHeads = make([]int32, buckets)
	s.hist.init(p, p.cfg.History)
	if p.blockBytes > 0 {
		s.scratch = make([]byte, 0, p.blockBytes)
		s.moveBuf = make([]byte, p.bigBytes)
	}
}

func (s *Shard) topicBucket(hash uint64) uint64 { return (hash >> 32) & s.mask }

func (s *Shard) pairBucket(owner uint64, topic int32) uint64 {
	return mix64(owner^s.p.owners.seed^uint64(topic)<<40) & s.mask
}

// refCounterBits is the width of a shard's ref counter: a generated ref is
// RefTag<<48 | counter<<10 | shard id, so it is unique among the refs of one
// pool and differs from every ref of a pool with another RefTag. The
// counter wraps after 2^38 refs of one shard, skipping 0.
const refCounterBits = 38

func (s *Shard) nextRef() uint64 {
	s.refs = (s.refs + 1) & (1<<refCounterBits - 1)
	if s.refs == 0 {
		s.refs = 1
	}
	return s.p.cfg.RefTag<<48 | s.refs<<10 | uint64(s.id)
}

// findTopic returns the topic record for a topic in this shard, or -1. The
// caller holds s.mu.
func (s *Shard) findTopic(topic string, hash uint64) int32 {
	for t := int32(s.topics[s.topicBucket(hash)]); t != 0; {
		rec := s.p.topic(t - 1)
		if rec[topicHash] == hash && nameEqual(rec[topicNameLen], rec[topicHdr:], topic) {
			return t - 1
		}
		t = int32(rec[topicChain])
	}
	return -1
}

// findPair returns the slot of (owner, topic), or -1. The caller holds s.mu.
func (s *Shard) findPair(owner uint64, topic int32) int32 {
	for i := s.pairs[s.pairBucket(owner, topic)]; i != 0; i = s.p.info[i-1].pairNext {
		in := &s.p.info[i-1]
		if in.owner == owner && in.topic == topic {
			return i - 1
		}
	}
	return -1
}

// nameEqual compares the name of length n held in words with name. It loads
// atomically, so it is also safe inside a read window.
func nameEqual(n uint64, words []uint64, name string) bool {
	if n != uint64(len(name)) {
		return false
	}
	i := 0
	for ; len(name)-i >= 8; i += 8 {
		if load(&words[i/8]) != le64(name[i:]) {
			return false
		}
	}
	if i < len(name) {
		mask := uint64(1)<<(8*(len(name)-i)) - 1
		return load(&words[i/8])&mask == le64tail(name[i:])
	}
	return true
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le64tail(s string) uint64 {
	var v uint64
	for i := len(s) - 1; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	return v
}

// Track stores key and meta for (socket, topic). The caller has validated
// the inputs; escape says whether the key needs JSON escaping. hash is
// Pool.HashTopic(topic) and selects this shard. ref is the entry's new ref,
// or 0 for one the shard generates. A new pair is refused with
// ErrSocketLimit if the socket holds MaxPerSocket entries, else with
// ErrFull if the pool, or the local sockets' share of it, is full, each
// judged at one instant during the call.
func (s *Shard) Track(socket uint64, topic string, hash uint64, key string, escape bool, meta []byte, ref uint64) (Outcome, uint64, error) {
	p := s.p
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTopic(topic, hash)
	if t >= 0 {
		if i := s.findPair(socket, t); i >= 0 {
			out, ref := s.update(i, t, key, escape, meta, ref)
			return out, ref, nil
		}
	}
	// The entry is counted inside the read window of its topic (or, for a
	// new topic, of the shard's topic index), so that a reader of the topic
	// sees it from the instant Len, SocketLen and other Tracks count it.
	newTopic := t < 0
	if newTopic {
		t = s.newTopic(topic, hash)
	}
	rec := p.topic(t)
	window := &rec[topicSeq]
	if newTopic {
		window = &s.seq
	}
	i, err := p.claimSlot(socket, s.id, window)
	if err != nil {
		if newTopic {
			p.freeTopics.push(t)
		}
		return 0, 0, err
	}
	in := &p.info[i]
	in.topic = t
	if ref == 0 {
		ref = s.nextRef()
	}
	w := p.slot(i)
	// The slot is not reachable from any member list yet, but a reader still
	// walking a list it was unlinked from may read it: that reader's topic
	// sequence has moved, so it discards what it reads.
	store(&w[slotLens], packLens(len(key), len(meta), escape))
	store(&w[slotRef], ref)
	store(&w[slotNext], 0)
	store(&w[slotOwner], socket)
	writePayload(w[slotHdr:], key, meta)

	tail := p.topicTail[t]
	if tail == 0 {
		store(&rec[topicHead], uint64(i+1))
	} else {
		store(&p.slot(tail - 1)[slotNext], uint64(i+1))
	}
	in.prev = tail
	p.topicTail[t] = i + 1
	store(&rec[topicCount], rec[topicCount]+1)
	s.keyAdd(t, i, rec, key)
	s.renderAdded(t, i)
	in.joinEvent = s.hist.append(evJoin, rec, w, 0)
	if newTopic {
		s.linkTopic(t, hash)
	}
	seqEnd(window)

	b := s.pairBucket(socket, t)
	in.pairNext = s.pairs[b]
	s.pairs[b] = i + 1
	return Added, ref, nil
}

// update rewrites an existing entry. The caller holds s.mu.
func (s *Shard) update(i, t int32, key string, escape bool, meta []byte, ref uint64) (Outcome, uint64) {
	p := s.p
	w := p.slot(i)
	payload := bytesOf(w[slotHdr:])
	lens, old := packLens(len(key), len(meta), escape), w[slotLens]
	// The high half of lens holds the key's length and escape flag.
	sameKey := lens>>32 == old>>32 && string(payload[len(payloadOpen):][:len(key)]) == key
	if sameKey && lens == old && (ref == 0 || ref == w[slotRef]) &&
		string(payload[metaOffset(len(key)):][:len(meta)]) == string(meta) {
		return Unchanged, w[slotRef]
	}
	rec := p.topic(t)
	in := &p.info[i]
	if ref == 0 {
		ref = s.nextRef()
	}
	s.beginTopic(rec)
	s.hist.append(evLeave|evInPlace, rec, w, in.joinEvent)
	if !sameKey {
		// The entry moves to its new key, which joins the key order at
		// its end if the topic has no entry under it yet.
		s.keyRemove(t, i, rec)
	}
	store(&w[slotLens], lens)
	store(&w[slotRef], ref)
	if sameKey {
		writeMeta(w[slotHdr:], metaOffset(len(key)), meta)
	} else {
		writePayload(w[slotHdr:], key, meta)
		s.keyAdd(t, i, rec, key)
	}
	s.renderUpdated(t, rec, i)
	in.joinEvent = s.hist.append(evJoin|evInPlace, rec, w, 0)
	s.endTopic(rec)
	return Updated, ref
}

func (s *Shard) beginTopic(rec []uint64) { seqBegin(&rec[topicSeq]) }
func (s *Shard) endTopic(rec []uint64)   { seqEnd(&rec[topicSeq]) }

// newTopic claims and fills a record for a topic, without linking it. The
// caller holds s.mu, and links the record or pushes it back before
// unlocking.
func (s *Shard) newTopic(topic string, hash uint64) int32 {
	p := s.p
	t, ok := p.freeTopics.pop()
	if !ok {
		panic("shard: topic records exhausted")
	}
	rec := p.topic(t)
	// The record is unreachable until linked, but a reader that found it
	// under its old name may still hold it; moving seq discards that read.
	s.beginTopic(rec)
	store(&rec[topicCount], 0)
	store(&rec[topicHead], 0)
	store(&rec[topicKeys], 0)
	store(&rec[topicBlocks], 0)
	store(&rec[topicHash], hash)
	store(&rec[topicNameLen], uint64(len(topic)))
	copyInString(rec[topicHdr:topicHdr+wordsFor(len(topic))], topic)
	s.endTopic(rec)
	p.topicTail[t] = 0
	p.keys.tail[t] = 0
	return t
}

// linkTopic links record t into the topic index. The caller holds s.mu and
// the index's read window.
func (s *Shard) linkTopic(t int32, hash uint64) {
	b := s.topicBucket(hash)
	rec := s.p.topic(t)
	store(&rec[topicChain], s.topics[b])
	store(&s.topics[b], uint64(t+1))
}

// removeTopic unlinks and frees an empty topic record. The caller holds s.mu.
func (s *Shard) removeTopic(t int32) {
	p := s.p
	rec := p.topic(t)
	link := &s.topics[s.topicBucket(rec[topicHash])]
	for int32(*link) != t+1 {
		link = &p.topic(int32(*link) - 1)[topicChain]
	}
	seqBegin(&s.seq)
	store(link, rec[topicChain])
	seqEnd(&s.seq)
	s.forgetRender(t)
	p.freeTopics.push(t)
}

// Untrack removes the entry of (socket, topic) and reports whether there was
// one.
func (s *Shard) Untrack(socket uint64, topic string, hash uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTopic(topic, hash)
	if t < 0 {
		return false
	}
	i := s.findPair(socket, t)
	if i < 0 {
		return false
	}
	s.remove(i)
	return true
}

// remove deletes the entry in slot i. The caller holds s.mu.
func (s *Shard) remove(i int32) {
	p := s.p
	in := &p.info[i]
	t, owner := in.topic, in.owner
	rec := p.topic(t)
	w := p.slot(i)

	link := &s.pairs[s.pairBucket(owner, t)]
	for *link != i+1 {
		link = &p.info[*link-1].pairNext
	}
	*link = in.pairNext

	s.beginTopic(rec)
	next := int32(w[slotNext])
	if in.prev == 0 {
		store(&rec[topicHead], uint64(next))
	} else {
		store(&p.slot(in.prev - 1)[slotNext], uint64(next))
	}
	if next == 0 {
		p.topicTail[t] = in.prev
	} else {
		p.info[next-1].prev = in.prev
	}
	s.keyRemove(t, i, rec)
	count := rec[topicCount] - 1
	store(&rec[topicCount], count)
	s.renderRemoved(t, i, in.prev, uint64(next))
	s.hist.append(evLeave, rec, w, in.joinEvent)
	// Inside the window: the entry leaves readers, Len and the counts at
	// one instant, and its slot is free before it is uncounted.
	p.releaseSlot(owner, i)
	s.endTopic(rec)
	if entriesOf(count) == 0 {
		s.removeTopic(t)
	}
}
