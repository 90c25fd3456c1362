package shard

// Event kinds.
const (
	evJoin  = 1
	evLeave = 2
	// evInPlace marks both events of an update in place: a reader may
	// rebuild a topic across them (appendAsOf), but not across a leave and
	// a join of the same socket that moved the entry to the end.
	evInPlace = 4
)

// Event words. An event copies what it describes, because the slot it came
// from may be reused before a reader asks.
const (
	evSeq   = iota // the event's number; 0 while the event is rewritten
	evKind         // kind (| evInPlace) | topic name length<<8
	evLens         // as slotLens
	evRef          // the entry's ref
	evLink         // join: seq of the leave that ended it; leave: seq of its join
	evHash         // the topic's hash
	evOwner        // the entry's owner
	evHdr          // topic name words, then key words, then meta words
)

// history is a shard's ring of the latest change events, numbered from 1.
// Writers append under the shard lock; each event is its own seqlock, keyed
// by its number, so a reader detects an event overwritten under it.
type history struct {
	head   uint64 // number of the latest event; reader-visible
	mask   uint64
	stride int
	words  []uint64
}

func (h *history) init(p *Pool, n int) {
	h.mask = uint64(n - 1)
	h.stride = evHdr + wordsFor(p.cfg.MaxTopic) + p.payloadWords
	h.words = make([]uint64, n*h.stride)
}

func (h *history) size() uint64 { return h.mask + 1 }

func (h *history) event(seq uint64) []uint64 {
	i := int(seq & h.mask)
	return h.words[i*h.stride : (i+1)*h.stride]
}

// append records an event for the entry in slot w of topic record rec, and
// returns its number. The caller holds the shard lock.
func (h *history) append(kind uint64, rec, w []uint64, link uint64) uint64 {
	seq := h.head + 1
	e := h.event(seq)
	lens := w[slotLens]
	nameLen := rec[topicNameLen]
	storeSeq(&e[evSeq], 0)
	store(&e[evKind], kind|nameLen<<8)
	store(&e[evLens], lens)
	store(&e[evRef], w[slotRef])
	store(&e[evLink], link)
	store(&e[evHash], rec[topicHash])
	store(&e[evOwner], w[slotOwner])
	// Name, key and meta are packed, so that an event touches few cache
	// lines; the payload is copied as the slot lays it out.
	nw := wordsFor(int(nameLen))
	copyWords(e[evHdr:evHdr+nw], rec[topicHdr:topicHdr+nw])
	pw := payloadWords(lens)
	copyWords(e[evHdr+nw:evHdr+nw+pw], w[slotHdr:slotHdr+pw])
	storeSeq(&e[evSeq], seq)
	if kind&^evInPlace == evLeave && link != 0 && seq-link < h.size() {
		// The join is still held: mark it ended, so a reader whose range
		// holds both drops the pair.
		store(&h.event(link)[evLink], seq)
	}
	storeSeq(&h.head, seq)
	return seq
}
