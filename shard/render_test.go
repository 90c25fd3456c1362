package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/presencekit/presence/jsonwriter"
)

// TestJSONEntriesMatchEncodingJSON writes members with plain, long and
// escaped keys and compares AppendEntries' JSON with encoding/json's
// rendering of the same entries, in join order.
func TestJSONEntriesMatchEncodingJSON(t *testing.T) {
	p := NewPool(Config{Slots: 16, Shards: 1, MaxTopic: 32, MaxKey: 24, MaxMeta: 64, History: 16, Seed: 1})
	type entry struct {
		Key  string          `json:"key"`
		Meta json.RawMessage `json:"meta"`
	}
	var want []entry
	hash := p.HashTopic("t")
	sh := p.ShardFor(hash)
	for i, key := range []string{"k", "exactly8", "nine_char", "a\"quote", "a_key_of_twenty_four_b", "line\u2028sep", "z"} {
		meta := strings.Repeat(`{"a":[`, i%3) + `{"n":"` + strings.Repeat("x", 5*i) + `"}` + strings.Repeat(`]}`, i%3)
		if _, _, err := sh.Track(uint64(i+1), "t", hash, key, jsonwriter.NeedsEscape(key), []byte(meta), 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, entry{key, json.RawMessage(meta)})
	}
	wantJSON, _ := json.Marshal(want)
	var w jsonwriter.Writer
	w.Byte('[')
	if n, _ := sh.AppendEntries(&w, JSON, "t", hash); n != len(want) {
		t.Fatalf("wrote %d entries, want %d", n, len(want))
	}
	w.Byte(']')
	if string(w.Bytes()) != string(wantJSON) {
		t.Fatalf("got  %s\nwant %s", w.Bytes(), wantJSON)
	}

	// A bounded writer either holds all of it or reports that it ran short.
	full := len(wantJSON) - 2
	for limit := 0; limit <= full; limit++ {
		w.Reset(make([]byte, 0, limit), limit)
		sh.AppendEntries(&w, JSON, "t", hash)
		if limit < full && !errors.Is(w.Err(), io.ErrShortBuffer) {
			t.Fatalf("limit %d: Err = %v, want io.ErrShortBuffer", limit, w.Err())
		}
		if limit == full && (w.Err() != nil || string(w.Bytes()) != string(wantJSON[1:len(wantJSON)-1])) {
			t.Fatalf("limit %d: got %s, %v", limit, w.Bytes(), w.Err())
		}
	}
}

// checkBlocks verifies a rendered topic's blocks against its members: they
// hold the members' rendered entries in order, each member knows its block
// and offset, and no block is empty. It reports whether the topic is
// rendered.
func checkBlocks(t *testing.T, s *Shard, topic string) bool {
	t.Helper()
	p := s.p
	ti := s.findTopic(topic, p.HashTopic(topic))
	if ti < 0 {
		return false
	}
	rec := p.topic(ti)
	if !rendered(rec) {
		return false
	}
	b := int32(rec[topicBlocks]) - 1
	used := 0
	var blk []uint64
	seen := 0
	for j := rec[topicHead]; j != 0; j = p.slot(int32(j - 1))[slotNext] {
		in := &p.info[j-1]
		if b < 0 {
			t.Fatalf("%s: member %d has no block left", topic, seen)
		}
		blk = p.block(b)
		if in.blk != b+1 {
			// The member must open the next block.
			if used != int(blk[blockUsed]) {
				t.Fatalf("%s: block %d holds %d bytes, its members %d", topic, b, blk[blockUsed], used)
			}
			b = int32(blk[blockNext]) - 1
			used = 0
			if b < 0 || in.blk != b+1 {
				t.Fatalf("%s: member %d is in block %d, want %d", topic, seen, in.blk-1, b)
			}
			blk = p.block(b)
		}
		if used > 0 {
			used++
		}
		if int(in.boff) != used {
			t.Fatalf("%s: member %d at offset %d, want %d", topic, seen, in.boff, used)
		}
		entry := string(s.renderEntry(int32(j - 1)))
		if int(in.rlen) != len(entry) {
			t.Fatalf("%s: member %d has length %d, want %d", topic, seen, in.rlen, len(entry))
		}
		if got := string(bytesOf(blk[blockHdr:])[used : used+len(entry)]); got != entry {
			t.Fatalf("%s: member %d reads %q in its block, want %q", topic, seen, got, entry)
		}
		used += len(entry)
		seen++
	}
	if used == 0 || used != int(blk[blockUsed]) || blk[blockNext] != 0 {
		t.Fatalf("%s: the last block holds %d bytes, its members %d, and links to %d", topic, blk[blockUsed], used, blk[blockNext])
	}
	return true
}

// TestRenderedBlocksFollowTheMembers tracks, updates and untracks entries
// of random sizes, keys that need escaping among them, in a few topics,
// with block pools from none to plenty. After every step each topic's JSON
// must be its members in join order, and each rendered topic's blocks must
// agree with its slots; a pool that runs dry must leave topics to their
// slots and render them again later.
func TestRenderedBlocksFollowTheMembers(t *testing.T) {
	type entry struct {
		socket    uint64
		key, meta string
	}
	for _, blocks := range []int{-1, 1, 3, 8, 32, 48, 0} {
		t.Run(fmt.Sprint("blocks=", blocks), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(blocks+2), 7))
			p := NewPool(Config{Slots: 64, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 600, History: 64, Seed: 5, RenderBlocks: blocks})
			topics := []string{"a", "b", "c"}
			model := map[string][]entry{}
			s := &p.shards[0]
			renderedOnce, unrenderedOnce, renderedAgain := false, false, false
			dry := map[string]bool{} // topics left to their slots while they have members
			randomEntry := func(socket uint64) entry {
				key := fmt.Sprint("k", socket)
				if rng.IntN(5) == 0 {
					key = fmt.Sprint("q\"\u2028", socket)
				}
				meta := `{"m":"` + strings.Repeat("x", rng.IntN(580)) + `"}`
				return entry{socket, key, meta}
			}
			for step := range 4000 {
				topic := topics[rng.IntN(len(topics))]
				hash := p.HashTopic(topic)
				members := model[topic]
				switch op := rng.IntN(10); {
				case op < 4 && len(p.info) > p.Len(): // a new member
					socket := uint64(rng.IntN(1000) + 1)
					if slices.ContainsFunc(members, func(e entry) bool { return e.socket == socket }) {
						continue
					}
					e := randomEntry(socket)
					if out, _, err := s.Track(socket, topic, hash, e.key, jsonwriter.NeedsEscape(e.key), []byte(e.meta), 0); err != nil || out != Added {
						t.Fatalf("step %d: Track = %v, %v", step, out, err)
					}
					model[topic] = append(members, e)
				case op < 7 && len(members) > 0: // an update in place
					k := rng.IntN(len(members))
					e := randomEntry(members[k].socket)
					if out, _, err := s.Track(e.socket, topic, hash, e.key, jsonwriter.NeedsEscape(e.key), []byte(e.meta), 0); err != nil || out == Added {
						t.Fatalf("step %d: Track = %v, %v", step, out, err)
					}
					members[k] = e
				case len(members) > 0: // a removal, often from the middle
					k := rng.IntN(len(members))
					if !s.Untrack(members[k].socket, topic, hash) {
						t.Fatalf("step %d: Untrack found nothing", step)
					}
					model[topic] = slices.Delete(members, k, k+1)
				}
				for _, tp := range topics {
					var want []byte
					for i, e := range model[tp] {
						if i > 0 {
							want = append(want, ',')
						}
						want = fmt.Appendf(want, `{"key":%s,"meta":%s}`, jsonwriter.AppendString(nil, e.key), e.meta)
					}
					var w jsonwriter.Writer
					n, _ := s.AppendEntries(&w, JSON, tp, p.HashTopic(tp))
					if n != len(model[tp]) || string(w.Bytes()) != string(want) {
						t.Fatalf("step %d, topic %s: wrote %d entries\n%s\nwant %d\n%s", step, tp, n, w.Bytes(), len(model[tp]), want)
					}
					switch {
					case checkBlocks(t, s, tp):
						renderedOnce = true
						if dry[tp] {
							renderedAgain = true
						}
						dry[tp] = false
					case len(model[tp]) > 0:
						unrenderedOnce = true
						dry[tp] = true
					default:
						dry[tp] = false
					}
				}
				slow := 0
				for _, tp := range topics {
					if dry[tp] {
						slow++
					}
				}
				if got := p.Counts().UnrenderedTopics; blocks > 0 && got != slow {
					t.Fatalf("step %d: UnrenderedTopics = %d, want %d", step, got, slow)
				}
			}
			if blocks >= 0 && !renderedOnce {
				t.Fatal("no topic was ever rendered")
			}
			if blocks > 0 && blocks < 8 && (!unrenderedOnce || p.Counts().Unrendered == 0) {
				t.Fatalf("the pool never ran dry (%d counted)", p.Counts().Unrendered)
			}
			if blocks == 0 && p.Counts().Unrendered != 0 {
				t.Fatalf("%d topics were left to their slots with blocks to spare", p.Counts().Unrendered)
			}
			if blocks > 1 && blocks < 8 && !renderedAgain {
				t.Fatal("no topic left to its slots was rendered again")
			}
			// Every block is either free or in use by a rendered topic.
			if blocks == 0 {
				for _, tp := range topics {
					for _, e := range model[tp] {
						s.Untrack(e.socket, tp, p.HashTopic(tp))
					}
				}
				free := drainFreeUnits(p)
				if free != p.nblocks {
					t.Fatalf("%d of %d blocks free once every topic is empty", free, p.nblocks)
				}
			}
		})
	}
}

// TestRenderedReadsAreNeverTorn reads a rendered topic's JSON while two
// writers update its entries to lengths that split and merge its blocks,
// and untrack and track them again: every read must be whole entries, each
// one version of its meta, each member once.
func TestRenderedReadsAreNeverTorn(t *testing.T) {
	tornReads(t, NewPool(Config{Slots: 64, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 600, History: 64, Seed: 9}), 4, 3000)
}

// TestBigBlockReadsAreNeverTorn is TestRenderedReadsAreNeverTorn with a
// topic that grows into big blocks and out of them again, from a pool so
// short that some renders fail, big blocks are cut into units and tails
// split into units.
func TestBigBlockReadsAreNeverTorn(t *testing.T) {
	p := NewPool(Config{Slots: 128, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 600, History: 64, Seed: 9, RenderBlocks: 28})
	if p.bigUnits == 0 || p.freeBig.next == nil || len(p.freeBig.next) == 0 {
		t.Fatal("the pool has no big blocks")
	}
	tornReads(t, p, 30, 1000)
	if c := p.Counts(); c.Unrendered == 0 {
		t.Error("the pool never ran short")
	}
}

// tornReads reads topic t's JSON while two writers, each with perWriter
// members, update them to lengths that split and merge blocks, and
// untrack and track them again: every read must be whole entries, each one
// version of its meta, each member once.
func tornReads(t *testing.T, p *Pool, perWriter, reads int) {
	t.Helper()
	if raceEnabled {
		reads /= 4
	}
	h := p.HashTopic("t")
	sh := p.ShardFor(h)
	// A version's letter fixes its length, from 10 to 580 bytes.
	meta := func(v int) []byte {
		return fmt.Appendf(nil, `{"v":"%s"}`, strings.Repeat(string(rune('a'+v%20)), 10+30*(v%20)))
	}
	members := 2 * perWriter
	for s := uint64(1); s <= uint64(members); s++ {
		if _, _, err := sh.Track(s, "t", h, fmt.Sprint("k", s), false, meta(int(s)), 0); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for wr := range 2 {
		wg.Go(func() {
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				s := uint64(1 + wr*perWriter + v%perWriter)
				if v%5 == 0 {
					sh.Untrack(s, "t", h)
				}
				if _, _, err := sh.Track(s, "t", h, fmt.Sprint("k", s), false, meta(v*7+int(s)), 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var w jsonwriter.Writer
	for range reads {
		w.Reset(nil, jsonwriter.Unbounded)
		w.Byte('[')
		n, _ := sh.AppendEntries(&w, JSON, "t", h)
		w.Byte(']')
		var got []struct {
			Key  string
			Meta struct{ V string }
		}
		if err := json.Unmarshal(w.Bytes(), &got); err != nil {
			t.Fatalf("read is not JSON (%v): %s", err, w.Bytes())
		}
		seen := map[string]bool{}
		for _, e := range got {
			body := e.Meta.V
			if seen[e.Key] || len(body) < 10 || strings.Count(body, body[:1]) != len(body) || len(body) != 10+30*int(body[0]-'a') {
				t.Fatalf("entry %s twice or torn: %q", e.Key, body)
			}
			seen[e.Key] = true
		}
		if len(got) != n || n < members-2 || n > members {
			t.Fatalf("read %d entries, AppendEntries said %d", len(got), n)
		}
	}
	close(stop)
	wg.Wait()
	if c := p.Counts(); c.Retries == 0 {
		t.Log("no read was spoiled by a write")
	}
}

// TestTopicRendersAgainOnceBlocksAreFree makes a topic of 5 entries lose its
// blocks to a dry pool, then frees every block by emptying the other
// topics, then updates the topic 12 times and adds and removes two entries
// four times: it must be rendered again, and counted as unrendered only
// while it was read from its slots. Before, only a Track that brought it
// to a power-of-two count rendered it again.
func TestTopicRendersAgainOnceBlocksAreFree(t *testing.T) {
	p := NewPool(Config{Slots: 64, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 600, History: 64, Seed: 3, RenderBlocks: 3})
	s := &p.shards[0]
	meta := func(v int) []byte { return fmt.Appendf(nil, `{"v":%d,"pad":"%s"}`, v, strings.Repeat("x", 300)) }
	track := func(socket uint64, topic string, v int) {
		t.Helper()
		if _, _, err := s.Track(socket, topic, p.HashTopic(topic), fmt.Sprint("k", socket), false, meta(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	track(100, "b", 0) // a block each
	track(101, "c", 0)
	for sock := uint64(1); sock <= 5; sock++ {
		track(sock, "a", 0) // three fit in the last block; the fourth finds none
	}
	if checkBlocks(t, s, "a") || p.Counts().UnrenderedTopics != 1 {
		t.Fatalf("a kept its blocks in a dry pool (%d unrendered)", p.Counts().UnrenderedTopics)
	}
	s.Untrack(100, "b", p.HashTopic("b"))
	s.Untrack(101, "c", p.HashTopic("c"))
	for v := 1; v <= 12; v++ {
		track(uint64(v%5+1), "a", v)
	}
	for round := range 4 {
		track(6, "a", round)
		track(7, "a", round)
		s.Untrack(6, "a", p.HashTopic("a"))
		s.Untrack(7, "a", p.HashTopic("a"))
	}
	if !checkBlocks(t, s, "a") {
		t.Fatal("a is still read from its slots with every block free")
	}
	if n := p.Counts().UnrenderedTopics; n != 0 {
		t.Fatalf("UnrenderedTopics = %d once a is rendered", n)
	}
}

// TestBigBlocks follows one topic into big blocks and through each way a
// shortage can go: a render into big blocks that finds too few blocks
// leaves the topic in its units and waits for it to double, a free big
// block is cut into units when none is left, and every unit comes back.
func TestBigBlocks(t *testing.T) {
	p := NewPool(Config{Slots: 512, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 100, History: 64, Seed: 3, RenderBlocks: 64})
	s := &p.shards[0]
	if p.bigUnits < 2 || len(p.freeBig.next) != 2 {
		t.Fatalf("%d units a big block, %d big blocks; want 2 big blocks", p.bigUnits, len(p.freeBig.next))
	}
	meta := []byte(`{"m":"` + strings.Repeat("x", 70) + `"}`) // entries of 100 bytes
	var sockets uint64
	track := func(topic string, n int) {
		t.Helper()
		for range n {
			sockets++
			if _, _, err := s.Track(sockets, topic, p.HashTopic(topic), fmt.Sprintf("k%04d", sockets), false, meta, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	head := func(topic string) int32 {
		t.Helper()
		if !checkBlocks(t, s, topic) {
			t.Fatalf("%s is not rendered", topic)
		}
		return int32(p.topic(s.findTopic(topic, p.HashTopic(topic)))[topicBlocks]) - 1
	}
	chain := func(topic string) (blocks, big int) {
		for b := head(topic); b >= 0; b = int32(p.block(b)[blockNext]) - 1 {
			blocks++
			if p.isBig(b) {
				big++
			}
		}
		return blocks, big
	}

	// Small topics stay in units; one past a quarter of a big block, when
	// it needs another block, goes big.
	track("a", 20)
	if n, big := chain("a"); big != 0 || n != 2 {
		t.Fatalf("a: %d blocks, %d big; want 2 units", n, big)
	}
	track("a", 30)
	if n, big := chain("a"); big != 1 || n != 1 {
		t.Fatalf("a: %d blocks, %d big; want one big block", n, big)
	}

	// With the other big block held, b grows in units; with it free again
	// and no unit left, b's render into big blocks finds too few and
	// leaves b as it was, waiting until it has doubled.
	held, ok := p.freeBig.pop()
	if !ok {
		t.Fatal("no big block is free")
	}
	track("b", 100)
	if n, big := chain("b"); big != 0 || n < 10 {
		t.Fatalf("b: %d blocks, %d big; want units", n, big)
	}
	p.freeBig.push(held)
	var units []int32
	for {
		u, ok := p.freeBlocks.pop()
		if !ok {
			break
		}
		units = append(units, u)
	}
	n0, _ := chain("b")
	for i := 0; ; i++ {
		track("b", 1)
		if n, _ := chain("b"); n > n0 {
			break
		}
		if i > 20 {
			t.Fatal("b never needed another block")
		}
	}
	bt := s.findTopic("b", p.HashTopic("b"))
	if _, big := chain("b"); big != 0 || p.bigAfter[bt] == 0 || int(p.bigAfter[bt]) != 2*entriesOf(p.topic(bt)[topicCount]) {
		t.Fatalf("b: %d big blocks, waits until %d members; want none, and twice its %d", big, p.bigAfter[bt], entriesOf(p.topic(bt)[topicCount]))
	}
	// The free big block was cut into units for b's new block.
	if _, ok := p.freeBig.pop(); ok {
		t.Fatal("a big block is still free")
	}
	for _, u := range units {
		p.freeBlocks.push(u)
	}
	for sock := uint64(1); sock <= 50; sock++ {
		s.Untrack(sock, "a", p.HashTopic("a"))
	}
	// Before b has doubled, a free big block stays free.
	track("b", 20)
	if _, big := chain("b"); big != 0 {
		t.Fatal("b went big before it doubled")
	}
	if sb, ok := p.freeBig.pop(); !ok {
		t.Fatal("b took the free big block")
	} else {
		p.freeBig.push(sb)
	}

	// Once every topic is empty, every unit is free.
	for sock := uint64(1); sock <= sockets; sock++ {
		for _, topic := range []string{"a", "b"} {
			s.Untrack(sock, topic, p.HashTopic(topic))
		}
	}
	free := drainFreeUnits(p)
	if free != p.nblocks {
		t.Fatalf("%d of %d units free once every topic is empty", free, p.nblocks)
	}
}

// TestTornChainIsCut reads a topic whose block chain a writer left looping
// (as a stale link can, between a reader's loads): the read must fail
// without writing more than the topic's entries can hold.
func TestTornChainIsCut(t *testing.T) {
	p := NewPool(Config{Slots: 512, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 100, History: 64, Seed: 3, RenderBlocks: 64})
	s := &p.shards[0]
	h := p.HashTopic("t")
	meta := []byte(`{"m":"` + strings.Repeat("x", 70) + `"}`)
	for i := range 60 {
		if _, _, err := s.Track(uint64(i+1), "t", h, fmt.Sprintf("k%04d", i), false, meta, 0); err != nil {
			t.Fatal(err)
		}
	}
	rec := p.topic(s.findTopic("t", h))
	head := rec[topicBlocks]
	if p.block(int32(head - 1))[blockNext] != 0 || !p.isBig(int32(head-1)) {
		t.Fatal("want the topic in one big block")
	}
	p.block(int32(head - 1))[blockNext] = head // a loop
	var w jsonwriter.Writer
	count := entriesOf(rec[topicCount])
	if s.copyBlocks(&w, head, count) {
		t.Fatal("a looping chain read as whole")
	}
	if most := count * (p.maxEntry + 1); len(w.Bytes()) > most {
		t.Fatalf("wrote %d bytes for %d entries of at most %d bytes", len(w.Bytes()), count, p.maxEntry)
	}
	p.block(int32(head - 1))[blockNext] = 0
}

// drainFreeUnits empties the pool's free stacks and returns how many units
// they held.
func drainFreeUnits(p *Pool) int {
	free := 0
	for {
		if _, ok := p.freeBlocks.pop(); !ok {
			break
		}
		free++
	}
	for {
		if _, ok := p.freeBig.pop(); !ok {
			break
		}
		free += p.bigUnits
	}
	return free
}
