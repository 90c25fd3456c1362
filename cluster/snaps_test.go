package cluster

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/presencekit/presence/engine"
)

// snapFlock is an owner and receivers on one fake clock and one
// in-memory transport that delivers in order (FIFO), the receivers
// mirroring everything: enough to sync many receivers from one owner at
// once.
type snapFlock struct {
	t     *testing.T
	subj  subjects
	now   int64
	cores []*core
	net   []simMsg
}

func (f *snapFlock) start(replicate Replication) *core {
	i := len(f.cores)
	e, err := engine.New(engine.Config{Capacity: 4096, MaxPerSocket: 64, RefTag: uint64(i + 1)})
	if err != nil {
		f.t.Fatal(err)
	}
	c := newCore(fmt.Sprintf("n%d", i), uint64(i+1), flockH, flockD, e, quiet, f.subj, 7, uint64(i+1))
	c.replicate = replicate
	c.emit = func(subject string, data []byte) {
		f.net = append(f.net, simMsg{from: i, subject: subject, data: slices.Clone(data)})
	}
	f.cores = append(f.cores, c)
	c.tick(f.now)
	return c
}

// deliver delivers at most n messages, in order, applying snapshots
// whole; it reports whether the network is quiet.
func (f *snapFlock) deliver(n int) bool {
	for ; n > 0 && len(f.net) > 0; n-- {
		m := f.net[0]
		f.net = f.net[1:]
		for x, c := range f.cores {
			if x == m.from {
				continue
			}
			if m.subject == f.subj.stream(f.cores[m.from].name) || m.subject == f.subj.syncReq(c.name) || m.subject == f.subj.reply(c.name) ||
				c.replicate == All && strings.HasPrefix(m.subject, f.subj.prefix+".d.") {
				c.now = f.now
				c.onMessage(m.data)
				for c.step() {
				}
			}
		}
	}
	return len(f.net) == 0
}

func (f *snapFlock) tick() {
	f.now += flockTick
	for _, c := range f.cores {
		c.tick(f.now)
	}
}

// More receivers than the owner keeps snapshots for (maxSnaps), syncing
// a snapshot of several pages from it at once, all get it: a new
// snapshot does not throw away one a receiver is still reading, which
// would make that receiver start over and throw away another's, for
// ever.
func TestMoreReceiversThanSnapshotsAllSync(t *testing.T) {
	const receivers, entries = maxSnaps + 4, 60
	f := &snapFlock{t: t, subj: subjects{"p"}}
	owner := f.start(Interest)
	owner.pageBytes = 100 // a few entries a page: a dozen pages
	for i := range entries {
		if err := owner.e.(*engine.Engine).Track(engine.SocketID(i+1), "room", fmt.Sprintf("u%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	owner.flushLocal([]string{"room"})
	for range receivers {
		f.start(All)
	}
	synced := func() int {
		n := 0
		for _, c := range f.cores[1:] {
			if p := c.peers[owner.name]; p != nil && p.state == StateUp && len(p.want) == entries {
				n++
			}
		}
		return n
	}
	// Each receiver reads about a dozen pages, so a few thousand messages
	// a round are plenty; a receiver refused waits a sync timeout (five
	// ticks) and asks again.
	for round := 0; round < 60 && synced() < receivers; round++ {
		f.deliver(5_000)
		f.tick()
	}
	if got := synced(); got < receivers {
		t.Fatalf("%d of %d receivers hold the owner's %d entries; the owner served %d snapshots", got, receivers, entries, owner.st.snapshotsServed)
	}
	if len(owner.snaps) > maxSnaps {
		t.Fatalf("the owner keeps %d snapshots, more than %d", len(owner.snaps), maxSnaps)
	}
}

// A request for a new snapshot at an offset other than 0, which no
// receiver makes, is answered as an unknown snapshot and takes none: a
// snapshot taken for it could never be served, and would push out one
// that is being read.
func TestNewSnapshotAskedPastItsStartTakesNone(t *testing.T) {
	f := &snapFlock{t: t, subj: subjects{"p"}}
	owner := f.start(Interest)
	if err := owner.e.(*engine.Engine).Track(1, "room", "u", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	owner.flushLocal([]string{"room"})
	f.net = f.net[:0]
	owner.onSyncReq(header{kind: kindSyncReq, node: "r", inc: 1}, syncReq{req: 3, offset: 5, all: true, nbuckets: owner.nbuckets})
	if len(owner.snaps) != 0 || owner.reading != 0 || len(owner.shared) != 0 {
		t.Fatalf("the owner keeps %d snapshots, %d being read, %d topics shared; want none", len(owner.snaps), owner.reading, len(owner.shared))
	}
	if len(f.net) != 1 {
		t.Fatalf("%d answers, want 1", len(f.net))
	}
	r := reader{b: f.net[0].data}
	readHeader(&r)
	if pg := readSyncPage(&r); r.done() != nil || pg.snap != 0 || pg.req != 3 || len(pg.entries) != 0 {
		t.Fatalf("answered %+v (%v); want an unknown snapshot", pg, r.err)
	}
}

// A sync page with request 0, which no request of this node carries,
// is stale whatever the phase of a sync: while a snapshot is applied or
// its buffered batches replayed (the request answered, so 0), it would
// otherwise be taken for the snapshot's next page, or start another
// snapshot that throws away the replay and the batches in it.
func TestSyncPageOfRequestZeroIsStale(t *testing.T) {
	const n = 3000
	for _, phase := range []int{finIndex, finReplay} {
		t.Run(fmt.Sprint(phase), func(t *testing.T) {
			s, c, p, _ := bigReplay(t, n)
			for p.fin == nil || p.fin.phase < phase {
				if !c.c.step() {
					t.Fatal("the sync ended early")
				}
			}
			owner := s.nodes[2]
			pg := syncPage{req: 0, snap: p.snapID, offset: uint64(len(p.pages))}
			if phase == finReplay {
				pg.snap, pg.offset = 99, 0
			}
			b := appendHeader(nil, kindSyncPage, owner.name, owner.inc)
			b = appendSyncPageHead(b, &pg, 1)
			b = appendTrack(b, 999_999, "room:0", "ghost", `{}`, owner.tag<<48|1)
			fin, stale := p.fin, c.c.st.stale
			c.c.onMessage(b)
			if p.fin != fin || c.c.st.stale != stale+1 {
				t.Fatalf("a page of request 0 was taken: applying the same %v, stale %d more", p.fin == fin, c.c.st.stale-stale)
			}
			for c.c.step() {
			}
			for i := range replayTopics {
				topic := fmt.Sprintf("room:%d", i)
				if got, want := s.entries(0, topic, false), s.entries(2, topic, true); !slices.Equal(got, want) {
					t.Fatalf("c lists %d entries in %s, the owner %d, or they differ", len(got), topic, len(want))
				}
			}
		})
	}
}

// A receiver that starts its sync over many times in a row (a slow
// consumer resyncs at every tick) leaves the owner no snapshot of it but
// its last: another receiver is served at once, not after a sync
// timeout.
func TestRestartedSyncsDoNotCrowdOutOthers(t *testing.T) {
	f := &snapFlock{t: t, subj: subjects{"p"}}
	owner := f.start(Interest)
	owner.pageBytes = 100
	for i := range 60 {
		if err := owner.e.(*engine.Engine).Track(engine.SocketID(i+1), "room", fmt.Sprintf("u%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	owner.flushLocal([]string{"room"})
	a := f.start(All)
	f.deliver(1000)
	pa := a.peers[owner.name]
	if pa == nil || pa.state != StateUp {
		t.Fatal("a did not sync the owner")
	}
	for range maxSnaps + 1 {
		a.resyncPeer(pa)
		f.deliver(1) // the request: the owner takes a snapshot and answers its first page
		f.net = f.net[:0]
	}
	if len(owner.snaps) != 1 {
		t.Fatalf("the owner keeps %d snapshots for a, which reads one at a time", len(owner.snaps))
	}
	b := f.start(All)
	for range 2 { // the owner greets b a tenth of a heartbeat later, within a tick
		f.deliver(100_000)
		f.tick()
	}
	f.deliver(100_000)
	if pb := b.peers[owner.name]; pb == nil || pb.state != StateUp || len(pb.want) != 60 {
		t.Fatalf("b did not get the owner's entries without waiting: %+v", pb)
	}
}

// A snapshot whose receiver never reads it to the end does not pin the
// maps it froze: once it expires, or its receiver asks for a new one, it
// lets them go, no topic is shared any more, and the owner's changes
// write its maps in place again instead of copying them.
func TestUnreadSnapshotReleasesItsMaps(t *testing.T) {
	for _, end := range []string{"expired", "asked again"} {
		t.Run(end, func(t *testing.T) {
			f := &snapFlock{t: t, subj: subjects{"p"}}
			owner := f.start(Interest)
			owner.pageBytes = 100
			e := owner.e.(*engine.Engine)
			for i := range 60 {
				if err := e.Track(engine.SocketID(i+1), "room", fmt.Sprintf("u%d", i), []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
			}
			owner.flushLocal([]string{"room"})
			ask := func() {
				owner.onSyncReq(header{kind: kindSyncReq, node: "r", inc: 1}, syncReq{req: 1, all: true, nbuckets: owner.nbuckets})
			}
			ask() // its first page only: the rest is never asked for
			s := owner.snaps[0]
			frozen := reflect.ValueOf(s.topics[0].m).UnsafePointer()
			change := func(meta string) {
				if err := e.Track(1, "room", "u0", []byte(meta)); err != nil {
					t.Fatal(err)
				}
				owner.flushLocal([]string{"room"})
			}
			change(`{"v":1}`) // copies the frozen map
			if reflect.ValueOf(owner.pub["room"]).UnsafePointer() == frozen {
				t.Fatal("the owner changed the map a snapshot reads")
			}
			switch end {
			case "expired":
				owner.tick(owner.now + 4*owner.syncTimeout() + 1)
				if len(owner.snaps) != 0 {
					t.Fatalf("%d snapshots kept after they expired", len(owner.snaps))
				}
			case "asked again":
				ask()
				if len(owner.snaps) != 1 || owner.snaps[0] == s {
					t.Fatal("the receiver's first snapshot is kept")
				}
				owner.tick(owner.now + 4*owner.syncTimeout() + 1)
			}
			if s.topics != nil || s.keys != nil || owner.reading != 0 || len(owner.shared) != 0 {
				t.Fatalf("the forgotten snapshot still holds %d maps; %d snapshots reading, %d topics shared", len(s.topics), owner.reading, len(owner.shared))
			}
			before := reflect.ValueOf(owner.pub["room"]).UnsafePointer()
			change(`{"v":2}`)
			if reflect.ValueOf(owner.pub["room"]).UnsafePointer() != before {
				t.Fatal("the owner still copies a map no snapshot reads")
			}
		})
	}
}
