package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/engine"
	"go.uber.org/goleak"
)

// Tests against real NATS: in-process nats-servers clustered by routes,
// one engine and one Node per server, with a short heartbeat and down time.

const (
	testH = 100 * time.Millisecond
	testD = 500 * time.Millisecond
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startNATS starts n servers routed to the first one and waits until each
// sees the others. advertise, when set, gives server i's advertised
// cluster address (a proxy).
func startNATS(t testing.TB, n int, routeVia func(i int, first *server.Server) string, advertise func(i int) string) []*server.Server {
	t.Helper()
	var servers []*server.Server
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "presence", Host: "127.0.0.1", Port: -1,
				PingInterval: 100 * time.Millisecond, MaxPingsOut: 2, PoolSize: -1},
		}
		if advertise != nil {
			opts.Cluster.Advertise = advertise(i)
		}
		if i > 0 {
			u := servers[0].ClusterAddr().String()
			if routeVia != nil {
				u = routeVia(i, servers[0])
			}
			opts.Routes = server.RoutesFromStr("nats://" + u)
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(5 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		servers = append(servers, s)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	waitUntil(t, "the NATS cluster forms", 5*time.Second, func() bool {
		for _, s := range servers {
			if s.NumRemotes() != n-1 {
				return false
			}
		}
		return true
	})
	return servers
}

func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

type testNode struct {
	name string
	nc   *nats.Conn
	e    *engine.Engine
	n    *Node
}

var tags atomic.Uint64

func startNode(t testing.TB, s *server.Server, name string, mod func(*Config)) *testNode {
	t.Helper()
	return startNodeURL(t, s.ClientURL(), name, mod)
}

func startNodeURL(t testing.TB, url, name string, mod func(*Config)) *testNode {
	t.Helper()
	return startNodeEngine(t, url, name, testEngine(), mod)
}

func testEngine() engine.Config {
	return engine.Config{Capacity: 20000, MaxPerSocket: 20000, RefTag: tags.Add(1)}
}

func startNodeEngine(t testing.TB, url, name string, ecfg engine.Config, mods ...func(*Config)) *testNode {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	// All unless a test says: most tests check that every node lists
	// every entry.
	cfg := Config{Node: name, Prefix: "test", Heartbeat: testH, DownAfter: testD, Logger: quiet, Replicate: All}
	for _, mod := range mods {
		if mod != nil {
			mod(&cfg)
		}
	}
	n, err := Start(context.Background(), nc, e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{name: name, nc: nc, e: e, n: n}
	t.Cleanup(func() { n.Close(); nc.Close() })
	return tn
}

// replicate sets Config.Replicate.
func replicate(r Replication) func(*Config) { return func(c *Config) { c.Replicate = r } }

// both runs test under each Replication; under Interest every node
// subscribes to the topics it must mirror, as channel does on a join.
func both(t *testing.T, test func(t *testing.T, r Replication)) {
	for _, r := range []Replication{All, Interest} {
		t.Run(r.String(), func(t *testing.T) { test(t, r) })
	}
}

// follow subscribes tn to topics, as a local socket's join does.
func (tn *testNode) follow(topics ...string) *testNode {
	for _, topic := range topics {
		tn.n.Subscribe(topic)
	}
	return tn
}

func (tn *testNode) track(t testing.TB, s engine.SocketID, topic, key, meta string) uint64 {
	t.Helper()
	_, ref, err := tn.e.TrackRef(s, topic, key, []byte(meta))
	if err != nil {
		t.Fatal(err)
	}
	tn.n.Changed(topic)
	return ref
}

// kill stops a node the way a crash does: no goodbye, and its connection
// gone.
func (tn *testNode) kill() {
	tn.nc.Close()
	tn.n.Close() // publishes nothing: the connection is closed
}

// list returns topic's entries on a node as key|meta|ref, sorted.
func list(e *engine.Engine, topic string, localOnly bool) []string {
	var snap engine.Snapshot
	e.Snapshot(&snap, topic)
	out := []string{}
	for _, ent := range snap.Entries {
		if localOnly && ent.Socket >= engine.FirstRemoteSocket {
			continue
		}
		out = append(out, fmt.Sprintf("%s|%s|%x", ent.Key, ent.Meta, ent.Ref))
	}
	sort.Strings(out)
	return out
}

// converged reports whether every node lists, in each topic, the union of
// the nodes' own entries.
func converged(nodes []*testNode, topics ...string) bool {
	for _, topic := range topics {
		var want []string
		for _, o := range nodes {
			want = append(want, list(o.e, topic, true)...)
		}
		sort.Strings(want)
		for _, nd := range nodes {
			if !slices.Equal(list(nd.e, topic, false), want) {
				return false
			}
		}
	}
	return true
}

func TestNATSCrossNodeVisibility(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 3, nil, nil)
	var nodes []*testNode
	for i, s := range ss {
		nodes = append(nodes, startNode(t, s, fmt.Sprintf("n%d", i), nil))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	ref := a.track(t, 1, "room:1", "alice", `{"s":"on"}`)
	b.track(t, 1, "room:1", "bob", `{}`)
	c.track(t, 7, "room:2", "carol", `{}`)
	waitUntil(t, "every node lists every entry", 5*time.Second, func() bool { return converged(nodes, "room:1", "room:2") })
	if got := list(c.e, "room:1", false); !slices.Contains(got, fmt.Sprintf(`alice|{"s":"on"}|%x`, ref)) {
		t.Fatalf("node c lists %q: alice's ref differs", got)
	}
	// An update keeps one entry, with the owner's new ref, everywhere.
	ref2 := a.track(t, 1, "room:1", "alice", `{"s":"away"}`)
	waitUntil(t, "the update spreads", 5*time.Second, func() bool {
		return slices.Contains(list(b.e, "room:1", false), fmt.Sprintf(`alice|{"s":"away"}|%x`, ref2)) &&
			converged(nodes, "room:1")
	})
	// Reads of remote entries are as local reads: no allocation. The
	// count is process-wide and the nodes' goroutines allocate too, so the
	// least of a few tries is List's own.
	buf := make([]byte, 4096)
	allocs := 1e9
	for range 5 {
		allocs = min(allocs, testing.AllocsPerRun(100, func() { c.e.List("room:1", buf) }))
	}
	if allocs != 0 {
		t.Fatalf("List allocates %v times", allocs)
	}
	a.e.UntrackAll(1)
	a.n.Changed("room:1")
	waitUntil(t, "the leave spreads", 5*time.Second, func() bool { return converged(nodes, "room:1") && c.e.Count("room:1") == 1 })
	for _, nd := range nodes {
		for _, p := range nd.n.Nodes() {
			if p.State != StateUp {
				t.Fatalf("%s sees %+v", nd.name, p)
			}
		}
		if st := nd.n.Stats(); st.Gaps != 0 || st.BadMessages != 0 || st.RemoteFull != 0 {
			t.Fatalf("%s: %+v", nd.name, st)
		}
	}
}

func TestNATSLateJoinerGetsFullState(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 3, nil, nil)
	// The test is of paging, not of down detection: applying the pages
	// can take longer than testD under the race detector on a loaded
	// machine, and the others would see c, silent meanwhile, go down.
	slow := func(c *Config) { c.DownAfter = 5 * time.Second }
	a := startNode(t, ss[0], "a", slow)
	b := startNode(t, ss[1], "b", slow)
	for i := range 5000 { // more than one snapshot page (256 KiB)
		a.track(t, engine.SocketID(i/50+1), fmt.Sprintf("room:%d", i%50), fmt.Sprintf("user%d", i), `{"n":"`+strings.Repeat("x", 40)+`"}`)
	}
	b.track(t, 1, "room:1", "bob", `{}`)
	topics := []string{"room:0", "room:1", "room:49"}
	waitUntil(t, "a and b converge", 10*time.Second, func() bool {
		return converged([]*testNode{a, b}, topics...) && b.e.Len() == a.e.Len()
	})
	a.n.mu.Lock()
	size := 0
	for topic, m := range a.n.c.pub {
		for s, pe := range m {
			size += len(appendOp(nil, &op{kind: opTrack, socket: uint64(s), topic: topic, key: pe.key, meta: []byte(pe.meta), ref: pe.ref}))
		}
	}
	a.n.mu.Unlock()
	if size <= pageBytes {
		t.Fatalf("a's entries take %d bytes: one snapshot page", size)
	}
	c := startNode(t, ss[2], "c", slow)
	waitUntil(t, "the late joiner has everything", 20*time.Second, func() bool {
		return converged([]*testNode{a, b, c}, topics...) && c.e.Len() == a.e.Len()
	})
	if st := a.n.Stats(); st.SnapshotsServed == 0 {
		t.Fatalf("a served no snapshot: %+v", st)
	}
}

// bobOnB starts two routed NATS servers, node a (configured by modA) on
// the first and node b on the second, tracks bob on b and waits until a
// lists him.
func bobOnB(t testing.TB, r Replication, modA func(*Config)) (ss []*server.Server, a, b *testNode) {
	t.Helper()
	ss = startNATS(t, 2, nil, nil)
	a = startNodeEngine(t, ss[0].ClientURL(), "a", testEngine(), modA, replicate(r)).follow("room")
	b = startNode(t, ss[1], "b", replicate(r))
	b.track(t, 1, "room", "bob", `{}`)
	waitUntil(t, "a lists bob", 5*time.Second, func() bool { return a.e.Count("room") == 1 })
	return ss, a, b
}

func TestNATSKilledNodeClearedWithinDownAfter(t *testing.T) {
	both(t, testNATSKilledNodeClearedWithinDownAfter)
}

func testNATSKilledNodeClearedWithinDownAfter(t *testing.T, r Replication) {
	leakCheck(t)
	events := make(chan NodeInfo, 16)
	_, a, b := bobOnB(t, r, func(c *Config) { c.OnNodeChange = func(n NodeInfo) { events <- n } })
	b.kill()
	took := waitUntil(t, "a drops bob", 10*testD, func() bool { return a.e.Count("room") == 0 })
	// D + H, one tick of a's clock (H/4) for the check itself, and slack
	// for a loaded machine.
	if limit := testD + testH + testH/4 + 200*time.Millisecond; took > limit {
		t.Fatalf("bob was cleared after %v, want at most %v", took, limit)
	}
	if took < testD-testH {
		t.Fatalf("bob was cleared after %v, before DownAfter %v", took, testD)
	}
	nodes := a.n.Nodes()
	if len(nodes) != 1 || nodes[0].State != StateDown {
		t.Fatalf("a sees %+v", nodes)
	}
	// OnNodeChange runs after the node's lock is released: the Down event
	// may come just after the entries are gone.
	var states []State
	for len(states) == 0 || states[len(states)-1] != StateDown {
		select {
		case ev := <-events:
			states = append(states, ev.State)
		case <-time.After(5 * time.Second):
			t.Fatalf("no Down event; OnNodeChange reported %v", states)
		}
	}
	if !slices.Equal(states, []State{StateSyncing, StateUp, StateDown}) {
		t.Fatalf("OnNodeChange reported %v", states)
	}
}

// Time a node spends unable to read its messages, as while it applies a
// large snapshot under its lock, is not its peers' silence: once it reads
// again, their heartbeats that waited count, and no peer goes down.
func TestNATSOwnStallIsNotPeersSilence(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	// a heartbeats rarely, so that c, once free, looks for silent nodes
	// before it reads a's heartbeats that waited.
	a := startNode(t, ss[0], "a", func(c *Config) { c.Heartbeat, c.DownAfter = 400*time.Millisecond, 10*time.Second })
	c := startNode(t, ss[0], "c", func(c *Config) { c.DownAfter = time.Second })
	a.track(t, 1, "room", "alice", `{}`)
	waitUntil(t, "c lists alice", 10*testD, func() bool { return c.e.Count("room") == 1 })
	c.n.mu.Lock()
	time.Sleep(1500 * time.Millisecond) // longer than c's DownAfter
	c.n.mu.Unlock()
	time.Sleep(800 * time.Millisecond) // c reads a's heartbeats
	if st := c.n.Stats(); st.NodesDown != 0 {
		t.Fatalf("c declared %d nodes down after its own stall", st.NodesDown)
	}
	if n := c.e.Count("room"); n != 1 {
		t.Fatalf("c lists %d entries of a, want 1", n)
	}
}

func TestNATSGoodbyeClearsAtOnce(t *testing.T) { both(t, testNATSGoodbyeClearsAtOnce) }

func testNATSGoodbyeClearsAtOnce(t *testing.T, r Replication) {
	leakCheck(t)
	_, a, b := bobOnB(t, r, nil)
	b.n.Close()
	took := waitUntil(t, "a drops bob", 10*testD, func() bool { return a.e.Count("room") == 0 })
	if took >= testD {
		t.Fatalf("goodbye took %v, not less than DownAfter %v", took, testD)
	}
}

func TestNATSRestartWithNewIncarnation(t *testing.T) { both(t, testNATSRestartWithNewIncarnation) }

func testNATSRestartWithNewIncarnation(t *testing.T, r Replication) {
	leakCheck(t)
	ss, a, b := bobOnB(t, r, nil)
	old := list(a.e, "room", false)
	b.kill()
	b2 := startNode(t, ss[1], "b", replicate(r))
	b2.track(t, 1, "room", "bob2", `{}`)
	waitUntil(t, "a lists the new incarnation only", 10*testD, func() bool {
		return converged([]*testNode{a, b2}, "room") && a.e.Count("room") == 1
	})
	if slices.Equal(old, list(a.e, "room", false)) {
		t.Fatal("the old incarnation's entry is still listed")
	}
	if st := a.n.Stats(); st.Restarts != 1 {
		t.Fatalf("a counted %d restarts", st.Restarts)
	}
}

func TestNATSSlowConsumerResyncs(t *testing.T) { both(t, testNATSSlowConsumerResyncs) }

func testNATSSlowConsumerResyncs(t *testing.T, r Replication) {
	leakCheck(t)
	ss := startNATS(t, 1, nil, nil)
	a := startNode(t, ss[0], "a", replicate(r))
	c := startNode(t, ss[0], "c", func(cfg *Config) { cfg.PendingMsgs, cfg.Replicate = 4, r })
	for i := range 20 {
		c.follow(fmt.Sprintf("room:%d", i))
	}
	// Hold c's subscription goroutine so that its pending queue fills.
	c.n.mu.Lock()
	for i := range 400 {
		a.track(t, engine.SocketID(i+1), fmt.Sprintf("room:%d", i%20), "u", `{}`)
		if i%10 == 9 {
			time.Sleep(3 * DefaultFlushInterval)
		}
	}
	time.Sleep(50 * time.Millisecond)
	c.n.mu.Unlock()
	topics := make([]string, 20)
	for i := range topics {
		topics[i] = fmt.Sprintf("room:%d", i)
	}
	waitUntil(t, "c converges", 10*time.Second, func() bool { return converged([]*testNode{a, c}, topics...) })
	if st := c.n.Stats(); st.SlowConsumer == 0 {
		t.Fatalf("no slow consumer was seen: %+v", st)
	}
}

// proxy forwards TCP connections to target until blackholed, when it
// drops every byte and new connections go nowhere.
type proxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	black  atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setTarget(addr string) { p.target.Store(&addr) }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, in)
		p.mu.Unlock()
		if p.black.Load() {
			continue // held open, never answered
		}
		target := p.target.Load()
		if target == nil {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", *target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			to.Close()
			return
		}
		if p.black.Load() {
			continue
		}
		if _, err := to.Write(buf[:n]); err != nil {
			from.Close()
			return
		}
	}
}

// heal closes every connection so that routes reconnect cleanly, and
// forwards again.
func (p *proxy) heal() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.black.Store(false)
}

func (p *proxy) close() {
	p.ln.Close()
	p.heal()
	p.wg.Wait()
}

// aliceAndBob starts node a on ss[0] and node b on ss[1], tracks alice on
// a and bob on b, and waits until both nodes list both.
func aliceAndBob(t testing.TB, ss []*server.Server, r Replication) (a, b *testNode, both []*testNode) {
	t.Helper()
	a = startNode(t, ss[0], "a", replicate(r)).follow("room")
	b = startNode(t, ss[1], "b", replicate(r)).follow("room")
	a.track(t, 1, "room", "alice", `{}`)
	b.track(t, 1, "room", "bob", `{}`)
	both = []*testNode{a, b}
	waitUntil(t, "a and b see each other", 5*time.Second, func() bool { return converged(both, "room") && a.e.Count("room") == 2 })
	return a, b, both
}

func TestNATSPartitionAndHeal(t *testing.T) { both(t, testNATSPartitionAndHeal) }

func testNATSPartitionAndHeal(t *testing.T, r Replication) {
	leakCheck(t)
	// Both directions of the only route go through proxies: each server
	// advertises its proxy as its cluster address.
	p0, p1 := newProxy(t), newProxy(t)
	ss := startNATS(t, 2, func(_ int, first *server.Server) string {
		p0.setTarget(first.ClusterAddr().String())
		return p0.addr()
	}, func(i int) string {
		if i == 0 {
			return p0.addr()
		}
		return p1.addr()
	})
	p1.setTarget(ss[1].ClusterAddr().String())
	a, b, both := aliceAndBob(t, ss, r)

	p0.black.Store(true)
	p1.black.Store(true)
	waitUntil(t, "each side drops the other", 10*testD, func() bool { return a.e.Count("room") == 1 && b.e.Count("room") == 1 })
	// Changes on one side during the split.
	a.track(t, 2, "room", "alice2", `{}`)

	p0.heal()
	p1.heal()
	waitUntil(t, "the entries come back after the heal", 15*time.Second, func() bool {
		return converged(both, "room") && a.e.Count("room") == 3
	})
}

// leakCheck checks, after every cleanup of the test, that its goroutines
// are gone.
func leakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestNATSClientFailsOverToAnotherServer(t *testing.T) {
	leakCheck(t)
	ss := startNATS(t, 2, nil, nil)
	a, b, both := aliceAndBob(t, ss, All)

	// b's server goes away; b's client moves to a's server, which it
	// learned of from the cluster, and the node carries on.
	ss[1].Shutdown()
	ss[1].WaitForShutdown()
	a.track(t, 2, "room", "alice2", `{}`)
	b.track(t, 2, "room", "bob2", `{}`)
	waitUntil(t, "a and b converge through one server", 10*time.Second, func() bool {
		return converged(both, "room") && a.e.Count("room") == 4
	})
	if got := b.nc.ConnectedUrl(); got != ss[0].ClientURL() {
		t.Fatalf("b is connected to %s, want %s", got, ss[0].ClientURL())
	}
}
