package shard

import "github.com/presencekit/presence/jsonwriter"

// Rendered topics. Besides its slots, a topic keeps its entries as List
// writes them, in join order and separated by commas, in a chain of
// blocks, so that a List copies a few blocks instead of one entry at a
// time: one copy per entry costs at least 4.5x a copy of the whole output,
// however the entries are laid out (bench/peers, the chain and index
// floors), one copy per block of 1 KiB about 1.5x, and per block of 8 KiB
// about 1.2x. Writers keep the blocks in step with the slots inside the
// topic's read window; a reader that finds the topic rendered copies its
// blocks and validates the window as it does for slots.
//
// A block is a unit of 1 KiB (more when an entry can be longer), or a big
// block of about 8 KiB. A topic's blocks are units until it fills a quarter
// of a big block; then it is rendered again into big blocks, so that a
// large topic costs a List few copies, while a small one never holds more
// than a unit it does not fill. An update that changes an entry's length, or a
// removal, moves the entries after it in their block: up to a big block's
// bytes, and as many members relabelled, in a large topic.
//
// The blocks are a second copy of what the slots hold, taken from a pool of
// their own: as many units as the slots' memory holds, and a quarter as
// much again in big blocks. When it runs dry, a topic that needs a block
// gives all of its blocks back and is read from its slots. It tries to
// render itself again after as many writes to it as it has entries, and
// after as many again each time blocks are still short, so that the
// attempts, O(entries) each, cost O(1) a write.

// Block words.
const (
	blockUsed = iota // bytes of data, with the commas
	blockNext        // next block of the topic, block+1
	blockCap         // bytes of data the block can hold
	blockHdr         // data follows
)

const (
	minBlockBytes = 1 << 10
	// bigBlockBytes is about what a big block holds: a few units side by
	// side under one header. Copying a topic of 50 KiB in pieces of 1 KiB
	// costs 1.6x one copy of it, in pieces of 8 KiB 1.2x (bench/peers,
	// AMD EPYC), since each memmove pays a start-up and the prefetcher
	// restarts at each piece.
	bigBlockBytes = 8 << 10
	// maxBlockBytes bounds a block, so that a move within one never
	// reaches the sizes at which memmove uses non-temporal stores; entries
	// too large for it leave every topic to its slots.
	maxBlockBytes = 64 << 10
)

// maxRendered returns the longest entry List can write under cfg.
func maxRendered(cfg *Config) int {
	return len(`{"key":""`) + 6*cfg.MaxKey + len(`,"meta":}`) + cfg.MaxMeta
}

// initBlocks sizes and allocates the block pool: units of blockBytes, as
// many as the slots' memory holds, and a quarter as much again in big
// blocks of bigUnits units side by side under one header, for topics that
// fill at least a quarter of one. When no unit is free, a big block is cut
// into units, which never join again; so a topic gets a unit whenever it
// would have without big blocks.
func (p *Pool) initBlocks() {
	need := (maxRendered(&p.cfg) + 7) &^ 7
	if p.cfg.RenderBlocks < 0 || need > maxBlockBytes {
		p.blockBytes = 0
		p.freeBlocks, p.freeBig = newStack(0), newStack(0)
		return
	}
	p.blockBytes = max(need, minBlockBytes)
	p.maxEntry = maxRendered(&p.cfg)
	n := p.cfg.RenderBlocks
	if n == 0 {
		n = p.cfg.Slots*p.slotStride*8/p.blockBytes + p.cfg.Shards
	}
	// Whole cache lines, so that blocks of topics in different shards never
	// share one.
	p.blockStride = lineWords(blockHdr + p.blockBytes/8)
	p.bigBytes = p.blockBytes
	big := 0
	if k := bigBlockBytes / (p.blockStride * 8); k >= 2 {
		big = n / 4 / k
		p.bigUnits = k
		p.bigBytes = min(k*p.blockStride*8-blockHdr*8, maxBlockBytes)
	}
	p.smallBlocks = n
	p.nblocks = n + big*p.bigUnits
	p.blocks = make([]uint64, p.nblocks*p.blockStride)
	p.freeBlocks = newStackOf(p.nblocks, n)
	p.freeBig = newStack(big)
}

// block returns block b's header and data, for a writer: b is in one of
// its topics' chains, or it has just taken b.
func (p *Pool) block(b int32) []uint64 {
	off := int(b) * p.blockStride
	return p.blocks[off : off+blockHdr+int(p.blocks[off+blockCap]+7)/8]
}

// blockToRead returns as many words as block b can span, for a reader that
// may follow a stale link: it validates what it read afterwards.
func (p *Pool) blockToRead(b int32) []uint64 {
	off := int(b) * p.blockStride
	return p.blocks[off:min(off+max(p.bigUnits, 1)*p.blockStride, len(p.blocks))]
}

// newBlock takes an empty block, big if big and one is free, or returns -1.
func (s *Shard) newBlock(big bool) int32 {
	p := s.p
	if big && p.bigUnits > 0 {
		if sb, ok := p.freeBig.pop(); ok {
			return s.initBlock(p.bigBlock(sb), p.bigBytes)
		}
	}
	if b, ok := p.freeBlocks.pop(); ok {
		return s.initBlock(b, p.blockBytes)
	}
	if p.bigUnits > 0 {
		if sb, ok := p.freeBig.pop(); ok {
			u := p.bigBlock(sb)
			for i := int32(p.bigUnits) - 1; i > 0; i-- {
				p.freeBlocks.push(u + i)
			}
			return s.initBlock(u, p.blockBytes)
		}
	}
	return -1
}

func (s *Shard) initBlock(b int32, size int) int32 {
	blk := s.p.blocks[int(b)*s.p.blockStride:]
	store(&blk[blockUsed], 0)
	store(&blk[blockNext], 0)
	store(&blk[blockCap], uint64(size))
	return b
}

// freeBlock gives block b back.
func (s *Shard) freeBlock(b int32) {
	p := s.p
	if p.isBig(b) {
		p.freeBig.push((b - int32(p.smallBlocks)) / int32(p.bigUnits))
		return
	}
	p.freeBlocks.push(b)
}

// bigBlock returns the first unit of big block sb.
func (p *Pool) bigBlock(sb int32) int32 { return int32(p.smallBlocks) + sb*int32(p.bigUnits) }

// blockSize returns how many bytes of data a block holds at most.
func blockSize(blk []uint64) int { return int(blk[blockCap]) }

// isBig reports whether block b is a big one, for a writer.
func (p *Pool) isBig(b int32) bool {
	return p.blocks[int(b)*p.blockStride+blockCap] > uint64(p.blockBytes)
}

// wantBig reports whether a topic of entries entries of about entryLen
// bytes each fills a quarter of a big block: past two units, where one
// copy instead of three pays most (BenchmarkParallelReadHeavy, rooms of 32
// entries of 100 bytes: 76 ns instead of 102).
func (p *Pool) wantBig(entries, entryLen int) bool {
	return p.bigUnits > 0 && entries*(entryLen+1) >= p.bigBytes/4
}

// rendered reports whether topic record rec is rendered.
func rendered(rec []uint64) bool { return rec[topicBlocks] != 0 }

// renderEntry returns slot i's entry as List writes it. The result is valid
// until the next call. The caller holds s.mu.
func (s *Shard) renderEntry(i int32) []byte {
	w := s.p.slot(i)
	lens := w[slotLens]
	keyLen, metaLen := int(lens>>32&lensKeyMask), int(uint32(lens))
	if lens&lensEscape == 0 {
		return bytesOf(w[slotHdr:])[:payloadLen(keyLen, metaLen)]
	}
	var jw jsonwriter.Writer
	jw.Reset(s.scratch[:0], jsonwriter.Unbounded)
	s.emitJSONEscaped(&jw, true, lens, w[slotHdr:])
	return jw.Bytes()
}

// blockAppend adds an entry at the end of block b and returns where it
// starts, or -1 if it does not fit.
func (s *Shard) blockAppend(b int32, entry []byte) int32 {
	blk := s.p.block(b)
	used := int(blk[blockUsed])
	at := used
	if used > 0 {
		at++
	}
	if at+len(entry) > blockSize(blk) {
		return -1
	}
	data := blk[blockHdr:]
	if used > 0 {
		putByte(data, used, ',')
	}
	putBytes(data, at, entry)
	store(&blk[blockUsed], uint64(at+len(entry)))
	return int32(at)
}

// relabel moves the members from slot+1 from on, while they are in block
// old+1, to block to, delta bytes further from its start.
func (s *Shard) relabel(from uint64, old, to int32, delta int) {
	p := s.p
	for j := from; j != 0 && p.info[j-1].blk == old+1; j = p.slot(int32(j - 1))[slotNext] {
		in := &p.info[j-1]
		in.blk = to + 1
		in.boff += int32(delta)
	}
}

// renderAdded renders slot i, just linked at the end of topic t's member
// list. The caller holds s.mu and the topic's window.
func (s *Shard) renderAdded(t, i int32) {
	p := s.p
	rec := p.topic(t)
	in := &p.info[i]
	if !rendered(rec) {
		if entriesOf(rec[topicCount]) == 1 && p.renderWait[t] == 0 {
			// A new topic.
			if !s.renderTopic(t, false) {
				s.p.unrendered.Add(1)
				s.renderLater(t, 1)
			}
			return
		}
		s.retryRender(t)
		return
	}
	entry := s.renderEntry(i)
	in.rlen = int32(len(entry))
	last := p.info[in.prev-1].blk - 1
	if at := s.blockAppend(last, entry); at >= 0 {
		in.blk, in.boff = last+1, at
		return
	}
	head := int32(rec[topicBlocks]) - 1
	bigHead, count := p.isBig(head), entriesOf(rec[topicCount])
	b := s.newBlock(bigHead || p.isBig(last) || p.wantBig(count, len(entry)))
	if b >= 0 && !bigHead && p.isBig(b) {
		// The topic outgrew small blocks: render it again in big ones,
		// from b on. That happens once while it keeps a big first block,
		// and after a shortage not before it has doubled: O(1) a write.
		if count < int(p.bigAfter[t]) {
			s.freeBlock(b)
		} else if s.renderBig(t, b) {
			s.freeChain(head)
			return
		} else {
			p.bigAfter[t] = int32(min(2*count, p.cfg.Slots+1))
		}
		b = s.newBlock(false)
		entry = s.renderEntry(i)
	}
	if b < 0 {
		s.unrender(t)
		return
	}
	in.blk, in.boff = b+1, s.blockAppend(b, entry)
	store(&p.block(last)[blockNext], uint64(b+1))
}

// renderTopic renders every member of topic t into new blocks, big ones
// if big and there are, or leaves the topic as it is and reports false if
// there are not enough blocks.
func (s *Shard) renderTopic(t int32, big bool) bool {
	p := s.p
	if p.blockBytes == 0 {
		return true
	}
	rec := p.topic(t)
	head, last := int32(-1), int32(-1)
	for j := rec[topicHead]; j != 0; j = p.slot(int32(j - 1))[slotNext] {
		in := &p.info[j-1]
		entry := s.renderEntry(int32(j - 1))
		in.rlen = int32(len(entry))
		at := int32(-1)
		if last >= 0 {
			at = s.blockAppend(last, entry)
		}
		if at < 0 {
			b := s.newBlock(big)
			if b < 0 {
				s.freeChain(head)
				return false
			}
			if last < 0 {
				head = b
			} else {
				store(&p.block(last)[blockNext], uint64(b+1))
			}
			last = b
			at = s.blockAppend(b, entry)
		}
		in.blk, in.boff = last+1, at
	}
	if head >= 0 {
		store(&rec[topicBlocks], uint64(head+1))
	}
	return true
}

// renderBig renders rendered topic t again, into big block b and as many
// more blocks as it takes, big ones if there are. It takes them all before
// it moves an entry, so that if there are not enough it gives them back,
// b too, and reports false with the topic as it was.
func (s *Shard) renderBig(t, b int32) bool {
	p := s.p
	rec := p.topic(t)
	if s.takeChain(b, rec[topicHead], -1, true) < 0 {
		return false
	}
	// blockAppend fills them as takeChain counted.
	last := b
	for j := rec[topicHead]; j != 0; j = p.slot(int32(j - 1))[slotNext] {
		in := &p.info[j-1]
		entry := s.renderEntry(int32(j - 1))
		at := s.blockAppend(last, entry)
		if at < 0 {
			last = int32(p.block(last)[blockNext]) - 1
			at = s.blockAppend(last, entry)
		}
		in.blk, in.boff = last+1, at
	}
	store(&rec[topicBlocks], uint64(b+1))
	return true
}

// renderLater marks topic t as read from its slots, to try to render it
// again after wait more writes to it.
func (s *Shard) renderLater(t int32, wait int) {
	p := s.p
	if p.renderWait[t] == 0 {
		p.slowTopics.Add(1)
	}
	p.renderWait[t] = int32(min(wait, p.cfg.Slots)) + 1
}

// retryRender counts a write to topic t, which is read from its slots, and
// renders it when its wait is over and blocks are free; else it waits as
// many writes again as the topic has entries. The caller holds s.mu and the
// topic's window.
func (s *Shard) retryRender(t int32) {
	p := s.p
	if p.renderWait[t] == 0 {
		return // an empty topic: removeTopic forgets it
	}
	if p.renderWait[t]--; p.renderWait[t] > 1 {
		return
	}
	rec := p.topic(t)
	count := entriesOf(rec[topicCount])
	if count > 0 && s.renderTopic(t, p.wantBig(count, len(s.renderEntry(int32(rec[topicHead]-1))))) {
		p.renderWait[t] = 0
		p.slowTopics.Add(-1)
		return
	}
	p.renderWait[t] = int32(min(max(count, 1), p.cfg.Slots)) + 1
}

// forgetRender drops topic t's wait, when the topic is removed.
func (s *Shard) forgetRender(t int32) {
	p := s.p
	p.bigAfter[t] = 0
	if p.renderWait[t] != 0 {
		p.renderWait[t] = 0
		p.slowTopics.Add(-1)
	}
}

// freeChain gives back the blocks chained from b.
func (s *Shard) freeChain(b int32) {
	for b >= 0 {
		next := int32(s.p.block(b)[blockNext]) - 1
		s.freeBlock(b)
		b = next
	}
}

// unrender gives back topic t's blocks; readers then read its slots.
func (s *Shard) unrender(t int32) {
	rec := s.p.topic(t)
	s.p.unrendered.Add(1)
	s.p.bigAfter[t] = 0
	head := int32(rec[topicBlocks]) - 1
	store(&rec[topicBlocks], 0)
	s.freeChain(head)
	s.renderLater(t, entriesOf(rec[topicCount]))
}

// renderUpdated rewrites the entry of slot i, updated in place in the
// topic whose record is rec. The caller holds s.mu and the topic's window.
func (s *Shard) renderUpdated(t int32, rec []uint64, i int32) {
	p := s.p
	if !rendered(rec) {
		s.retryRender(t)
		return
	}
	in := &p.info[i]
	b := in.blk - 1
	blk := p.block(b)
	used, off, oldLen := int(blk[blockUsed]), int(in.boff), int(in.rlen)
	entry := s.renderEntry(i)
	in.rlen = int32(len(entry))
	end := off + oldLen
	if size := blockSize(blk); used-oldLen+len(entry) > size {
		// Too long for the block: the members after i go to a block of
		// their own, and then i too if it still does not fit.
		if end < used {
			if !s.splitTail(b, p.slot(i)[slotNext]) {
				s.unrender(t)
				return
			}
			used = end
			store(&blk[blockUsed], uint64(used))
		}
		if off+len(entry) > size {
			m := s.newBlock(false)
			if m < 0 {
				s.unrender(t)
				return
			}
			store(&p.block(m)[blockNext], blk[blockNext])
			store(&blk[blockNext], uint64(m+1))
			store(&blk[blockUsed], uint64(off-1))
			in.blk, in.boff = m+1, s.blockAppend(m, entry)
			return
		}
	}
	data := blk[blockHdr:]
	delta := len(entry) - oldLen
	if delta != 0 && end < used {
		s.moveWithin(data, end+delta, end, used-end)
		s.relabel(p.slot(i)[slotNext], b, b, delta)
	}
	putBytes(data, off, entry)
	if delta != 0 {
		store(&blk[blockUsed], uint64(used+delta))
	}
}

// takeChain takes blocks after block first, big ones if big and there are,
// as many as the members from slot j-1 on take back to back with their
// commas, as blockAppend places them: all of them if in is -1, else those
// in block in. It returns the last block, or -1 with every block given
// back, first too, if there are not enough.
func (s *Shard) takeChain(first int32, j uint64, in int32, big bool) int32 {
	p := s.p
	last, used := first, -1
	for ; j != 0 && (in < 0 || p.info[j-1].blk == in+1); j = p.slot(int32(j - 1))[slotNext] {
		at, l := used+1, int(p.info[j-1].rlen)
		if at+l > blockSize(p.block(last)) {
			n := s.newBlock(big)
			if n < 0 {
				s.freeChain(first)
				return -1
			}
			store(&p.block(last)[blockNext], uint64(n+1))
			last, at = n, 0
		}
		used = at + l
	}
	return last
}

// splitTail moves the members of block b from slot from-1 on, to the end
// of the block, to new blocks linked after it, of b's size if there are
// enough, else units. It takes them all before it moves an entry, so that
// if there are not enough it gives them back and reports false with the
// topic as it was.
func (s *Shard) splitTail(b int32, from uint64) bool {
	p := s.p
	big := p.isBig(b)
	first := s.newBlock(big)
	if first < 0 {
		return false
	}
	last := s.takeChain(first, from, b, big)
	if last < 0 {
		return false
	}
	blk := p.block(b)
	store(&p.block(last)[blockNext], blk[blockNext])
	store(&blk[blockNext], uint64(first+1))
	// Move them run by run: the members are back to back with their commas
	// in b, so a run fills its block as takeChain counted.
	for j, n := from, first; j != 0 && p.info[j-1].blk == b+1; n = int32(p.block(n)[blockNext]) - 1 {
		nb := p.block(n)
		start, end, members := int(p.info[j-1].boff), 0, 0
		for k := j; k != 0 && p.info[k-1].blk == b+1; k = p.slot(int32(k - 1))[slotNext] {
			e := int(p.info[k-1].boff) + int(p.info[k-1].rlen)
			if e-start > blockSize(nb) {
				break
			}
			end, members = e, members+1
		}
		s.moveBetween(nb[blockHdr:], 0, blk[blockHdr:], start, end-start)
		store(&nb[blockUsed], uint64(end-start))
		for ; members > 0; members-- {
			in := &p.info[j-1]
			in.blk, in.boff = n+1, in.boff-int32(start)
			j = p.slot(int32(j - 1))[slotNext]
		}
	}
	return true
}

// renderRemoved takes slot i's entry out of topic t's blocks; prev and next
// were its neighbours in the member list, from which it is already
// unlinked. The caller holds s.mu and the topic's window.
func (s *Shard) renderRemoved(t, i int32, prev int32, next uint64) {
	p := s.p
	rec := p.topic(t)
	if !rendered(rec) {
		s.retryRender(t)
		return
	}
	in := &p.info[i]
	b := in.blk - 1
	blk := p.block(b)
	used, l, off := int(blk[blockUsed]), int(in.rlen), int(in.boff)
	prevBlock := int32(-1)
	if prev != 0 {
		prevBlock = p.info[prev-1].blk - 1
	}
	if l == used {
		// i was the block's only member.
		link := &rec[topicBlocks]
		if prevBlock >= 0 {
			link = &p.block(prevBlock)[blockNext]
		}
		store(link, blk[blockNext])
		s.freeBlock(b)
		return
	}
	// Cut the entry and the comma before it, or after it if it was first.
	from, to := off-1, off+l
	if off == 0 {
		from, to = 0, l+1
	}
	data := blk[blockHdr:]
	if to < used {
		s.moveWithin(data, from, to, used-to)
		s.relabel(next, b, b, from-to)
	}
	used -= to - from
	store(&blk[blockUsed], uint64(used))
	// Merge with a neighbour the block now fits in, so that churn does not
	// leave a topic in many small blocks.
	if n := int32(blk[blockNext]) - 1; n >= 0 {
		nb := p.block(n)
		if nu := int(nb[blockUsed]); used+1+nu <= blockSize(blk) {
			putByte(data, used, ',')
			s.moveBetween(data, used+1, nb[blockHdr:], 0, nu)
			store(&blk[blockUsed], uint64(used+1+nu))
			store(&blk[blockNext], nb[blockNext])
			// n's first member follows b's last one.
			j := next
			for j != 0 && p.info[j-1].blk == b+1 {
				j = p.slot(int32(j - 1))[slotNext]
			}
			s.relabel(j, n, b, used+1)
			s.freeBlock(n)
			return
		}
	}
	if prevBlock >= 0 && prevBlock != b {
		pb := p.block(prevBlock)
		if pu := int(pb[blockUsed]); pu+1+used <= blockSize(pb) {
			putByte(pb[blockHdr:], pu, ',')
			s.moveBetween(pb[blockHdr:], pu+1, data, 0, used)
			store(&pb[blockUsed], uint64(pu+1+used))
			store(&pb[blockNext], blk[blockNext])
			// b's first member follows prev, which was the last of the
			// block before.
			s.relabel(next, b, prevBlock, pu+1)
			s.freeBlock(b)
		}
	}
}

// copyBlocks writes the blocks chained from head+1, of a topic of count
// entries, and reports whether their links held; the caller validates the
// read window. A chain a writer tore is cut where it holds more bytes than
// count entries can, so that a stale loop of big blocks never grows w far.
func (s *Shard) copyBlocks(w *jsonwriter.Writer, head uint64, count int) bool {
	p := s.p
	nb := uint64(p.nblocks)
	first := true
	left := count * (p.maxEntry + 1)
	for steps := 0; head != 0; steps++ {
		if head > nb || steps >= p.nblocks {
			return false // torn link
		}
		blk := p.blockToRead(int32(head - 1))
		// Clamped as a uint64: a word that is not a length may have its
		// top bit set, and would pass a clamp as a negative int.
		used := int(min(load(&blk[blockUsed]), uint64(p.bigBytes), uint64(len(blk)-blockHdr)*8))
		head = load(&blk[blockNext])
		if used == 0 {
			continue
		}
		c := 1
		if first {
			c = 0
		}
		if left -= c + used; left < 0 {
			return false // torn: more than count entries
		}
		b := w.Extend(c + used)
		if b == nil {
			return true
		}
		b[0] = ','
		copyOut(b[c:], blk[blockHdr:])
		first = false
	}
	return true
}
