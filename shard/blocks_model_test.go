package shard

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/internal/topicstates"
	"github.com/presencekit/presence/jsonwriter"
)

// checkBlockAccounting verifies, with no writer running, that every unit of
// the block pool is in exactly one place: on the free unit stack, in a free
// big block, or in one block of one rendered topic's chain (a big block
// counting for all its units). A unit in two places is a double free or a
// block shared by two chains; a unit in none is a leak. It also checks that
// UnrenderedTopics counts exactly the topics read from their slots.
func checkBlockAccounting(t *testing.T, p *Pool) {
	t.Helper()
	if p.blockBytes == 0 {
		return
	}
	// where[u] is 1 for a free unit, 2 for one in a free big block, and
	// 3+topic for one in a topic's chain.
	where := make([]int32, p.nblocks)
	name := func(w int32) string {
		switch w {
		case 1:
			return "a free unit"
		case 2:
			return "in a free big block"
		}
		return fmt.Sprint("in topic ", w-3, "'s chain")
	}
	cover := func(u int32, what int32) {
		t.Helper()
		if u < 0 || int(u) >= p.nblocks {
			t.Fatalf("%s: unit %d out of range", name(what), u)
		}
		if where[u] != 0 {
			t.Fatalf("unit %d is both %s and %s", u, name(where[u]), name(what))
		}
		where[u] = what
	}
	steps := 0
	for h := uint32(p.freeBlocks.head.Load()); h != 0; h = p.freeBlocks.next[h-1].Load() {
		if steps++; steps > p.nblocks {
			t.Fatal("the free unit stack loops")
		}
		cover(int32(h-1), 1)
	}
	steps = 0
	for h := uint32(p.freeBig.head.Load()); h != 0; h = p.freeBig.next[h-1].Load() {
		if steps++; steps > len(p.freeBig.next) {
			t.Fatal("the free big block stack loops")
		}
		u := p.bigBlock(int32(h - 1))
		for i := range int32(p.bigUnits) {
			cover(u+i, 2)
		}
	}
	slow := 0
	for si := range p.shards {
		s := &p.shards[si]
		for _, head := range s.topics {
			for ti := int32(head) - 1; ti >= 0; ti = int32(p.topic(ti)[topicChain]) - 1 {
				rec := p.topic(ti)
				count := entriesOf(rec[topicCount])
				if p.renderWait[ti] != 0 {
					slow++
					if rendered(rec) {
						t.Fatalf("topic %d is rendered and waits to render", ti)
					}
				} else if !rendered(rec) && count > 0 {
					t.Fatalf("topic %d of %d entries is neither rendered nor waiting", ti, count)
				}
				steps = 0
				for b := int32(rec[topicBlocks]) - 1; b >= 0; b = int32(p.block(b)[blockNext]) - 1 {
					if steps++; steps > p.nblocks {
						t.Fatalf("topic %d's chain loops", ti)
					}
					what := 3 + ti
					if !p.isBig(b) {
						cover(b, what)
						continue
					}
					if int(b) < p.smallBlocks || (int(b)-p.smallBlocks)%p.bigUnits != 0 {
						t.Fatalf("big block at unit %d is not on a big block's first unit", b)
					}
					if blockSize(p.block(b)) != p.bigBytes {
						t.Fatalf("big block %d holds %d bytes, want %d", b, blockSize(p.block(b)), p.bigBytes)
					}
					for i := range int32(p.bigUnits) {
						cover(b+i, what)
					}
				}
			}
		}
	}
	for u, w := range where {
		if w == 0 {
			t.Fatalf("unit %d is lost: neither free nor in a chain", u)
		}
	}
	if got := p.Counts().UnrenderedTopics; got != slow {
		t.Fatalf("UnrenderedTopics = %d, want %d", got, slow)
	}
}

// blockConfig is a pool configuration the block model test runs.
type blockConfig struct {
	name string
	cfg  Config
}

func blockConfigs() []blockConfig {
	base := Config{Slots: 160, Shards: 1, MaxTopic: 8, MaxKey: 16, MaxMeta: 600, History: 64, Seed: 11}
	with := func(f func(*Config)) Config { c := base; f(&c); return c }
	var cs []blockConfig
	for _, n := range []int{1, 2, 5, 9, 17, 28, 60, 0} {
		cs = append(cs, blockConfig{fmt.Sprint("meta600/blocks", n), with(func(c *Config) { c.RenderBlocks = n })})
	}
	for _, n := range []int{3, 12, 40, 0} {
		cs = append(cs, blockConfig{fmt.Sprint("meta100/blocks", n), with(func(c *Config) { c.MaxMeta = 100; c.RenderBlocks = n })})
	}
	for _, n := range []int{4, 13, 0} {
		cs = append(cs, blockConfig{fmt.Sprint("meta2k/blocks", n), with(func(c *Config) { c.MaxMeta = 2 << 10; c.Slots = 64; c.RenderBlocks = n })})
	}
	cs = append(cs,
		blockConfig{"meta4k", with(func(c *Config) { c.MaxMeta = 4 << 10; c.Slots = 48 })},
		blockConfig{"meta4k/blocks3", with(func(c *Config) { c.MaxMeta = 4 << 10; c.Slots = 48; c.RenderBlocks = 3 })},
		blockConfig{"meta60k", with(func(c *Config) { c.MaxMeta = 60 << 10; c.Slots = 12 })},
		blockConfig{"key1024", with(func(c *Config) { c.MaxKey = 1024; c.MaxMeta = 256; c.Slots = 48 })},
		blockConfig{"key1024/blocks5", with(func(c *Config) { c.MaxKey = 1024; c.MaxMeta = 256; c.Slots = 48; c.RenderBlocks = 5 })},
		blockConfig{"slots1", with(func(c *Config) { c.Slots = 1 })},
		blockConfig{"norender", with(func(c *Config) { c.RenderBlocks = -1 })},
		blockConfig{"shards4", with(func(c *Config) { c.Shards = 4; c.MaxMeta = 100 })},
	)
	return cs
}

// TestBlockModel drives topics across the big-block threshold and back with
// joins, updates that change an entry's length wherever it sits, removals
// from the middle, and topics emptied and filled again, under pools from a
// single block to the default and at the configuration's edges. After every
// step each topic's JSON must be its model's, each rendered topic's blocks
// must agree with its slots, every unit must be in exactly one place, and
// UnrenderedTopics must count the topics read from their slots; once every
// entry is gone, every unit must be free.
func TestBlockModel(t *testing.T) {
	type entry struct {
		socket    uint64
		key, meta string
	}
	steps := 1200
	if testing.Short() || raceEnabled {
		steps = 100
	}
	for ci, bc := range blockConfigs() {
		t.Run(bc.name, func(t *testing.T) {
			p := NewPool(bc.cfg)
			cfg := p.cfg
			rng := rand.New(rand.NewPCG(uint64(ci)+1, 99))
			topics := []string{"a", "b", "c", "d"}
			model := map[string][]entry{}
			randomKey := func(socket uint64) string {
				key := fmt.Sprint("k", socket)
				switch rng.IntN(6) {
				case 0:
					key = fmt.Sprint("q\"\u2028\x01", socket)
				case 1: // as long as allowed, escaped where it costs most
					unit := "\x01"
					if rng.IntN(2) == 0 {
						unit = "k"
					}
					key = strings.Repeat(unit, cfg.MaxKey-len(key)) + key
				}
				return key[:min(len(key), cfg.MaxKey)]
			}
			// Lengths cluster at both ends and in between, so that updates
			// grow and shrink entries by anything from a byte to a block.
			randomMeta := func() string {
				pad := cfg.MaxMeta - len(`{"m":""}`)
				n := rng.IntN(pad + 1)
				switch rng.IntN(4) {
				case 0:
					n = rng.IntN(min(pad, 8) + 1)
				case 1:
					n = pad - rng.IntN(min(pad, 8)+1)
				}
				return `{"m":"` + strings.Repeat(string(rune('a'+rng.IntN(26))), n) + `"}`
			}
			nextSocket := uint64(0)
			track := func(step int, topic string, e entry, added bool) bool {
				t.Helper()
				hash := p.HashTopic(topic)
				out, _, err := p.ShardFor(hash).Track(e.socket, topic, hash, e.key, jsonwriter.NeedsEscape(e.key), []byte(e.meta), 0)
				if err != nil {
					if added && err == ErrFull {
						return false
					}
					t.Fatalf("step %d: Track = %v", step, err)
				}
				if added != (out == Added) {
					t.Fatalf("step %d: Track = %v, want added %v", step, out, added)
				}
				return true
			}
			untrack := func(step int, topic string, k int) {
				t.Helper()
				hash := p.HashTopic(topic)
				if !p.ShardFor(hash).Untrack(model[topic][k].socket, topic, hash) {
					t.Fatalf("step %d: Untrack found nothing", step)
				}
				model[topic] = slices.Delete(model[topic], k, k+1)
			}
			var w jsonwriter.Writer
			var want []byte
			for step := range steps {
				topic := topics[rng.IntN(len(topics))]
				members := model[topic]
				switch op := rng.IntN(20); {
				case op < 8: // joins, a few at a time, to cross the threshold
					for range 1 + rng.IntN(4) {
						nextSocket++
						e := entry{nextSocket, randomKey(nextSocket), randomMeta()}
						if !track(step, topic, e, true) {
							break
						}
						model[topic] = append(model[topic], e)
					}
				case op < 14 && len(members) > 0: // updates of any length, anywhere
					for range 1 + rng.IntN(3) {
						k := rng.IntN(len(members))
						e := members[k]
						if rng.IntN(3) == 0 {
							e.key = randomKey(e.socket)
						}
						e.meta = randomMeta()
						track(step, topic, e, false)
						members[k] = e
					}
				case op < 18 && len(members) > 0: // removals, mostly from the middle
					for range 1 + rng.IntN(3) {
						if len(model[topic]) == 0 {
							break
						}
						untrack(step, topic, rng.IntN(len(model[topic])))
					}
				case op < 19: // empty the topic
					for len(model[topic]) > 0 {
						untrack(step, topic, len(model[topic])-1)
					}
				default: // untrack every other entry, from the back
					for k := len(members) - 2; k >= 0; k -= 2 {
						untrack(step, topic, k)
					}
				}
				for _, tp := range topics {
					want = want[:0]
					for i, e := range model[tp] {
						if i > 0 {
							want = append(want, ',')
						}
						want = fmt.Appendf(want, `{"key":%s,"meta":%s}`, jsonwriter.AppendString(nil, e.key), e.meta)
					}
					hash := p.HashTopic(tp)
					s := p.ShardFor(hash)
					w.Reset(w.Bytes()[:0], jsonwriter.Unbounded)
					n, _ := s.AppendEntries(&w, JSON, tp, hash)
					if n != len(model[tp]) || string(w.Bytes()) != string(want) {
						t.Fatalf("step %d, topic %s: wrote %d entries\n%s\nwant %d\n%s", step, tp, n, w.Bytes(), len(model[tp]), want)
					}
					checkBlocks(t, s, tp)
				}
				checkBlockAccounting(t, p)
			}
			for _, tp := range topics {
				for len(model[tp]) > 0 {
					untrack(steps, tp, 0)
				}
			}
			checkBlockAccounting(t, p)
			free := 0
			for h := uint32(p.freeBlocks.head.Load()); h != 0; h = p.freeBlocks.next[h-1].Load() {
				free++
			}
			for h := uint32(p.freeBig.head.Load()); h != 0; h = p.freeBig.next[h-1].Load() {
				free += p.bigUnits
			}
			if free != p.nblocks {
				t.Fatalf("%d of %d units free once every topic is empty", free, p.nblocks)
			}
			if c := p.Counts(); c.UnrenderedTopics != 0 || c.Local != 0 {
				t.Fatalf("empty pool counts %+v", c)
			}
		})
	}
}

// TestBlockReadsAreStatesUnderChurn runs one writer per topic, all topics in
// one shard sharing one block pool, each writer driving its topic across the
// big-block threshold and back (joins, updates of any length anywhere,
// removals from the middle, emptying and refilling), while readers read
// every topic lock-free. Each read must be exactly a state its topic went
// through, and afterwards every unit must be in exactly one place.
func TestBlockReadsAreStatesUnderChurn(t *testing.T) {
	ops := 700
	if testing.Short() || raceEnabled {
		ops = 200
	}
	for _, name := range []string{"meta600/blocks2", "meta600/blocks9", "meta600/blocks28", "meta600/blocks60", "meta600/blocks0", "meta100/blocks40", "meta2k/blocks13", "key1024/blocks5", "meta4k/blocks3"} {
		var cfg Config
		for _, bc := range blockConfigs() {
			if bc.name == name {
				cfg = bc.cfg
			}
		}
		t.Run(name, func(t *testing.T) {
			churnReads(t, NewPool(cfg), ops)
		})
	}
}

func churnReads(t *testing.T, p *Pool, ops int) {
	type entry struct {
		socket    uint64
		key, meta string
	}
	topics := []string{"a", "b", "c"}
	// A writer logs what it did, cheaply, so that its writes come close
	// together; the states are rebuilt from the logs afterwards.
	logs := make([][]topicstates.Op, len(topics))
	reads := make([][]uint64, len(topics)) // hashes of the JSON read, by topic
	var readsMu sync.Mutex
	// Reads of each topic that found entries; the writers start once
	// the readers have, and go on until their topic was read enough.
	readCount := make([]atomic.Int64, len(topics))
	var started sync.WaitGroup
	started.Add(2)
	minReads := int64(30)
	if raceEnabled {
		minReads = 10
	}
	done := make(chan struct{})
	var writers, readers sync.WaitGroup
	cfg := p.cfg
	// A meta says how long it is, so that a torn one shows.
	metas := map[int]string{}
	for n := range cfg.MaxMeta - len(`{"n":0000,"m":""}`) + 1 {
		if n%7 == 0 || n < 16 || n > cfg.MaxMeta-40 {
			metas[n] = fmt.Sprintf(`{"n":%04d,"m":"%s"}`, n, strings.Repeat(string(rune('a'+n%26)), n))
		}
	}
	metaLens := make([]int, 0, len(metas))
	for n := range metas {
		metaLens = append(metaLens, n)
	}
	slices.Sort(metaLens)
	for wi, topic := range topics {
		rng := rand.New(rand.NewPCG(uint64(wi), 5))
		key := func(i int) string {
			k := fmt.Sprint(topic, i)
			if rng.IntN(4) == 0 {
				k = strings.Repeat("\x01", min(cfg.MaxKey-len(k), 40)) + k
			}
			return k
		}
		writers.Go(func() {
			hash := p.HashTopic(topic)
			s := p.ShardFor(hash)
			var members []entry
			log := make([]topicstates.Op, 0, 4*ops)
			meta := func() string {
				if rng.IntN(3) == 0 {
					return metas[metaLens[rng.IntN(min(len(metaLens), 8))]]
				}
				return metas[metaLens[rng.IntN(len(metaLens))]]
			}
			track := func(e entry) error {
				_, _, err := s.Track(e.socket, topic, hash, e.key, jsonwriter.NeedsEscape(e.key), []byte(e.meta), 0)
				return err
			}
			remove := func(k int) {
				if !s.Untrack(members[k].socket, topic, hash) {
					t.Errorf("%s: Untrack found nothing", topic)
				}
				members = slices.Delete(members, k, k+1)
				log = append(log, topicstates.Op{Kind: topicstates.Remove, K: k})
			}
			next := 0
			// At least ops writes, and more until the readers have read
			// enough, within a bound.
			started.Wait()
			// On a loaded machine the readers may get no processor for a
			// while: the writers wait for them up to a deadline.
			deadline := time.Now().Add(3 * time.Second)
			for o := 0; o < ops || readCount[wi].Load() < minReads && (o%64 != 0 || time.Now().Before(deadline)); o++ {
				switch r := rng.IntN(10); {
				case r < 3 && len(members) < max(1, cfg.Slots/len(topics)): // a share of the slots each
					next++
					e := entry{uint64(wi)<<32 | uint64(next), key(next), meta()}
					if err := track(e); err == nil {
						members = append(members, e)
						log = append(log, topicstates.Op{Kind: topicstates.Join, Key: e.key, Meta: e.meta})
					} else if err != ErrFull {
						t.Error(err)
						return
					}
				case r < 8 && len(members) > 0:
					k := rng.IntN(len(members))
					members[k].meta = meta()
					if err := track(members[k]); err != nil {
						t.Error(err)
						return
					}
					log = append(log, topicstates.Op{Kind: topicstates.Update, K: k, Key: members[k].key, Meta: members[k].meta})
				case r < 9 && len(members) > 0 && (len(members) > 30 || rng.IntN(2) == 0):
					remove(rng.IntN(len(members)))
				case len(members) > 0 && rng.IntN(20) == 0:
					for len(members) > 0 {
						remove(0)
					}
				}
			}
			for len(members) > 0 {
				remove(0)
			}
			logs[wi] = log
		})
	}
	for ri := range 2 {
		readers.Go(func() {
			var w jsonwriter.Writer
			mine := make([][]uint64, len(topics))
			defer func() {
				readsMu.Lock()
				for i := range mine {
					reads[i] = append(reads[i], mine[i]...)
				}
				readsMu.Unlock()
			}()
			started.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				ti := (i + ri) % len(topics)
				hash := p.HashTopic(topics[ti])
				w.Reset(w.Bytes()[:0], jsonwriter.Unbounded)
				n, _ := p.ShardFor(hash).AppendEntries(&w, JSON, topics[ti], hash)
				if err := wholeEntries(w.Bytes(), n); err != nil {
					t.Errorf("topic %s: %v:\n%s", topics[ti], err, w.Bytes())
					return
				}
				if n > 0 {
					readCount[ti].Add(1)
				}
				mine[ti] = topicstates.AddRead(mine[ti], w.Bytes())
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	for ti, log := range logs {
		if err := topicstates.Check(log, reads[ti]); err != nil {
			t.Fatalf("topic %s: %v", topics[ti], err)
		}
	}
	checkBlockAccounting(t, p)
	if n := p.Len(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}

// wholeEntries checks that a topic's JSON holds n whole entries with
// distinct keys, each meta of the length it states.
func wholeEntries(b []byte, n int) error {
	if len(b) == 0 {
		if n != 0 {
			return fmt.Errorf("no bytes for %d entries", n)
		}
		return nil
	}
	parts := strings.Split(string(b), "\"}},{")
	if len(parts) != n {
		return fmt.Errorf("%d entries, AppendEntries said %d", len(parts), n)
	}
	seen := make(map[string]bool, n)
	for i, e := range parts {
		if i > 0 {
			e = "{" + e
		}
		if i < n-1 {
			e += "\"}}"
		}
		key, meta, ok := strings.Cut(e, `,"meta":`)
		if !ok || !strings.HasPrefix(key, `{"key":"`) || seen[key] {
			return fmt.Errorf("entry %d torn or twice: %.200s", i, e)
		}
		seen[key] = true
		l, err := strconv.Atoi(meta[len(`{"n":`):min(len(meta), len(`{"n":0000`))])
		if err != nil || !strings.HasPrefix(meta, `{"n":`) || len(meta) != len(`{"n":0000,"m":""}}`)+l {
			return fmt.Errorf("entry %d has a torn meta: %.200s", i, e)
		}
		body := meta[len(`{"n":0000,"m":"`) : len(meta)-3]
		if strings.Count(body, body[:min(1, len(body))]) != len(body) && len(body) > 0 {
			return fmt.Errorf("entry %d has a mixed meta: %.200s", i, e)
		}
	}
	return nil
}

// TestStaleLinksNeverReadOutOfRange fills the block pool with random words,
// as a reader following stale links may find it anywhere (a unit's header
// in the middle of a big block's data, lengths and links of anything), and
// copies the chain from every unit with several entry counts: no read may
// leave the pool or panic, and none may write more than the entries can
// hold.
func TestStaleLinksNeverReadOutOfRange(t *testing.T) {
	for _, name := range []string{"meta600/blocks60", "meta100/blocks40", "meta2k/blocks13", "meta4k/blocks3", "meta60k", "slots1"} {
		var cfg Config
		for _, bc := range blockConfigs() {
			if bc.name == name {
				cfg = bc.cfg
			}
		}
		t.Run(name, func(t *testing.T) {
			p := NewPool(cfg)
			s := &p.shards[0]
			rng := rand.New(rand.NewPCG(7, uint64(len(name))))
			var w jsonwriter.Writer
			for round := range 20 {
				for i := range p.blocks {
					switch rng.IntN(4) {
					case 0: // a link, maybe to the end or past it
						p.blocks[i] = uint64(rng.IntN(p.nblocks + 3))
					case 1: // a length, maybe past any block
						p.blocks[i] = uint64(rng.IntN(2*p.bigBytes + 16))
					default:
						p.blocks[i] = rng.Uint64()
					}
				}
				for head := uint64(0); head <= uint64(p.nblocks)+2; head++ {
					count := rng.IntN(4)
					if round%2 == 1 {
						count = rng.IntN(p.cfg.Slots + 1)
					}
					w.Reset(w.Bytes()[:0], jsonwriter.Unbounded)
					s.copyBlocks(&w, head, count)
					if most := count * (p.maxEntry + 1); len(w.Bytes()) > most {
						t.Fatalf("head %d: wrote %d bytes for %d entries of at most %d", head, len(w.Bytes()), count, p.maxEntry)
					}
				}
			}
		})
	}
}
