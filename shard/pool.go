package shard

import (
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Errors returned by writers.
var (
	ErrFull       = errors.New("shard: all slots are in use")
	ErrOwnerLimit = errors.New("shard: owner holds its maximum number of entries")
)

// MaxKeyLimit is the largest MaxKey a Pool accepts; readers escape keys
// through a stack buffer of this size.
const MaxKeyLimit = 1024

// Config sizes a Pool. The caller validates it; NewPool panics on values
// that cannot work.
type Config struct {
	Slots       int    // entries over all shards
	Shards      int    // a power of two, at most 1024
	MaxTopic    int    // bytes
	MaxKey      int    // bytes, at most MaxKeyLimit
	MaxMeta     int    // bytes
	History     int    // change events kept per shard, a power of two
	MaxPerOwner int    // entries one owner may hold; 0 means Slots
	Seed        uint64 // hash seed
}

// Slot words. A slot holds one entry; readers reach it through its topic's
// member list and read it inside the topic's read window.
const (
	slotLens  = iota // metaLen | keyLen<<32 | escapeFlag
	slotRef          // the entry's ref
	slotNext         // next member in join order, slot+1
	slotOwner        // owner
	slotHdr          // the payload follows: key words, then meta words
)

// payloadWords returns the words a payload with these lens occupies.
func payloadWords(lens uint64) int {
	return wordsFor(int(lens>>32&lensKeyMask)) + wordsFor(int(uint32(lens)))
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
	topicCount          // members
	topicHead           // first member, slot+1
	topicChain          // next record in the shard's bucket, topic+1
	topicHash           // the topic's hash
	topicNameLen        // bytes
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
	owner     uint64
	joinEvent uint64  // history seq of the entry's latest join
	ownerSeq  uint64  // when the slot joined its owner's list, by its stripe's link count
	_         [8]byte // one cache line: slots of different shards do not share one
}

// Pool is the storage all shards of one registry share: slots and topic
// records claimed from lock-free free stacks, and the owner index.
// All of its memory is allocated by NewPool.
type Pool struct {
	cfg      Config
	keyWords int // words a slot holds for its key

	slotStride int
	slots      []uint64
	info       []slotInfo
	freeSlots  *stack

	topicStride int
	topics      []uint64
	topicTail   []int32 // last member, slot+1; guarded by the shard lock
	freeTopics  *stack

	owners owners
	shards []Shard

	_       [64]byte
	used    atomic.Int64
	_       [56]byte
	retries atomic.Uint64
}

// NewPool allocates a pool and its shards.
func NewPool(cfg Config) *Pool {
	if cfg.Slots < 1 || cfg.Shards < 1 || cfg.Shards&(cfg.Shards-1) != 0 || cfg.Shards > 1024 ||
		cfg.MaxTopic < 1 || cfg.MaxKey < 1 || cfg.MaxKey > MaxKeyLimit || cfg.MaxMeta < 2 ||
		cfg.History < 2 || cfg.History&(cfg.History-1) != 0 {
		panic("shard: invalid Config")
	}
	if cfg.MaxPerOwner <= 0 || cfg.MaxPerOwner > cfg.Slots {
		cfg.MaxPerOwner = cfg.Slots
	}
	p := &Pool{cfg: cfg}
	p.keyWords = wordsFor(cfg.MaxKey)
	p.slotStride = lineWords(slotHdr + p.keyWords + wordsFor(cfg.MaxMeta))
	p.slots = make([]uint64, cfg.Slots*p.slotStride)
	p.info = make([]slotInfo, cfg.Slots)
	p.freeSlots = newStack(cfg.Slots)

	// Topics never outnumber entries: a record is claimed after its first
	// member's slot and released before its last member's slot.
	p.topicStride = lineWords(topicHdr + wordsFor(cfg.MaxTopic))
	p.topics = make([]uint64, cfg.Slots*p.topicStride)
	p.topicTail = make([]int32, cfg.Slots)
	p.freeTopics = newStack(cfg.Slots)

	p.owners.init(cfg.Slots, cfg.MaxPerOwner, cfg.Seed, p.info)

	perShard := 2 * cfg.Slots / cfg.Shards
	buckets := 1 << bits.Len(uint(max(perShard, 8)-1))
	p.shards = make([]Shard, cfg.Shards)
	for i := range p.shards {
		p.shards[i].init(p, i, buckets)
	}
	return p
}

// Shards returns the pool's shards; a topic belongs to Shards()[hash&(n-1)].
func (p *Pool) Shards() []Shard { return p.shards }

// ShardFor returns the shard that holds topics with this hash.
func (p *Pool) ShardFor(hash uint64) *Shard { return &p.shards[hash&uint64(len(p.shards)-1)] }

// HashTopic returns the seeded hash that places a topic.
func (p *Pool) HashTopic(topic string) uint64 {
	var d xxhash.Digest
	d.ResetWithSeed(p.cfg.Seed)
	d.WriteString(topic)
	return d.Sum64()
}

// Len returns the number of slots in use.
func (p *Pool) Len() int { return int(p.used.Load()) }

// Cap returns the number of slots.
func (p *Pool) Cap() int { return p.cfg.Slots }

// Retries returns how many read windows were retried since NewPool.
func (p *Pool) Retries() uint64 { return p.retries.Load() }

// OwnerCount returns the number of entries an owner holds.
func (p *Pool) OwnerCount(owner uint64) int { return p.owners.count(owner) }

func (p *Pool) slot(i int32) []uint64 {
	return p.slots[int(i)*p.slotStride : (int(i)+1)*p.slotStride]
}

func (p *Pool) topic(i int32) []uint64 {
	return p.topics[int(i)*p.topicStride : (int(i)+1)*p.topicStride]
}

// claimSlot takes a free slot for shard sh.
func (p *Pool) claimSlot() (int32, bool) {
	i, ok := p.freeSlots.pop()
	if !ok {
		return -1, false
	}
	p.used.Add(1)
	p.info[i].gen.Add(1)
	return i, true
}

func (p *Pool) releaseSlot(i int32) {
	p.info[i].gen.Add(1)
	p.used.Add(-1)
	p.freeSlots.push(i)
}

// UntrackOwner removes the entries owner held when the call began and
// returns how many it removed; entries tracked for the same owner while it
// runs stay.
func (p *Pool) UntrackOwner(owner uint64) int {
	var batch [32]ownedSlot
	removed := 0
	before := p.owners.clock(owner)
	for {
		// Each round takes entries that were there at the start; each is
		// removed here or by someone else, so the rounds end.
		n := p.owners.collect(owner, before, batch[:])
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

// owners indexes slots by owner, so that UntrackOwner costs O(entries) and
// per-owner limits are exact. Buckets are guarded by striped locks; a writer
// holds its shard lock and then, briefly, one stripe.
type owners struct {
	seed    uint64
	limit   int32
	mask    uint64
	buckets []int32 // record+1
	stripes []stripe
	recs    []ownerRec
	free    *stack
	info    []slotInfo // the pool's; owner links are guarded by the stripes
}

type stripe struct {
	sync.Mutex
	seq uint64 // counts links, so that UntrackOwner can tell old from new
	_   [48]byte
}

type ownerRec struct {
	owner uint64
	count int32
	head  int32 // first slot, slot+1
	next  int32 // bucket chain, record+1
}

type ownedSlot struct {
	slot  int32
	shard int32
	gen   uint32
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
	o.free = newStack(slots)
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

// link adds slot to owner's list; it fails only when owner is at its limit.
func (o *owners) link(owner uint64, slot int32) bool {
	info := o.info
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, tail := o.find(b, owner)
	if r < 0 {
		// A record is taken after its first slot and returned before its
		// last slot, so one is free whenever a slot was.
		var ok bool
		if r, ok = o.free.pop(); !ok {
			panic("shard: owner records exhausted")
		}
		o.recs[r] = ownerRec{owner: owner}
		*tail = r + 1
	}
	rec := &o.recs[r]
	if rec.count >= o.limit {
		return false
	}
	st.seq++
	info[slot].ownerSeq = st.seq
	info[slot].ownerPrev = 0
	info[slot].ownerNext = rec.head
	if rec.head != 0 {
		info[rec.head-1].ownerPrev = slot + 1
	}
	rec.head = slot + 1
	rec.count++
	return true
}

func (o *owners) unlink(owner uint64, slot int32) {
	info := o.info
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, link := o.find(b, owner)
	if r < 0 {
		panic("shard: owner index lost an entry")
	}
	rec := &o.recs[r]
	prev, next := info[slot].ownerPrev, info[slot].ownerNext
	if prev == 0 {
		rec.head = next
	} else {
		info[prev-1].ownerNext = next
	}
	if next != 0 {
		info[next-1].ownerPrev = prev
	}
	rec.count--
	if rec.count == 0 {
		*link = rec.next
		o.free.push(r)
	}
}

// clock returns the link count of owner's stripe: slots linked later have
// a larger ownerSeq.
func (o *owners) clock(owner uint64) uint64 {
	_, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	return st.seq
}

// collect copies up to len(dst) of owner's slots linked at or before the
// clock value before into dst.
func (o *owners) collect(owner, before uint64, dst []ownedSlot) int {
	b, st := o.bucket(owner)
	st.Lock()
	defer st.Unlock()
	r, _ := o.find(b, owner)
	if r < 0 {
		return 0
	}
	n := 0
	for s := o.recs[r].head; s != 0 && n < len(dst); s = o.info[s-1].ownerNext {
		in := &o.info[s-1]
		if in.ownerSeq <= before {
			dst[n] = ownedSlot{slot: s - 1, shard: in.shard, gen: in.gen.Load()}
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
