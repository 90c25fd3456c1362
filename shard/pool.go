package shard

import (
	"errors"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Errors returned by writers.
var (
	ErrFull        = errors.New("shard: all slots are in use")
	ErrSocketLimit = errors.New("shard: socket holds its maximum number of entries")
)

// FirstRemote is the first remote socket: sockets from FirstRemote up are
// remote, those below it local. Local sockets share Config.MaxLocal of the
// slots; remote ones may use all of them.
const FirstRemote = 1 << 63

// MaxKeyLimit is the largest MaxKey a Pool accepts; readers escape keys
// through a stack buffer of this size.
const MaxKeyLimit = 1024

// Config sizes a Pool. The caller validates it; NewPool panics on values
// that cannot work.
type Config struct {
	Slots        int    // entries over all shards
	Shards       int    // a power of two, at most 1024
	MaxTopic     int    // bytes
	MaxKey       int    // bytes, at most MaxKeyLimit
	MaxMeta      int    // bytes
	History      int    // change events kept per shard, a power of two
	MaxPerSocket int    // entries one socket may hold; 0 means Slots
	MaxLocal     int    // entries local sockets may hold together; 0 means Slots
	RefTag       uint64 // stored in the top 16 bits of every generated ref
	Seed         uint64 // hash seed
	// ReadAttempts is how many read windows a reader tries before it takes
	// the shard lock; 0 means OptimisticReads, and a negative value makes
	// readers retry without bound (for measuring the bound's cost).
	ReadAttempts int
	// RenderBlocks is how many blocks hold rendered topics (see
	// render.go); 0 sizes them to the slots' memory, and a negative value
	// leaves every topic to its slots.
	RenderBlocks int
}

// RefTagLimit bounds Config.RefTag.
const RefTagLimit = 1 << 16

// Slot words. A slot holds one entry; readers reach it through its topic's
// member list and read it inside the topic's read window.
const (
	slotLens    = iota // metaLen | keyLen<<32 | escapeFlag
	slotRef            // the entry's ref
	slotNext           // next member in join order, slot+1
	slotOwner          // owner
	slotKeyNext        // next entry of the same key in the topic, slot+1 (keys.go)
	slotHdr            // the payload follows (see payloadLen)
)

// An entry's payload is the entry as List writes it when its key needs no
// escaping: payloadOpen, the key, payloadMid, the meta and a closing brace,
// packed, so that List copies an entry in one piece. That takes over a
// third off List compared with key and meta in words of their own
// (BenchmarkList, AMD EPYC: 1.24 to 0.77 µs for 128 entries, 4.9 to 3.1 µs
// for 512). The key starts at word keyWord whether it needs escaping or
// not.
const (
	payloadOpen = `{"key":"`
	payloadMid  = `","meta":`
	keyWord     = len(payloadOpen) / 8
)

// payloadLen returns the bytes of the payload of a key and a meta.
func payloadLen(keyLen, metaLen int) int {
	return len(payloadOpen) + keyLen + len(payloadMid) + metaLen + 1
}

// metaOffset returns the byte at which the meta starts in a payload.
func metaOffset(keyLen int) int { return len(payloadOpen) + keyLen + len(payloadMid) }

// payloadWords returns the words a payload with these lens occupies.
func payloadWords(lens uint64) int {
	return wordsFor(payloadLen(int(lens>>32&lensKeyMask), int(uint32(lens))))
}

const (
	lensEscape  = 1 << 63 // the key needs JSON escaping
	lensKeyMask = 1<<31 - 1
)

func packLens(keyLen, metaLen int, escape bool) uint64 {
	v := uint64(metaLen) | uint64(keyLen)<<32
	if escape {
		v |= lensEscape
	}
	return v
}

// Topic record words. A topic record exists while its topic has members; its
// seq is the read window for the member list and the members' payloads.
const (
	topicSeq     = iota // odd while a writer changes the topic
	topicCount          // members | keys<<32 (see countWord)
	topicHead           // first member, slot+1
	topicKeys           // first key record in key order, key+1 (keys.go)
	topicChain          // next record in the shard's bucket, topic+1
	topicHash           // the topic's hash
	topicNameLen        // bytes
	topicBlocks         // first block of the rendered entries, block+1; 0 when not rendered
	topicHdr            // name words follow
)

// slotInfo is a slot's writer-side state, guarded by the lock of the shard
// that holds the slot (owner links: by the owner stripe).
type slotInfo struct {
	gen       atomic.Uint32 // odd while the slot holds an entry
	topic     int32
	shard     int32
	prev      int32 // previous member, slot+1
	pairNext  int32 // pair bucket chain, slot+1
	ownerPrev int32 // owner list, slot+1
	ownerNext int32
	boff      int32 // where the rendered entry starts in its block
	// The uint64 fields start 8-aligned on 32-bit targets too.
	owner     uint64
	joinEvent uint64 // history seq of the entry's latest join
	ownerSeq  uint64 // when the slot joined its owner's list, by its stripe's link count
	blk       int32  // block that holds the rendered entry, block+1, if its topic is rendered
	rlen      int32  // the rendered entry's length
	// one cache line: slots of different shards do not share one
}

// Pool is the storage all shards of one registry share: slots and topic
// records claimed from lock-free free stacks, and the socket index.
// All of its memory is allocated by NewPool.
type Pool struct {
	cfg          Config
	payloadWords int // words a slot holds for its payload

	slotStride int
	slots      []uint64
	info       []slotInfo
	freeSlots  *stack

	topicStride int
	topics      []uint64
	topicTail   []int32 // last member, slot+1; guarded by the shard lock
	// renderWait is, for a topic read from its slots because blocks ran
	// out, 1 + the writes to it before it tries to render again; 0 for
	// every other topic. Guarded by the shard lock.
	renderWait []int32
	// bigAfter is, for a rendered topic in small blocks that found too few
	// big ones, the members it needs before it tries again. Guarded by the
	// shard lock.
	bigAfter   []int32
	freeTopics *stack

	keys keyStore // the topics' key records (keys.go)

	owners owners
	shards []Shard

	blockBytes  int // data bytes of a unit, a small block; 0 when no topic is rendered
	blockStride int // words of a unit
	nblocks     int // units, smallBlocks and then those of the big blocks
	smallBlocks int
	blocks      []uint64
	freeBlocks  *stack // free units
	bigUnits    int    // units in a big block; 0 when there are none
	bigBytes    int    // data bytes of a big block
	freeBig     *stack // free big blocks, by first unit / bigUnits
	maxEntry    int    // bytes of the longest rendered entry

	_ [64]byte
	// used counts entries: all of them in the low 32 bits, those of local
	// sockets in the high 32. It moves only inside the read window of the
	// entry's topic, under the socket's stripe lock, so that readers, Len,
	// SocketLen and a refused Track all see an entry appear and go at the
	// same instant.
	used atomic.Uint64
	_    [56]byte

	retries    atomic.Uint64
	repairs    atomic.Uint64
	fallbacks  atomic.Uint64
	unrendered atomic.Uint64
	slowTopics atomic.Int64 // topics with renderWait > 0
	fullLocal  atomic.Uint64
	fullRemote atomic.Uint64
}

const localOne = 1 << 32 // a local entry's share of used

// NewPool allocates a pool and its shards.
func NewPool(cfg Config) *Pool {
	if cfg.Slots < 1 || uint64(cfg.Slots) >= 1<<31 || cfg.Shards < 1 || cfg.Shards&(cfg.Shards-1) != 0 || cfg.Shards > 1024 ||
		cfg.MaxTopic < 1 || cfg.MaxKey < 1 || cfg.MaxKey > MaxKeyLimit || cfg.MaxMeta < 2 ||
		cfg.History < 2 || cfg.History&(cfg.History-1) != 0 || cfg.RefTag >= RefTagLimit {
		panic("shard: invalid Config")
	}
	if cfg.MaxPerSocket <= 0 || cfg.MaxPerSocket > cfg.Slots {
		cfg.MaxPerSocket = cfg.Slots
	}
	if cfg.MaxLocal <= 0 || cfg.MaxLocal > cfg.Slots {
		cfg.MaxLocal = cfg.Slots
	}
	switch {
	case cfg.ReadAttempts == 0:
		cfg.ReadAttempts = OptimisticReads
	case cfg.ReadAttempts < 0:
		cfg.ReadAttempts = math.MaxInt
	}
	p := &Pool{cfg: cfg}
	p.payloadWords = wordsFor(payloadLen(cfg.MaxKey, cfg.MaxMeta))
	p.slotStride = lineWords(slotHdr + p.payloadWords)
	p.slots = make([]uint64, cfg.Slots*p.slotStride)
	p.info = make([]slotInfo, cfg.Slots)
	p.freeSlots = newStack(cfg.Slots)

	// A linked topic record has a member, except under its shard's lock,
	// where a Track sets one up before it knows its entry fits and a
	// removal unlinks one after its last member went: one extra per shard.
	topics := cfg.Slots + cfg.Shards
	p.topicStride = lineWords(topicHdr + wordsFor(cfg.MaxTopic))
	p.topics = make([]uint64, topics*p.topicStride)
	p.topicTail = make([]int32, topics)
	p.renderWait = make([]int32, topics)
	p.bigAfter = make([]int32, topics)
	p.freeTopics = newStack(topics)

	p.owners.init(cfg.Slots, cfg.MaxPerSocket, cfg.Seed, p.info)
	p.keys.init(cfg.Slots, cfg.Shards, topics)
	p.initBlocks()

	perShard := 2 * cfg.Slots / cfg.Shards
	buckets := 1 << bits.Len(uint(max(perShard, 8)-1))
	p.shards = make([]Shard, cfg.Shards)
	for i := range p.shards {
		p.shards[i].init(p, i, buckets)
	}
	return p
}

// ShardFor returns the shard that holds topics with this hash.
func (p *Pool) ShardFor(hash uint64) *Shard { return &p.shards[hash&uint64(len(p.shards)-1)] }

// HashTopic returns the seeded hash that places a topic: XXH64 with the
// pool's seed.
func (p *Pool) HashTopic(topic string) uint64 { return hashString(topic, p.cfg.Seed) }

// hashString is XXH64 of s with seed.
func hashString(s string, seed uint64) uint64 {
	if len(s) < 32 {
		return xxh64Short(s, seed)
	}
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	d.WriteString(s)
	return d.Sum64()
}

// XXH64's primes.
const (
	xxPrime1 uint64 = 11400714785074694791
	xxPrime2 uint64 = 14029467366897019727
	xxPrime3 uint64 = 1609587929392839161
	xxPrime4 uint64 = 9650029242287828579
	xxPrime5 uint64 = 2870177450012600261
)

// xxh64Short is XXH64 of an input shorter than 32 bytes, which skips the
// four-lane stage. It equals what xxhash.Digest returns (TestHashTopicIsXXH64)
// at less than half the cost for a short topic, since a Digest has to be
// set up, fed and finished (4.6 ns against 2 ns for "room", AMD EPYC).
func xxh64Short(s string, seed uint64) uint64 {
	h := seed + xxPrime5 + uint64(len(s))
	for ; len(s) >= 8; s = s[8:] {
		k := bits.RotateLeft64(le64(s)*xxPrime2, 31) * xxPrime1
		h = bits.RotateLeft64(h^k, 27)*xxPrime1 + xxPrime4
	}
	if len(s) >= 4 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
		h = bits.RotateLeft64(h^v*xxPrime1, 23)*xxPrime2 + xxPrime3
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		h = bits.RotateLeft64(h^uint64(s[i])*xxPrime5, 11) * xxPrime1
	}
	h ^= h >> 33
	h *= xxPrime2
	h ^= h >> 29
	h *= xxPrime3
	h ^= h >> 32
	return h
}

// Len returns the number of entries.
func (p *Pool) Len() int { return int(uint32(p.used.Load())) }

// Counts are a pool's counters.
type Counts struct {
	Local, Remote         int    // entries of local and of remote sockets
	FullLocal, FullRemote uint64 // Tracks refused with ErrFull, by class
	Retries               uint64 // read windows retried
	Repairs               uint64 // spoiled reads rebuilt from the change ring
	Fallbacks             uint64 // reads that gave up retrying and took the shard lock
	Unrendered            uint64 // times a topic was left without blocks, or gave them back, because none was free
	UnrenderedTopics      int    // topics read from their slots now, because blocks ran out
}

// Counts returns the pool's counters. Local and Remote are read together,
// at one instant.
func (p *Pool) Counts() Counts {
	u := p.used.Load()
	local := int(u >> 32)
	return Counts{
		Local:      local,
		Remote:     int(uint32(u)) - local,
		FullLocal:  p.fullLocal.Load(),
		FullRemote: p.fullRemote.Load(),
		Retries:    p.retries.Load(),
		Repairs:    p.repairs.Load(),
		Fallbacks:  p.fallbacks.Load(),
		Unrendered: p.unrendered.Load(),
		// Only writers move it, one step at a time: it is never negative.
		UnrenderedTopics: int(p.slowTopics.Load()),
	}
}

// SocketLen returns the number of entries a socket holds.
func (p *Pool) SocketLen(socket uint64) int { return p.owners.count(socket) }

func (p *Pool) slot(i int32) []uint64 {
	return p.slots[int(i)*p.slotStride : (int(i)+1)*p.slotStride]
}

func (p *Pool) topic(i int32) []uint64 {
	return p.topics[int(i)*p.topicStride : (int(i)+1)*p.topicStride]
}

// reserve counts a new entry of socket if its class has room, and then
// returns with the read window whose sequence word is window open. A full
// pool is seen without opening it, so a refused Track costs readers no
// retry. The caller holds the socket's stripe lock.
func (p *Pool) reserve(socket uint64, window *uint64) bool {
	one, local := uint64(1), socket < FirstRemote
	if local {
		one |= localOne
	}
	open := false
	for {
		u := p.used.Load()
		if uint32(u) >= uint32(p.cfg.Slots) || local && u>>32 >= uint64(p.cfg.MaxLocal) {
			if open {
				seqEnd(window)
			}
			if local {
				p.fullLocal.Add(1)
			} else {
				p.fullRemote.Add(1)
			}
			return false
		}
		if !open {
			seqBegin(window)
			open = true
			continue
		}
		if p.used.CompareAndSwap(u, u+one) {
			return true
		}
	}
}

// unreserve uncounts an entry of socket. The caller holds the socket's
// stripe lock and has pushed the entry's slot back.
func (p *Pool) unreserve(socket uint64) {
	one := uint64(1)
	if socket < FirstRemote {
		one |= localOne
	}
	p.used.Add(-one)
}

// UntrackAll removes the entries socket held when the call began and
// returns how many it removed; entries tracked for a new (socket, topic)
// pair while it runs stay, but an entry that is only updated while it runs
// is removed.
func (p *Pool) UntrackAll(socket uint64) int {
	var batch [32]ownedSlot
	removed := 0
	before := p.owners.clock(socket)
	for {
		// Each round takes entries that were there at the start; each is
		// removed here or by someone else, so the rounds end.
		n := p.owners.collect(socket, before, 0, ownedSlot{}, batch[:])
		if n == 0 {
			break
		}
		for _, o := range batch[:n] {
			sh := &p.shards[o.shard]
			sh.mu.Lock()
			if p.info[o.slot].gen.Load() == o.gen {
				sh.remove(o.slot)
				removed++
			}
			sh.mu.Unlock()
		}
	}
	return removed
}

// owners indexes slots by socket, so that UntrackAll costs O(entries) and
// per-socket limits are exact. Buckets are guarded by striped locks; a writer
// holds its shard lock and then, briefly, one stripe.
type owners struct {
	seed    uint64
	limit   int32
	mask    uint64
	buckets []int32 // record+1
	stripes []stripe
	// recs holds a record for each socket with entries, at the index of
	// one of its slots (its anchor), so that a record needs no allocator:
	// no other socket holds that slot, so no other record is there.
	recs []ownerRec
	info []slotInfo // the pool's; owner links are guarded by the stripes
}

type stripe struct {
	sync.Mutex
	seq uint64 // counts links, so that UntrackAll can tell old from new
	_   [48]byte
}

type ownerRec struct {
	owner uint64
	count int32
	head  int32 // newest slot, slot+1; the list runs from newest to oldest
	next  int32 // bucket chain, record+1
}

type ownedSlot struct {
	slot  int32
	shard int32
	gen   uint32
	seq   uint64 // the slot's ownerSeq
}

func (o *owners) init(slots, limit int, seed uint64, info []slotInfo) {
	o.info = info
	n := 1 << bits.Len(uint(2*slots-1))
	o.seed = seed ^ 0x9e3779b97f4a7c15
	o.limit = int32(limit)
	o.mask = uint64(n - 1)
	o.buckets = make([]int32, n)
	o.stripes = make([]stripe, min(n, 256))
	o.recs = make([]ownerRec, slots)
}

func (o *owners) bucket(owner uint64) (uint64, *stripe) {
	b := mix64(owner^o.seed) & o.mask
	return b, &o.stripes[b&uint64(len(o.stripes)-1)]
}

// find returns the record of owner in bucket b, and the link that points to
// it; the caller holds the bucket's stripe.
func (o *owners) find(b uint64, owner uint64) (rec int32, link *int32) {
	link = &o.buckets[b]
	for r := *link; r != 0; r = *link {
		if o.recs[r-1].owner == owner {
			return r - 1, link
		}
		link = &o.recs[r-1].next
	}
	return -1, link
}

func (o *owners) count(owner uint64) int {
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	if r, _ := o.find(b, owner); r >= 0 {
		return int(o.recs[r].count)
	}
	return 0
}

// claimSlot takes a slot for a new entry of owner in shard number sh: it checks the
// owner's quota, then counts the entry in its class, then takes a free slot
// and links it to the owner, all under the owner's stripe lock. The caller
// holds sh's lock. On success the read window whose sequence word is window
// (the entry's topic's, or for a new topic the shard's index's) is open, and
// the entry counts as present from within it: the caller links the entry
// and then closes the window.
func (p *Pool) claimSlot(owner uint64, sh int32, window *uint64) (int32, error) {
	o := &p.owners
	info := o.info
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, tail := o.find(b, owner)
	if r >= 0 && o.recs[r].count >= o.limit {
		return -1, ErrSocketLimit
	}
	if !p.reserve(owner, window) {
		return -1, ErrFull
	}
	// A reservation always finds a slot: a removal pushes its slot back
	// before it uncounts the entry.
	i, ok := p.freeSlots.pop()
	if !ok {
		panic("shard: counted entries and free slots disagree")
	}
	if r < 0 {
		// The owner's first slot anchors its record.
		r = i
		o.recs[r] = ownerRec{owner: owner}
		*tail = r + 1
	}
	in := &info[i]
	in.gen.Add(1)
	in.shard, in.owner = sh, owner
	rec := &o.recs[r]
	st.seq++
	in.ownerSeq = st.seq
	in.ownerPrev = 0
	in.ownerNext = rec.head
	if rec.head != 0 {
		info[rec.head-1].ownerPrev = i + 1
	}
	rec.head = i + 1
	rec.count++
	return i, nil
}

// releaseSlot unlinks slot i from owner, frees it and uncounts its entry,
// under the owner's stripe lock. The caller holds the lock of the slot's
// shard and the read window of its topic, and no longer touches the slot.
func (p *Pool) releaseSlot(owner uint64, i int32) {
	o := &p.owners
	info := o.info
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, link := o.find(b, owner)
	if r < 0 {
		panic("shard: socket index lost an entry")
	}
	rec := &o.recs[r]
	prev, next := info[i].ownerPrev, info[i].ownerNext
	if prev == 0 {
		rec.head = next
	} else {
		info[prev-1].ownerNext = next
	}
	if next != 0 {
		info[next-1].ownerPrev = prev
	}
	rec.count--
	switch {
	case rec.count == 0:
		*link = rec.next
	case r == i:
		// i anchored the record: move it to a slot the owner keeps. That
		// slot anchors no record, since only its owner's could be there.
		j := rec.head - 1
		o.recs[j] = *rec
		*link = j + 1
	}
	info[i].gen.Add(1)
	p.freeSlots.push(i)
	p.unreserve(owner)
}

// clock returns the link count of owner's stripe: slots linked later have
// a larger ownerSeq.
func (o *owners) clock(owner uint64) uint64 {
	_, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	return st.seq
}

// collect copies into dst up to len(dst) of owner's slots linked at or
// before the clock value before and, unless below is 0, before below, from
// the newest. If after names a slot still linked to owner, the walk starts
// after it.
func (o *owners) collect(owner, before, below uint64, after ownedSlot, dst []ownedSlot) int {
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, _ := o.find(b, owner)
	if r < 0 {
		return 0
	}
	s := o.recs[r].head
	if after.seq != 0 {
		if in := &o.info[after.slot]; in.gen.Load() == after.gen && in.ownerSeq == after.seq && in.owner == owner {
			s = in.ownerNext
		}
	}
	n := 0
	for ; s != 0 && n < len(dst); s = o.info[s-1].ownerNext {
		in := &o.info[s-1]
		if in.ownerSeq <= before && (below == 0 || in.ownerSeq < below) {
			dst[n] = ownedSlot{slot: s - 1, shard: in.shard, gen: in.gen.Load(), seq: in.ownerSeq}
			n++
		}
	}
	return n
}

// lineWords rounds n words up to whole 64-byte cache lines, so that records
// written by different shards never share a line.
func lineWords(n int) int { return (n + 7) &^ 7 }

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SocketEntries calls fn with each entry socket holds, newest first, until
// fn returns false. Each entry is read under its shard's lock, so it is
// whole; the walk as a whole is not atomic: every entry the socket holds
// from the start of the call to its end is reported once, an entry added
// during the call is not, and one removed during the call may be. topic
// and key are fresh strings; meta is valid only until fn returns. fn runs
// with no lock held.
func (p *Pool) SocketEntries(socket uint64, fn func(topic, key string, meta []byte, ref uint64) bool) {
	var batch [32]ownedSlot
	var buf []byte
	before := p.owners.clock(socket)
	var after ownedSlot
	for {
		n := p.owners.collect(socket, before, after.seq, after, batch[:])
		if n == 0 {
			return
		}
		for _, o := range batch[:n] {
			after = o
			sh := &p.shards[o.shard]
			sh.mu.Lock()
			if p.info[o.slot].gen.Load() != o.gen {
				sh.mu.Unlock()
				continue
			}
			w, rec := p.slot(o.slot), p.topic(p.info[o.slot].topic)
			nameLen, lens := int(rec[topicNameLen]), w[slotLens]
			keyLen, metaLen := int(lens>>32&lensKeyMask), int(uint32(lens))
			buf = append(buf[:0], bytesOf(rec[topicHdr:])[:nameLen]...)
			payload := bytesOf(w[slotHdr:])
			buf = append(buf, payload[len(payloadOpen):][:keyLen]...)
			buf = append(buf, payload[metaOffset(keyLen):][:metaLen]...)
			ref := w[slotRef]
			sh.mu.Unlock()
			names := string(buf[:nameLen+keyLen])
			if !fn(names[:nameLen], names[nameLen:], buf[nameLen+keyLen:], ref) {
				return
			}
		}
	}
}
