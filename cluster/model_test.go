package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/presencekit/presence/engine"
	"pgregory.net/rapid"
)

// The model test runs the core of several nodes over a simulated network
// that the test controls message by message, with a fake clock: any
// interleaving of local writes, flushes, deliveries in any order, losses,
// duplicates, kills, restarts, graceful stops, partitions, heals and clock
// steps. It
// checks the invariants at every step and, after the network quiets down,
// that every live node lists exactly the union of the live nodes' own
// entries, with the owners' refs.

const (
	simH = int64(1000) // heartbeat, in fake nanoseconds
	simD = int64(3000) // down after
	simL = int64(2000) // linger
)

var (
	simTopics = []string{"room:a", "room:b"}
	simKeys   = []string{"alice", "bob"}
	simMetas  = []string{`{"v":1}`, `{"v":2}`}
	simNames  = []string{"a", "b", "c"}
)

type simMsg struct {
	from    int
	inc     uint64
	subject string
	data    []byte
}

type simNode struct {
	name  string
	alive bool
	inc   uint64
	tag   uint64
	e     *engine.Engine
	c     *core
	dirty map[string]bool
	subs  map[string]int // local subscribers per topic (join, leave)
}

type deadInc struct {
	node int
	inc  uint64
	tag  uint64
	at   int64
}

// fataler is *testing.T or *rapid.T.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

type sim struct {
	t        fataler
	subj     subjects
	now      int64
	incs     uint64
	nodes    []*simNode
	net      []simMsg
	isolated []bool
	dead     []deadInc
	// lastFrom[x][inc] is when node x last received a message of inc.
	lastFrom []map[uint64]int64
	// tagInc maps an engine RefTag to its incarnation.
	tagInc map[uint64]uint64
	// tagNode maps an engine RefTag to its node.
	tagNode map[uint64]int
	// replicate is each node's Replication, All unless a test says, and
	// nbuckets the nodes' bucket count.
	replicate []Replication
	nbuckets  uint32
	// stepwise leaves snapshots being applied to the step action, so
	// that messages and clock steps come between their pieces.
	stepwise bool
}

func newSim(t fataler, n int) *sim {
	return newSimWith(t, n, slices.Repeat([]Replication{All}, n), numBuckets)
}

func newSimWith(t fataler, n int, replicate []Replication, nbuckets uint32) *sim {
	s := &sim{t: t, subj: subjects{"p"}, isolated: make([]bool, n), tagInc: map[uint64]uint64{}, tagNode: map[uint64]int{},
		replicate: replicate, nbuckets: nbuckets}
	for i := range n {
		s.nodes = append(s.nodes, &simNode{name: simNames[i]})
		s.lastFrom = append(s.lastFrom, map[uint64]int64{})
		s.start(i)
	}
	return s
}

func (s *sim) start(i int) {
	nd := s.nodes[i]
	s.incs++
	nd.inc, nd.tag = s.incs, s.incs
	s.tagInc[nd.tag] = nd.inc
	s.tagNode[nd.tag] = i
	// Short change histories on some nodes, so that publishing takes both
	// the incremental path and the full one.
	e, err := engine.New(engine.Config{Capacity: 256, MaxPerSocket: 256, RefTag: nd.tag, History: []int{2, 8, 0}[i]})
	if err != nil {
		s.t.Fatal(err)
	}
	nd.e, nd.alive, nd.dirty, nd.subs = e, true, map[string]bool{}, map[string]int{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nd.c = newCore(nd.name, nd.inc, simH, simD, e, log, s.subj, 7, nd.tag)
	nd.c.replicate = s.replicate[i]
	nd.c.nbuckets = s.nbuckets
	nd.c.linger = simL
	nd.c.piece = []int{1, 2, applyPiece}[i]  // snapshots applied in pieces
	nd.c.small = []int{-1, 1, smallTopic}[i] // history only, mixed, whole reads only
	// Messages of one to a few entries: batches and snapshots in pages.
	nd.c.batchBytes = []int{1, 40, maxBatchBytes}[i]
	nd.c.pageBytes = []int{1, 60, pageBytes}[i]
	inc := nd.inc
	nd.c.emit = func(subject string, data []byte) {
		s.net = append(s.net, simMsg{from: i, inc: inc, subject: subject, data: slices.Clone(data)})
	}
	nd.c.tick(s.now)
}

func (s *sim) deliver(k int) {
	m := s.net[k]
	s.net = slices.Delete(s.net, k, k+1)
	for x, nd := range s.nodes {
		if !nd.alive || (s.isolated[x] || s.isolated[m.from]) && x != m.from {
			continue
		}
		switch m.subject {
		case s.subj.stream(s.nodes[m.from].name):
		case s.subj.syncReq(nd.name), s.subj.reply(nd.name):
		default:
			k, ok := s.bucketOf(m.subject)
			if !ok || !nd.c.follows(k) {
				continue
			}
		}
		s.lastFrom[x][m.inc] = s.now
		nd.c.now = s.now
		nd.c.onMessage(m.data)
		for !s.stepwise && nd.c.step() {
		}
		clear(nd.c.notify)
		s.check(x)
	}
}

// bucketOf returns the bucket whose deltas travel on subject.
func (s *sim) bucketOf(subject string) (uint32, bool) {
	v, ok := strings.CutPrefix(subject, s.subj.prefix+".d.")
	if !ok {
		return 0, false
	}
	k, err := strconv.ParseUint(v, 10, 32)
	return uint32(k), err == nil
}

func (s *sim) flush(i int) {
	nd := s.nodes[i]
	if !nd.alive {
		return
	}
	topics := slices.Sorted(maps.Keys(nd.dirty))
	clear(nd.dirty)
	nd.c.now = s.now
	nd.c.flushLocal(topics)
}

func (s *sim) advance(dt int64) {
	s.now += dt
	for x, nd := range s.nodes {
		if nd.alive {
			nd.c.tick(s.now)
			clear(nd.c.notify)
			s.check(x)
		}
	}
}

// entries lists what node x's engine holds in topic, as key|meta|ref.
func (s *sim) entries(x int, topic string, local bool) []string {
	var snap engine.Snapshot
	s.nodes[x].e.Snapshot(&snap, topic)
	var out []string
	for _, e := range snap.Entries {
		if local && e.Socket >= remoteBase {
			continue
		}
		out = append(out, fmt.Sprintf("%s|%s|%x", e.Key, e.Meta, e.Ref))
	}
	sort.Strings(out)
	return out
}

// join and leave stand for a local socket joining topic on node i, and
// leaving it.
func (s *sim) join(i int, topic string) {
	nd := s.nodes[i]
	nd.subs[topic]++
	nd.c.now = s.now
	nd.c.join(topic)
	clear(nd.c.notify)
	s.check(i)
}

func (s *sim) leave(i int, topic string) {
	nd := s.nodes[i]
	if nd.subs[topic] == 0 {
		return
	}
	nd.subs[topic]--
	nd.c.now = s.now
	nd.c.leave(topic)
	s.check(i)
}

// check asserts what must hold at every step on node x.
func (s *sim) check(x int) {
	nd := s.nodes[x]
	s.checkSnaps(nd)
	for _, topic := range simTopics {
		var snap engine.Snapshot
		nd.e.Snapshot(&snap, topic)
		held := 0
		for _, p := range nd.c.peers {
			for k := range p.want {
				if k.topic == topic {
					held++
				}
			}
		}
		if held != nd.c.rtopics[topic] {
			s.t.Fatalf("node %s counts %d remote entries in %s, holds %d", nd.name, nd.c.rtopics[topic], topic, held)
		}
		// A topic lingers for simL after its last subscriber left, and no
		// longer than a tick after that.
		in := nd.c.interest[topic]
		switch {
		case nd.c.replicate == All:
		case nd.subs[topic] > 0 && (in == nil || in.n != nd.subs[topic]):
			s.t.Fatalf("node %s has %d subscribers of %s, follows it with %+v", nd.name, nd.subs[topic], topic, in)
		case in != nil && in.n == 0 && s.now > in.until+simH:
			s.t.Fatalf("node %s still follows %s at %d, linger over at %d", nd.name, topic, s.now, in.until)
		}
		for _, e := range snap.Entries {
			if e.Socket < remoteBase {
				continue
			}
			// Under Interest, only the topics followed are mirrored.
			if !nd.c.wants(topic) {
				s.t.Fatalf("node %s mirrors %s of %s, a topic it does not follow", nd.name, e.Key, topic)
			}
			tag := e.Ref >> 48
			inc := s.tagInc[tag]
			// A stale incarnation never shows.
			if p := nd.c.peers[s.nodes[s.tagNode[tag]].name]; p != nil && p.inc > inc {
				s.t.Fatalf("node %s lists %s of incarnation %d, but knows incarnation %d", nd.name, e.Key, inc, p.inc)
			}
			// A dead node's entries are gone by D+H after the last
			// message of it arrived.
			for _, d := range s.dead {
				if d.tag != tag {
					continue
				}
				since := max(d.at, s.lastFrom[x][d.inc])
				if s.now-since > simD+simH {
					s.t.Fatalf("node %s still lists %s of dead incarnation %d at %d (dead at %d, last heard %d)",
						nd.name, e.Key, d.inc, s.now, d.at, s.lastFrom[x][d.inc])
				}
			}
		}
	}
}

// checkSnaps asserts that the snapshots node nd serves are copy-on-write:
// a map a snapshot still reads is either no longer the topic's published
// map or marked shared, so that the owner copies it before a change;
// reading counts the snapshots with maps left to read; and no topic is
// shared while none reads.
func (s *sim) checkSnaps(nd *simNode) {
	c, reading := nd.c, 0
	for _, sn := range c.snaps {
		if len(sn.topics) > 0 {
			reading++
		}
		for _, t := range sn.topics {
			_, shared := c.shared[t.topic]
			if m, ok := c.pub[t.topic]; ok && reflect.ValueOf(m).UnsafePointer() == reflect.ValueOf(t.m).UnsafePointer() && !shared {
				s.t.Fatalf("node %s may change the map of %s that snapshot %d still reads", nd.name, t.topic, sn.id)
			}
		}
	}
	if reading != c.reading || reading == 0 && len(c.shared) > 0 {
		s.t.Fatalf("node %s counts %d snapshots reading, %d do; %d topics shared", nd.name, c.reading, reading, len(c.shared))
	}
}

func (s *sim) kill(i int, goodbye bool) {
	nd := s.nodes[i]
	if goodbye {
		nd.c.goodbye()
	}
	nd.alive = false
	for _, p := range nd.c.peers {
		p.fin.close() // a dead node's scan of the entries held goes with it
	}
	s.dead = append(s.dead, deadInc{node: i, inc: nd.inc, tag: nd.tag, at: s.now})
}

// quiesce heals the network and lets it settle: flush, deliver everything
// in order, step the clock, for long enough that dead nodes expire and
// every sync finishes.
// stepAll applies what snapshots are being applied on every node.
func (s *sim) stepAll() {
	for x, nd := range s.nodes {
		for nd.alive && nd.c.step() {
			s.check(x)
		}
	}
}

func (s *sim) quiesce() {
	clear(s.isolated)
	s.stepwise = false
	s.stepAll()
	for range 2*int(simD/simH) + 6 {
		for i := range s.nodes {
			s.flush(i)
		}
		for n := 0; len(s.net) > 0; n++ {
			if n > 1_000_000 {
				s.t.Fatal("the network does not quiet down")
			}
			s.deliver(0)
		}
		s.advance(simH / 2)
	}
	for n := 0; len(s.net) > 0; n++ {
		if n > 1_000_000 {
			s.t.Fatal("the network does not quiet down")
		}
		s.deliver(0)
	}
}

func (s *sim) checkConverged() {
	for x, nd := range s.nodes {
		if !nd.alive {
			continue
		}
		for _, topic := range simTopics {
			// A node that follows topic lists every node's entries, and
			// one that does not (after the linger) its own only.
			follows := nd.c.replicate == All || nd.subs[topic] > 0
			if follows != nd.c.wants(topic) {
				s.t.Fatalf("node %s follows %s: %v, want %v", nd.name, topic, nd.c.wants(topic), follows)
			}
			if follows && !nd.c.fetched(topic) {
				s.t.Fatalf("node %s still fetches %s", nd.name, topic)
			}
			var want []string
			for y, o := range s.nodes {
				if o.alive && (follows || y == x) {
					want = append(want, s.entries(y, topic, true)...)
				}
			}
			sort.Strings(want)
			got := s.entries(x, topic, false)
			if !slices.Equal(got, want) {
				s.t.Fatalf("node %s lists %q in %s, want %q", nd.name, got, topic, want)
			}
		}
		for _, p := range nd.c.peers {
			wantState := StateDown
			for _, o := range s.nodes {
				if o.name == p.name && o.alive {
					wantState = StateUp
				}
			}
			if p.state != wantState {
				s.t.Fatalf("node %s sees %s as %v, want %v", nd.name, p.name, p.state, wantState)
			}
			if len(p.failed) != 0 {
				s.t.Fatalf("node %s has %d entries of %s not stored", nd.name, len(p.failed), p.name)
			}
		}
	}
}

func TestModelRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Each node mirrors all or by interest; topics share a bucket, or
		// (most likely with many buckets) do not.
		modes := rapid.SliceOfN(rapid.SampledFrom([]Replication{Interest, All}), 3, 3).Draw(t, "replicate")
		nbuckets := rapid.SampledFrom([]uint32{1, 2, numBuckets}).Draw(t, "buckets")
		s := newSimWith(t, 3, modes, nbuckets)
		s.stepwise = true
		node := rapid.IntRange(0, 2)
		live := func(t *rapid.T) (int, bool) {
			i := node.Draw(t, "node")
			return i, s.nodes[i].alive
		}
		t.Repeat(map[string]func(*rapid.T){
			"track": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				sock := engine.SocketID(rapid.IntRange(1, 3).Draw(t, "socket"))
				topic := rapid.SampledFrom(simTopics).Draw(t, "topic")
				key := rapid.SampledFrom(simKeys).Draw(t, "key")
				meta := rapid.SampledFrom(simMetas).Draw(t, "meta")
				if err := s.nodes[i].e.Track(sock, topic, key, []byte(meta)); err != nil {
					t.Fatal(err)
				}
				s.nodes[i].dirty[topic] = true
			},
			"untrack": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				sock := engine.SocketID(rapid.IntRange(1, 3).Draw(t, "socket"))
				topic := rapid.SampledFrom(simTopics).Draw(t, "topic")
				s.nodes[i].e.Untrack(sock, topic)
				s.nodes[i].dirty[topic] = true
			},
			"untrackAll": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				sock := engine.SocketID(rapid.IntRange(1, 3).Draw(t, "socket"))
				s.nodes[i].e.UntrackAll(sock)
				for _, topic := range simTopics {
					s.nodes[i].dirty[topic] = true
				}
			},
			"join": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.join(i, rapid.SampledFrom(simTopics).Draw(t, "topic"))
			},
			"leave": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.leave(i, rapid.SampledFrom(simTopics).Draw(t, "topic"))
			},
			"flush": func(t *rapid.T) { s.flush(node.Draw(t, "node")) },
			"step": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.nodes[i].c.step()
				clear(s.nodes[i].c.notify)
				s.check(i)
			},
			"deliver": func(t *rapid.T) {
				if len(s.net) == 0 {
					t.Skip("nothing in flight")
				}
				// Mostly in order, sometimes out of order.
				k := 0
				if rapid.IntRange(0, 3).Draw(t, "reorder") == 0 {
					k = rapid.IntRange(0, len(s.net)-1).Draw(t, "msg")
				}
				s.deliver(k)
			},
			"deliverAll": func(t *rapid.T) {
				for len(s.net) > 0 {
					s.deliver(0)
				}
			},
			"duplicate": func(t *rapid.T) {
				if len(s.net) == 0 {
					t.Skip("nothing in flight")
				}
				k := rapid.IntRange(0, len(s.net)-1).Draw(t, "msg")
				s.net = append(s.net, s.net[k])
			},
			"lose": func(t *rapid.T) {
				if len(s.net) == 0 {
					t.Skip("nothing in flight")
				}
				k := rapid.IntRange(0, len(s.net)-1).Draw(t, "msg")
				s.net = slices.Delete(s.net, k, k+1)
			},
			"advance": func(t *rapid.T) {
				s.advance(rapid.Int64Range(0, simH).Draw(t, "dt"))
			},
			"kill": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.kill(i, false)
			},
			"stop": func(t *rapid.T) {
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.kill(i, true)
			},
			"restart": func(t *rapid.T) {
				i, ok := live(t)
				if ok {
					t.Skip("alive")
				}
				s.start(i)
			},
			"resync": func(t *rapid.T) {
				// Messages lost to a slow consumer: every sync starts
				// over, abandoning snapshots being read and applied.
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				s.nodes[i].c.resyncAll()
				s.check(i)
			},
			"forgePage": func(t *rapid.T) {
				// A page no request of the node carries.
				i, ok := live(t)
				if !ok {
					t.Skip("dead")
				}
				j := node.Draw(t, "from")
				o := s.nodes[j]
				if j == i || !o.alive {
					t.Skip("self or dead")
				}
				nd := s.nodes[i]
				pg := syncPage{req: 0, snap: rapid.Uint64Range(0, 3).Draw(t, "snap"), offset: rapid.Uint64Range(0, 2).Draw(t, "offset")}
				if p := nd.c.peers[o.name]; p != nil && rapid.Bool().Draw(t, "current") {
					pg.snap, pg.offset = p.snapID, uint64(len(p.pages))
				}
				b := appendHeader(nil, kindSyncPage, o.name, o.inc)
				b = appendSyncPageHead(b, &pg, 1)
				b = appendTrack(b, 77, simTopics[0], "ghost", `{}`, o.tag<<48|1)
				nd.c.now = s.now
				nd.c.onMessage(b)
				clear(nd.c.notify)
				s.check(i)
			},
			"partition": func(t *rapid.T) { s.isolated[node.Draw(t, "node")] = true },
			"heal":      func(t *rapid.T) { clear(s.isolated) },
		})
		s.quiesce()
		s.checkConverged()
	})
}
