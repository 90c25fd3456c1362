package shard

import "github.com/presencekit/presence/jsonwriter"

// KeyMark names one key record as it was when a page read it: its index+1
// and its generation. A record reused for another key has another
// generation, so a stale mark is detected.
type KeyMark struct {
	Key uint32
	Gen uint64
}

// PagePos is where a page starts: Last is the last key of the page before
// and First the key that followed it then. Horizon is the walk's end: the
// shard's key generation at the instant of the walk's first page, so that
// every key of the topic then has a generation up to it, and every key that
// joins later, or leaves and comes back, one above it. The zero PagePos is
// the start of the topic, and of a walk.
type PagePos struct {
	Last, First KeyMark
	Horizon     uint64
}

// IsZero reports whether pos is the start of the topic.
func (pos PagePos) IsZero() bool { return pos == PagePos{} }

// PageResult is what AppendPage read.
type PageResult struct {
	Keys, Entries           int     // written
	TopicKeys, TopicEntries int     // the topic's, at the page's instant
	Next                    PagePos // zero when the page reached the walk's horizon or the topic's end
	// Rescanned is set when both keys of the position had left the topic,
	// and the page was found by walking the key order from its start.
	Rescanned bool
}

// ValidPos reports whether pos could have been made by a page of a topic
// of this shard: marks in range, with this shard's generations, in key
// order, up to a horizon that this shard's key generation has reached.
func (s *Shard) ValidPos(pos PagePos) bool {
	if pos.IsZero() {
		return true
	}
	n := uint64(len(s.p.keys.info))
	for _, m := range [2]KeyMark{pos.Last, pos.First} {
		if m.Key == 0 || uint64(m.Key) > n || !s.ownGen(m.Gen) {
			return false
		}
	}
	return pos.Last.Gen < pos.First.Gen && pos.First.Gen <= pos.Horizon &&
		s.ownGen(pos.Horizon) && pos.Horizon <= s.keyGenNow()
}

// ownGen reports whether g is a key generation this shard may have made.
func (s *Shard) ownGen(g uint64) bool {
	return g != 0 && g&(1<<keyGenShardBits-1) == uint64(s.id)
}

// AppendPage writes the entries of up to limit keys of a topic, in key
// order, from pos on: a key's entries together, in the order they came to
// it. It is a read of one instant of the topic, as AppendEntries is, with
// the same bound: OptimisticReads windows, then one under the shard's
// mutex. The caller checks pos with ValidPos and limit >= 1.
//
// The page starts at pos.First if that key is still in the topic, else
// after pos.Last if that one is; no key can have joined between them,
// since keys join at the end. If both have left, it walks the key order
// from its start to the first key that joined after pos.Last: O(keys
// before the page), the only read here that is not O(page), about 6 ns a
// key. The page ends before the first key that joined after pos.Horizon
// (keys join at the end, so the rest did too), and its Next is zero when
// it reached that key or the topic's end. A zero pos sets the horizon to
// the shard's key generation at the page's instant, so a walk from it
// pages the keys present then, each at most once, and never a key that
// came later.
func (s *Shard) AppendPage(w *jsonwriter.Writer, f Form, topic string, hash uint64, pos PagePos, limit int) PageResult {
	mark := w.Mark()
	for attempt := 0; attempt < s.p.cfg.ReadAttempts; attempt++ {
		if r, ok := s.appendPage(w, f, topic, hash, pos, limit); ok {
			return r
		}
		w.Rewind(mark)
		s.p.backoff(attempt)
	}
	s.lockForRead()
	r, _ := s.appendPage(w, f, topic, hash, pos, limit)
	s.mu.Unlock()
	return r
}

// liveMark returns the record m names if it still holds the same key in
// topic t, or -1.
func (p *Pool) liveMark(m KeyMark, t int32) int32 {
	k := int32(m.Key) - 1
	if k < 0 || int(k) >= len(p.keys.info) {
		return -1
	}
	if load(p.keys.word(k, keyGen)) != m.Gen || load(p.keys.word(k, keyTopic)) != uint64(t+1) {
		return -1
	}
	return k
}

// appendPage is one read window of AppendPage; ok is false when what it
// wrote must be discarded, never when the caller holds s.mu.
func (s *Shard) appendPage(w *jsonwriter.Writer, f Form, topic string, hash uint64, pos PagePos, limit int) (r PageResult, ok bool) {
	p := s.p
	t, tseq, _, ok := s.lookup(topic, hash, false)
	if !ok || t < 0 {
		return r, ok
	}
	rec := p.topic(t)
	c := load(&rec[topicCount])
	r.TopicKeys, r.TopicEntries = keysOf(c), entriesOf(c)
	nkeys := uint64(len(p.keys.info))
	ks := &p.keys

	// The walk's horizon. A key that joins this topic takes its generation
	// inside the topic's window: one already in this read did so before
	// the window opened, and one that joins later does so after it closed,
	// so after this load, or it spoils the window.
	horizon := pos.Horizon
	if pos.IsZero() {
		horizon = s.keyGenNow()
	}

	var k uint64 // key+1 the page starts at
	switch {
	case pos.IsZero():
		k = load(&rec[topicKeys])
	case p.liveMark(pos.First, t) >= 0:
		k = uint64(pos.First.Key)
	case p.liveMark(pos.Last, t) >= 0:
		k = load(ks.word(int32(pos.Last.Key)-1, keyNext))
	default:
		r.Rescanned = true
		k = load(&rec[topicKeys])
		for steps := 0; k != 0; steps++ {
			if k > nkeys || steps > r.TopicKeys {
				return r, false // torn link
			}
			if load(ks.word(int32(k-1), keyGen)) > pos.Last.Gen {
				break
			}
			k = load(ks.word(int32(k-1), keyNext))
			if steps%readChunk == readChunk-1 && load(&rec[topicSeq]) != tseq {
				return r, false
			}
		}
	}

	nslots := uint64(p.cfg.Slots)
	var last KeyMark
	for k != 0 && r.Keys < limit {
		if k > nkeys || r.Keys >= r.TopicKeys {
			return r, false // torn link
		}
		kw := ks.words[(k-1)*keyStride : k*keyStride : k*keyStride]
		gen := load(&kw[keyGen])
		if gen > horizon {
			k = 0 // joined after the walk began, as did every key after it
			break
		}
		last = KeyMark{Key: uint32(k), Gen: gen}
		for e := load(&kw[keyFirst]); e != 0; r.Entries++ {
			if e > nslots || r.Entries >= r.TopicEntries {
				return r, false // torn link
			}
			sw := p.slot(int32(e - 1))
			if f == JSON {
				s.emitJSON(w, r.Entries == 0, load(&sw[slotLens]), sw[slotHdr:])
			} else {
				s.emit(w, f, r.Entries == 0, KindEntry, load(&sw[slotOwner]), load(&sw[slotRef]), load(&sw[slotLens]), sw[slotHdr:])
			}
			e = load(&sw[slotKeyNext])
		}
		k = load(&kw[keyNext])
		r.Keys++
		if r.Keys%readChunk == 0 && load(&rec[topicSeq]) != tseq {
			return r, false
		}
	}
	if k != 0 {
		if gen := load(ks.word(int32(k-1), keyGen)); gen <= horizon {
			r.Next = PagePos{Last: last, First: KeyMark{Key: uint32(k), Gen: gen}, Horizon: horizon}
		}
	}
	return r, load(&rec[topicSeq]) == tseq
}

// CountKeys returns a topic's keys and entries, read at one instant.
func (s *Shard) CountKeys(topic string, hash uint64) (keys, entries int) {
	for attempt := 0; attempt < s.p.cfg.ReadAttempts; attempt++ {
		if c, ok := s.countWord(topic, hash); ok {
			return keysOf(c), entriesOf(c)
		}
		s.p.backoff(attempt)
	}
	s.lockForRead()
	c, _ := s.countWord(topic, hash)
	s.mu.Unlock()
	return keysOf(c), entriesOf(c)
}

// countWord reads a topic's count word inside a read window; ok is false
// when the window must be retried, never when the caller holds s.mu.
func (s *Shard) countWord(topic string, hash uint64) (c uint64, ok bool) {
	t, tseq, _, ok := s.lookup(topic, hash, false)
	if !ok || t < 0 {
		return 0, ok
	}
	rec := s.p.topic(t)
	c = load(&rec[topicCount])
	return c, load(&rec[topicSeq]) == tseq
}
