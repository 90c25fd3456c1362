package shard

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
// NewPool allocates one record a slot.

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

func (k *keyStore) init(slots, topics int) {
	k.words = make([]uint64, slots*keyStride)
	k.info = make([]keyInfo, slots)
	k.slot = make([]slotKey, slots)
	k.tail = make([]int32, topics)
	k.free = newStack(slots)
}

func (k *keyStore) rec(i int32) []uint64 {
	return k.words[int(i)*keyStride : (int(i)+1)*keyStride : (int(i)+1)*keyStride]
}

// keyGenShardBits is the width of the shard id in a key generation: a
// generation is counter<<10 | shard id, unique in the pool and increasing
// in key order within a topic.
const keyGenShardBits = 10

func (s *Shard) nextKeyGen() uint64 {
	s.keySeq++
	return s.keySeq<<keyGenShardBits | uint64(s.id)
}

func (s *Shard) keyBucket(hash uint64, t int32) uint64 {
	return mix64(hash^uint64(t)<<40) & s.mask
}

// slotKeyBytes returns the key stored in slot i. The caller holds s.mu.
func (p *Pool) slotKeyBytes(i int32) []byte {
	w := p.slot(i)
	keyLen := int(w[slotLens] >> 32 & lensKeyMask)
	return bytesOf(w[slotHdr:])[len(payloadOpen):][:keyLen]
}

// keyAdd puts slot i, whose payload holds key and which is not yet in any
// key's chain, at the end of its key's chain in topic t, and adds the key
// to the topic's key order if it is new there. The caller holds s.mu and
// the topic's read window.
func (s *Shard) keyAdd(t, i int32, key string) {
	p := s.p
	ks := &p.keys
	hash := hashString(key, p.cfg.Seed)
	b := s.keyBucket(hash, t)
	k := int32(-1)
	for j := s.keyHeads[b]; j != 0; j = ks.info[j-1].chain {
		in := &ks.info[j-1]
		if in.topic == t && in.hash == hash && string(p.slotKeyBytes(int32(ks.rec(j - 1)[keyFirst]-1))) == key {
			k = j - 1
			break
		}
	}
	rec := p.topic(t)
	if k < 0 {
		var ok bool
		if k, ok = ks.free.pop(); !ok {
			panic("shard: key records exhausted")
		}
		tail := ks.tail[t]
		ks.info[k] = keyInfo{topic: t, prev: tail, chain: s.keyHeads[b], hash: hash}
		s.keyHeads[b] = k + 1
		kw := ks.rec(k)
		store(&kw[keyNext], 0)
		store(&kw[keyFirst], 0)
		store(&kw[keyTopic], uint64(t+1))
		store(&kw[keyGen], s.nextKeyGen())
		if tail == 0 {
			store(&rec[topicKeys], uint64(k+1))
		} else {
			store(&ks.rec(tail - 1)[keyNext], uint64(k+1))
		}
		ks.tail[t] = k + 1
		store(&rec[topicCount], rec[topicCount]+keyOne)
	}
	in := &ks.info[k]
	ks.slot[i] = slotKey{key: k, prev: in.tail}
	store(&p.slot(i)[slotKeyNext], 0)
	if in.tail == 0 {
		store(&ks.rec(k)[keyFirst], uint64(i+1))
	} else {
		store(&p.slot(in.tail - 1)[slotKeyNext], uint64(i+1))
	}
	in.tail = i + 1
	in.count++
}

// keyRemove takes slot i out of its key's chain in topic t, and the key
// out of the topic's key order if that was its last entry. The caller
// holds s.mu and the topic's read window.
func (s *Shard) keyRemove(t, i int32) {
	p := s.p
	ks := &p.keys
	sk := ks.slot[i]
	k := sk.key
	in := &ks.info[k]
	kw := ks.rec(k)
	next := p.slot(i)[slotKeyNext]
	if sk.prev == 0 {
		store(&kw[keyFirst], next)
	} else {
		store(&p.slot(sk.prev - 1)[slotKeyNext], next)
	}
	if next == 0 {
		in.tail = sk.prev
	} else {
		ks.slot[next-1].prev = sk.prev
	}
	if in.count--; in.count > 0 {
		return
	}
	// The key leaves the topic.
	link := &s.keyHeads[s.keyBucket(in.hash, t)]
	for *link != k+1 {
		link = &ks.info[*link-1].chain
	}
	*link = in.chain
	rec := p.topic(t)
	kn := kw[keyNext]
	if in.prev == 0 {
		store(&rec[topicKeys], kn)
	} else {
		store(&ks.rec(in.prev - 1)[keyNext], kn)
	}
	if kn == 0 {
		ks.tail[t] = in.prev
	} else {
		ks.info[kn-1].prev = in.prev
	}
	store(&kw[keyGen], 0)
	store(&rec[topicCount], rec[topicCount]-keyOne)
	ks.free.push(k)
}
