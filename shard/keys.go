package shard

import "math/bits"

// Key records. A topic's keys are kept in key order, the order in which
// they joined the topic: a key joins when its first entry arrives and
// leaves when its last entry goes. Each key present in a topic has a
// record, claimed from a free stack when it joins and pushed back when it
// leaves, that links the topic's keys in key order and chains the key's
// entries in the order they came to it. A page of the topic walks these
// records, so it never copies the topic, and a cursor names a record by
// its index and its generation, which changes when the record is reused.
//
// Writers change key records under the shard lock, inside the read window
// of the topic, like the member list; readers load their words atomically
// and validate the window. A topic has at most as many keys as entries, so
// NewPool allocates one record a slot, and one more a shard for the free
// record each shard keeps at hand.

// Key record words, reader-visible.
const (
	keyGen   = iota // the record's generation while it holds a key; 0 when free
	keyNext         // next key in the topic's key order, key+1
	keyFirst        // the key's first entry, slot+1; later ones chain by slotKeyNext
	keyTopic        // the topic record the key belongs to, topic+1
	keyStride
)

// keyOne is one key in a topic's count word: the low 32 bits count the
// topic's entries, the high 32 its keys, so that both are read at one
// instant in one load.
const keyOne = 1 << 32

// entriesOf and keysOf split a topic's count word.
func entriesOf(c uint64) int { return int(uint32(c)) }
func keysOf(c uint64) int    { return int(c >> 32) }

// keyStore holds the pool's key records.
type keyStore struct {
	words []uint64  // keyStride words a record
	info  []keyInfo // writer-side state, guarded by the lock of the record's shard
	// slot holds, for each slot with an entry, its key record and the
	// previous entry of its key; guarded by the slot's shard lock.
	slot []slotKey
	tail []int32 // per topic record: its last key, key+1
	free *stack
}

type keyInfo struct {
	topic int32
	prev  int32 // previous key in key order, key+1
	tail  int32 // last entry of the key, slot+1
	chain int32 // next record in the shard's key bucket, key+1
	count int32 // entries
	hash  uint64
}

type slotKey struct {
	key  int32
	prev int32 // previous entry of the same key, slot+1
}

func (k *keyStore) init(slots, shards, topics int) {
	n := slots + shards
	k.words = make([]uint64, n*keyStride)
	k.info = make([]keyInfo, n)
	k.slot = make([]slotKey, slots)
	k.tail = make([]int32, topics)
	k.free = newStack(n)
}

// word returns word w of key record i.
func (k *keyStore) word(i int32, w int) *uint64 { return &k.words[int(i)*keyStride+w] }

// keyGenShardBits is the width of the shard id in a key generation: a
// generation is counter<<10 | shard id, unique in the pool and increasing
// in key order within a topic.
const keyGenShardBits = 10

func (s *Shard) nextKeyGen() uint64 {
	// Readers load keySeq for a walk's horizon (keyGenNow).
	store(&s.keySeq, s.keySeq+1)
	return s.keySeq<<keyGenShardBits | uint64(s.id)
}

// keyGenNow returns the generation of the shard's latest key join: every
// key present in one of its topics has a generation up to it.
func (s *Shard) keyGenNow() uint64 {
	return load(&s.keySeq)<<keyGenShardBits | uint64(s.id)
}

// keyBucket places a key of topic record t: hash is already seeded and
// mixed, so one multiply spreads the topic over the bucket bits.
func (s *Shard) keyBucket(hash uint64, t int32) uint64 {
	return (hash ^ uint64(t)*0x9e3779b97f4a7c15) & s.mask
}

// keyHash is a seeded hash of a key, in the manner of wyhash (Go's own
// map hash without AES): a 64x64->128-bit multiply folds 16 bytes at a
// time. It costs a third of XXH64 for a short key, and a Track of a new
// pair hashes its key under the shard's lock.
func keyHash(s string, seed uint64) uint64 {
	const m1, m2, m3 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3
	n := uint64(len(s))
	h := seed ^ m1
	for len(s) > 16 {
		h = mum(le64(s)^m2, le64(s[8:])^h)
		s = s[16:]
	}
	var a, b uint64
	switch {
	case len(s) >= 8:
		a, b = le64(s), le64(s[len(s)-8:])
	case len(s) >= 4:
		a = uint64(le32(s))
		b = uint64(le32(s[len(s)-4:]))
	case len(s) > 0:
		a = uint64(s[0])<<16 | uint64(s[len(s)>>1])<<8 | uint64(s[len(s)-1])
	}
	return mum(m3^n, mum(a^m2, b^h))
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// slotKeyBytes returns the key stored in slot i. The caller holds s.mu.
func (p *Pool) slotKeyBytes(i int32) []byte {
	w := p.slot(i)
	keyLen := int(w[slotLens] >> 32 & lensKeyMask)
	return bytesOf(w[slotHdr:])[len(payloadOpen):][:keyLen]
}

// keyAdd puts slot i, whose payload holds key and which is not yet in any
// key's chain, at the end of its key's chain in topic t (record rec), and
// adds the key to the end of the topic's key order if it is new there.
// The caller holds s.mu and the topic's read window.
func (s *Shard) keyAdd(t, i int32, rec []uint64, key string) {
	p := s.p
	ks := &p.keys
	hash := keyHash(key, p.cfg.Seed)
	b := s.keyBucket(hash, t)
	store(&p.slot(i)[slotKeyNext], 0)
	for j := s.keyHeads[b]; j != 0; {
		in := &ks.info[j-1]
		// A key present has an entry: tail is set.
		if in.topic == t && in.hash == hash && string(p.slotKeyBytes(in.tail-1)) == key {
			ks.slot[i] = slotKey{key: j - 1, prev: in.tail}
			store(&p.slot(in.tail - 1)[slotKeyNext], uint64(i+1))
			in.tail = i + 1
			in.count++
			return
		}
		j = in.chain
	}
	// A new key, at the end of the key order.
	k := s.spareKey - 1
	if k >= 0 {
		s.spareKey = 0
	} else {
		var ok bool
		if k, ok = ks.free.pop(); !ok {
			panic("shard: key records exhausted")
		}
	}
	last := ks.tail[t]
	ks.info[k] = keyInfo{topic: t, prev: last, tail: i + 1, chain: s.keyHeads[b], count: 1, hash: hash}
	s.keyHeads[b] = k + 1
	ks.slot[i] = slotKey{key: k}
	kw := ks.words[int(k)*keyStride : int(k+1)*keyStride : int(k+1)*keyStride]
	store(&kw[keyNext], 0)
	store(&kw[keyFirst], uint64(i+1))
	store(&kw[keyTopic], uint64(t+1))
	store(&kw[keyGen], s.nextKeyGen())
	if last == 0 {
		store(&rec[topicKeys], uint64(k+1))
	} else {
		store(ks.word(last-1, keyNext), uint64(k+1))
	}
	ks.tail[t] = k + 1
	store(&rec[topicCount], rec[topicCount]+keyOne)
}

// keyRemove takes slot i out of its key's chain in topic t (record rec),
// and the key out of the topic's key order if that was its last entry.
// The caller holds s.mu and the topic's read window.
func (s *Shard) keyRemove(t, i int32, rec []uint64) {
	p := s.p
	ks := &p.keys
	sk := ks.slot[i]
	k := sk.key
	in := &ks.info[k]
	if in.count--; in.count == 0 {
		s.keyLeave(t, k, in, rec)
		return
	}
	next := p.slot(i)[slotKeyNext]
	if sk.prev == 0 {
		store(ks.word(k, keyFirst), next)
	} else {
		store(&p.slot(sk.prev - 1)[slotKeyNext], next)
	}
	if next == 0 {
		in.tail = sk.prev
	} else {
		ks.slot[next-1].prev = sk.prev
	}
}

// keyLeave takes key record k, whose last entry goes, out of topic t's key
// order and frees it.
func (s *Shard) keyLeave(t, k int32, in *keyInfo, rec []uint64) {
	ks := &s.p.keys
	link := &s.keyHeads[s.keyBucket(in.hash, t)]
	for *link != k+1 {
		link = &ks.info[*link-1].chain
	}
	*link = in.chain
	kn := *ks.word(k, keyNext)
	if in.prev == 0 {
		store(&rec[topicKeys], kn)
	} else {
		store(ks.word(in.prev-1, keyNext), kn)
	}
	if kn == 0 {
		ks.tail[t] = in.prev
	} else {
		ks.info[kn-1].prev = in.prev
	}
	// A reader may still walk the record; its generation tells a cursor
	// that the key left, and the topic's window tells the reader.
	store(ks.word(k, keyGen), 0)
	store(&rec[topicCount], rec[topicCount]-keyOne)
	// The shard keeps one free record for its next key, which spares a
	// churning shard two atomic operations on the shared free stack.
	if s.spareKey == 0 {
		s.spareKey = k + 1
	} else {
		ks.free.push(k)
	}
}
