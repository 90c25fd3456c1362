package clustermode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/progress"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// ScaleReport is what a -cluster-scale run measured; its JSON is
// presbench's -json report of -mode cluster -cluster-scale.
type ScaleReport struct {
	Simulation    string  `json:"simulation"` // "scale"
	Replicate     string  `json:"replicate"`
	Buckets       int     `json:"buckets"` // cluster.Config.Buckets
	Nodes         int     `json:"nodes"`
	Topics        int     `json:"topics"`
	Entries       int     `json:"entries"`
	Share         float64 `json:"share"`
	Zipf          float64 `json:"zipf"`
	TopicsPerNode float64 `json:"topics_per_node"`    // mean
	MaxTopicNodes int     `json:"max_nodes_in_topic"` // the most popular topic's
	MaxTopicSize  int     `json:"max_topic_entries"`
	Capacity      int     `json:"capacity_per_node"`
	LocalCapacity int     `json:"local_capacity_per_node"`
	// From the first node's start until every node saw every other up,
	// and the heartbeats the nodes sent meanwhile.
	StartSec        float64 `json:"start_sec"`
	StartHeartbeats uint64  `json:"start_heartbeats"`
	JoinSec         float64 `json:"join_sec"` // from the first join until every view matched the truth
	// How long Node.Subscribe took: a node's first join of a topic, which
	// under interest replication fetches the topic's entries.
	JoinSubscribeP50ms float64 `json:"join_subscribe_p50_ms"`
	JoinSubscribeP99ms float64 `json:"join_subscribe_p99_ms"`
	JoinSubscribeMaxMs float64 `json:"join_subscribe_max_ms"`
	MoveSubscribes     int     `json:"move_subscribes"` // during the churn
	MoveSubscribeP50ms float64 `json:"move_subscribe_p50_ms"`
	MoveSubscribeP99ms float64 `json:"move_subscribe_p99_ms"`
	MoveSubscribeMaxMs float64 `json:"move_subscribe_max_ms"`

	// Per node, at the end: the remote entries held, against the remote
	// entries of the topics the node is in (what it must hold).
	RemoteHeldMean     float64 `json:"remote_entries_mean"`
	RemoteInterestMean float64 `json:"remote_entries_of_its_topics_mean"`
	RemoteRatioMean    float64 `json:"remote_ratio_mean"`
	RemoteRatioMax     float64 `json:"remote_ratio_max"`
	// The nodes' own figures (cluster.Stats), summed or averaged.
	TopicsMirroredMean float64 `json:"topics_mirrored_mean"`
	StatsRemoteMean    float64 `json:"stats_remote_entries_mean"`
	SnapshotFetches    uint64  `json:"snapshot_fetches"`
	LingerDrops        uint64  `json:"linger_drops"`
	LingerSec          float64 `json:"linger_sec"`
	// LingerWaitMs, with a linger of at most 5 s, is the time after the
	// ratio above was taken until every node held only the remote entries
	// of its topics.
	LingerWaitMs float64 `json:"linger_wait_ms"`
	LingerWaited bool    `json:"linger_waited"`

	ChurnPerSec          float64 `json:"churn_target_per_sec"`
	Moves                float64 `json:"moves"` // fraction of the changes that move a socket to another topic
	ChurnAchievedPerSec  float64 `json:"churn_per_sec"`
	ChurnSec             float64 `json:"churn_sec"`
	Changes              int64   `json:"changes"`               // probes included
	InterestedPerChange  float64 `json:"interested_per_change"` // mean other nodes in the changed topic
	DeliveriesPerChange  float64 `json:"deliveries_per_change"` // NATS messages delivered to nodes, less the idle rate
	IdleDeliveriesPerSec float64 `json:"idle_deliveries_per_sec"`
	// Idle, the nodes deliver heartbeats alone: their bytes a second,
	// and the mean size of one.
	IdleBytesPerSec float64 `json:"idle_delivered_bytes_per_sec"`
	HeartbeatBytes  float64 `json:"heartbeat_bytes"`
	SettleMs        float64 `json:"settle_ms"` // after the churn, until every view matched the truth

	VisSamples int     `json:"visibility_samples"` // under the churn
	VisP50ms   float64 `json:"visibility_p50_ms"`
	VisP99ms   float64 `json:"visibility_p99_ms"`
	VisMaxMs   float64 `json:"visibility_max_ms"`

	ViewsChecked int   `json:"views_checked"` // (node, topic) views equal to the truth at the end
	HeapInuse    int64 `json:"heap_inuse_bytes"`
	Sys          int64 `json:"go_sys_bytes"`
	RSS          int64 `json:"rss_bytes"`
	PeakRSS      int64 `json:"peak_rss_bytes"`

	Gaps         uint64 `json:"gaps"`
	Resyncs      uint64 `json:"resyncs"`
	RemoteFull   uint64 `json:"remote_full"`
	SlowConsumer uint64 `json:"slow_consumer"`
	NodesDown    uint64 `json:"nodes_down"`
	// NodesDownInJoin is the part of NodesDown before the churn started.
	NodesDownInJoin uint64 `json:"nodes_down_in_join"`
	// The NATS server's count of clients too slow to read their
	// messages, and the nodes' reconnections.
	ServerSlowConsumers int64  `json:"server_slow_consumers"`
	Reconnects          uint64 `json:"reconnects"`
}

// ErrViewsDiffer is the error of a scale run at whose end a node's view of
// a topic it is in differs from the truth.
var ErrViewsDiffer = errors.New("a node's view differs from the truth")

const maxScaleNodes, maxScaleEntries = 1000, 10_000_000

func (o *Options) validateScale() error {
	switch {
	case o.Nodes < 2 || o.Nodes > maxScaleNodes:
		return fmt.Errorf("%w: -cluster-nodes must be between 2 and %d", ErrInvalidOptions, maxScaleNodes)
	case o.Topics < 1 || o.Entries < o.Topics || o.Entries > maxScaleEntries:
		return fmt.Errorf("%w: -cluster-topics must be at least 1, and -cluster-entries between it and %d", ErrInvalidOptions, maxScaleEntries)
	case !(o.Share > 0 && o.Share <= 1):
		return fmt.Errorf("%w: -cluster-share must be above 0 and at most 1", ErrInvalidOptions)
	case !(o.Zipf >= 0 && o.Zipf <= 4):
		return fmt.Errorf("%w: -cluster-zipf must be between 0 and 4", ErrInvalidOptions)
	case !(o.Churn >= 0 && o.Churn <= 1e6) || o.ChurnFor <= 0:
		return fmt.Errorf("%w: -cluster-churn must be between 0 and 1e6, -cluster-churn-for positive", ErrInvalidOptions)
	case o.Linger < 0:
		return fmt.Errorf("%w: -cluster-linger must not be negative", ErrInvalidOptions)
	case !(o.Moves >= 0 && o.Moves <= 1):
		return fmt.Errorf("%w: -cluster-moves must be between 0 and 1", ErrInvalidOptions)
	case o.Samples < 4:
		return fmt.Errorf("%w: -cluster-samples must be at least 4", ErrInvalidOptions)
	case o.Buckets < 0 || o.Buckets > 1<<16 || o.Buckets&(o.Buckets-1) != 0:
		return fmt.Errorf("%w: -cluster-buckets must be a power of two from 1 to 65536, or 0", ErrInvalidOptions)
	}
	_, err := replicationConfig(o.Replicate, o.Linger)
	return err
}

// scaleTopic names topic t.
func scaleTopic(t int) string { return fmt.Sprintf("t:%d", t) }

// probeSocket is the first socket of the visibility probes, above every
// entry's.
const probeSocket engine.SocketID = 1 << 40

// RunScale simulates o.Nodes nodes, each with its own engine and
// cluster.Node, on one NATS server in this process: the nodes join their
// topics of a plan (Subscribe, then their entries), churn for o.ChurnFor,
// and at the end every node's view of each of its topics must equal the
// truth (ErrViewsDiffer otherwise). m follows its phases.
func RunScale(ctx context.Context, o Options, m *progress.Meter, stderr io.Writer) (_ *ScaleReport, err error) {
	if !o.Scale {
		return nil, fmt.Errorf("%w: RunScale needs Scale", ErrInvalidOptions)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ccfg, _ := replicationConfig(o.Replicate, o.Linger)
	ccfg.Buckets = o.Buckets
	m.Phase("plan", nil)
	p := newPlan(o.Nodes, o.Topics, o.Entries, o.Share, o.Zipf, 1)
	r := &ScaleReport{Simulation: "scale", Replicate: o.Replicate, Buckets: cmp.Or(o.Buckets, cluster.DefaultBuckets), Nodes: o.Nodes, Topics: o.Topics, Entries: o.Entries,
		Share: o.Share, Zipf: o.Zipf, ChurnPerSec: o.Churn, Moves: o.Moves, LingerSec: cmp.Or(o.Linger, cluster.DefaultLinger).Seconds()}
	need, ownMax, memberships := 0, 0, 0
	for nd := range o.Nodes {
		own := p.ownEntries(nd)
		ownMax = max(ownMax, own)
		memberships += len(p.own[nd])
		if o.Replicate == ReplicateAll {
			need = o.Entries
		} else {
			need = max(need, p.interestEntries(nd))
		}
	}
	for t := range o.Topics {
		r.MaxTopicNodes = max(r.MaxTopicNodes, len(p.members[t]))
		r.MaxTopicSize = max(r.MaxTopicSize, p.sizes[t])
	}
	r.TopicsPerNode = float64(memberships) / float64(o.Nodes)
	// Room for the probes and a quarter more, all nodes alike: the nodes
	// compare their engines' limits. Under interest, moves take a node
	// into topics picked at random, of Entries/Topics entries on average:
	// room for twice the expected, and the largest topic, besides.
	extra := need / 4
	if o.Moves > 0 && o.Replicate != ReplicateAll {
		perNode := o.Churn * o.Moves * o.ChurnFor.Seconds() / float64(o.Nodes)
		extra += int(2*perNode*float64(o.Entries)/float64(o.Topics)) + r.MaxTopicSize
	}
	r.Capacity, r.LocalCapacity = min(need+extra, o.Entries)+256, ownMax+ownMax/4+256

	m.Phase("start nodes", nil)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, err
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("nats-server did not start")
	}
	nodes := make([]*benchNode, 0, o.Nodes)
	defer func() {
		if err != nil {
			fmt.Fprintln(stderr, "cluster when the run failed:", totals(nodes))
		}
		for _, nd := range nodes {
			nd.close()
		}
	}()
	ecfg := engine.Config{Capacity: r.Capacity, LocalCapacity: r.LocalCapacity, MaxTopicLen: 32, MaxKeyLen: 16, MaxMetaLen: 32}
	started := time.Now()
	for i := range o.Nodes {
		nd, err := startScaleNode(s, nodeName(i), ecfg, ccfg)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nd)
	}
	if err := allUp(ctx, nodes, 30*time.Second); err != nil {
		return nil, err
	}
	r.StartSec = time.Since(started).Seconds()
	for _, nd := range nodes {
		r.StartHeartbeats += nd.n.Stats().HeartbeatsSent
	}

	// Join: each node subscribes to each of its topics, then tracks its
	// entries there.
	pop := newPopulation(p)
	owned := pop.owned
	var joined atomic.Int64
	m.Phase("join", joined.Load)
	t0 := time.Now()
	errs := make(chan error, o.Nodes)
	var wg sync.WaitGroup
	joinSubs := make([][]time.Duration, o.Nodes)
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := 0
			for _, ow := range p.own[i] {
				topic := scaleTopic(ow.topic)
				st := time.Now()
				nd.n.Subscribe(topic)
				joinSubs[i] = append(joinSubs[i], time.Since(st))
				for ; next < len(owned[i]) && owned[i][next].topic == ow.topic; next++ {
					en := &owned[i][next]
					if err := nd.e.Track(en.socket, topic, en.key, metaOf(nil, 0)); err != nil {
						errs <- fmt.Errorf("node %s joins %s: %w", nd.n.Name(), topic, err)
						return
					}
					joined.Add(1)
				}
				nd.n.Changed(topic)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	m.Phase("wait for every view", nil)
	if _, err := settle(ctx, nodes, pop, o.Topics, o.Replicate == ReplicateAll, time.Until(t0.Add(2*time.Minute))); err != nil {
		return nil, fmt.Errorf("after the join: %w", err)
	}
	r.JoinSec = time.Since(t0).Seconds()
	r.JoinSubscribeP50ms, r.JoinSubscribeP99ms, r.JoinSubscribeMaxMs = quantiles(slices.Concat(joinSubs...))
	for _, nd := range nodes {
		r.NodesDownInJoin += nd.n.Stats().NodesDown
	}

	// The probes' topics: each pair's observer and owner join one.
	pairs := min(8, o.Nodes/2)
	for k := range pairs {
		nodes[k+o.Nodes/2].n.Subscribe(probeTopic(k))
		nodes[k].n.Subscribe(probeTopic(k))
	}

	m.Phase("idle deliveries", nil)
	d0, b0, i0 := delivered(nodes), deliveredBytes(nodes), time.Now()
	select {
	case <-time.After(cmp.Or(o.idleFor, 2*time.Second)):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	idleMsgs, idleBytes, idleSec := delivered(nodes)-d0, deliveredBytes(nodes)-b0, time.Since(i0).Seconds()
	r.IdleDeliveriesPerSec, r.IdleBytesPerSec = float64(idleMsgs)/idleSec, float64(idleBytes)/idleSec
	if idleMsgs > 0 {
		r.HeartbeatBytes = float64(idleBytes) / float64(idleMsgs)
	}

	// The churn, with visibility probes alongside.
	var changes, interested atomic.Int64
	m.Phase("churn", changes.Load)
	d0, c0 := delivered(nodes), time.Now()
	var stopProbes atomic.Bool
	var lat []time.Duration
	var probeErr error
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		lat, probeErr = probe(nodes, pairs, o.Samples, &stopProbes, &changes, &interested)
	}()
	var moveSubs []time.Duration
	err = churn(ctx, nodes, pop, o.Topics, o.Churn, o.Moves, o.ChurnFor, &changes, &interested, &moveSubs)
	churned := time.Since(c0)
	stopProbes.Store(true)
	<-probesDone
	if err != nil {
		return nil, err
	}
	if probeErr != nil {
		return nil, probeErr
	}
	for k := range pairs {
		nodes[k+o.Nodes/2].n.Unsubscribe(probeTopic(k))
		nodes[k].n.Unsubscribe(probeTopic(k))
		pop.left[k+o.Nodes/2]++
		pop.left[k]++
	}
	m.Phase("settle", nil)
	s0 := time.Now()
	checked, err := settle(ctx, nodes, pop, o.Topics, o.Replicate == ReplicateAll, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("after the churn: %w", err)
	}
	r.SettleMs = float64(time.Since(s0).Microseconds()) / 1000
	r.ViewsChecked = checked
	window := time.Since(c0)
	r.ChurnSec = churned.Seconds()
	r.Changes = changes.Load()
	if r.Changes > 0 {
		r.ChurnAchievedPerSec = float64(r.Changes) / churned.Seconds()
		r.InterestedPerChange = float64(interested.Load()) / float64(r.Changes)
		r.DeliveriesPerChange = (float64(delivered(nodes)-d0) - r.IdleDeliveriesPerSec*window.Seconds()) / float64(r.Changes)
	}
	if len(moveSubs) > 0 {
		r.MoveSubscribes = len(moveSubs)
		r.MoveSubscribeP50ms, r.MoveSubscribeP99ms, r.MoveSubscribeMaxMs = quantiles(moveSubs)
	}
	r.VisSamples = len(lat)
	if len(lat) > 0 {
		r.VisP50ms, r.VisP99ms, r.VisMaxMs = quantiles(lat)
	}

	var heldSum, wantSum float64
	wanted := pop.remoteWanted(o.Topics)
	for nd, bn := range nodes {
		held := bn.e.Stats().Remote
		want := wanted[nd]
		heldSum += float64(held)
		wantSum += float64(want)
		if want > 0 {
			r.RemoteRatioMax = max(r.RemoteRatioMax, float64(held)/float64(want))
		}
	}
	r.RemoteHeldMean, r.RemoteInterestMean = heldSum/float64(o.Nodes), wantSum/float64(o.Nodes)
	if wantSum > 0 {
		r.RemoteRatioMean = heldSum / wantSum
	}
	// With a short linger, wait for it: then every node holds exactly the
	// remote entries of its topics, the topics its sockets left dropped.
	if o.Replicate == ReplicateInterest && o.Linger > 0 && o.Linger <= maxLingerWait {
		m.Phase("linger", nil)
		l0 := time.Now()
		if err := lingerDone(ctx, nodes, wanted, pop.left, o.Linger+5*time.Second); err != nil {
			return nil, err
		}
		r.LingerWaitMs, r.LingerWaited = float64(time.Since(l0).Microseconds())/1000, true
	}
	mirrored, statsRemote := 0, 0
	for _, bn := range nodes {
		st := bn.n.Stats()
		r.Gaps += st.Gaps
		r.Resyncs += st.Resyncs
		r.RemoteFull += st.RemoteFull
		r.SlowConsumer += st.SlowConsumer
		r.NodesDown += st.NodesDown
		r.Reconnects += bn.nc.Stats().Reconnects
		mirrored += st.TopicsMirrored
		statsRemote += st.RemoteEntries
		r.SnapshotFetches += st.SnapshotFetches
		r.LingerDrops += st.LingerDrops
	}
	r.TopicsMirroredMean = float64(mirrored) / float64(o.Nodes)
	r.StatsRemoteMean = float64(statsRemote) / float64(o.Nodes)
	if v, err := s.Varz(nil); err == nil {
		r.ServerSlowConsumers = v.SlowConsumers
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapInuse, r.Sys = int64(ms.HeapInuse), int64(ms.Sys)
	if ps, err := load.ReadProc(os.Getpid()); err == nil {
		r.RSS, r.PeakRSS = ps.RSS, ps.HWM
	}
	m.Phase("stop nodes", nil)
	return r, nil
}

func probeTopic(k int) string { return fmt.Sprintf("probe:%d", k) }

// metaOf appends an entry's meta of generation gen to b.
func metaOf(b []byte, gen int) []byte { return fmt.Appendf(b, `{"g":%d}`, gen) }

func startScaleNode(s *server.Server, name string, ecfg engine.Config, cfg cluster.Config) (*benchNode, error) {
	// Over loopback TCP, not nats.InProcessServer: with a hundred clients
	// the in-process pipes, which buffer nothing, held heartbeats back for
	// seconds and nodes were declared down by the thousand. The cluster
	// counts what matters of the client's asynchronous errors (slow
	// consumers); those of the connections closing at the end are noise.
	nc, err := nats.Connect(s.ClientURL(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		return nil, err
	}
	ecfg.RefTag = cluster.RefTag(name)
	e, err := engine.New(ecfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cfg.Node, cfg.Logger = name, quietLog
	n, err := cluster.Start(context.Background(), nc, e, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &benchNode{ns: s, nc: nc, e: e, n: n}, nil
}

// allUp waits until every node sees every other up.
func allUp(ctx context.Context, nodes []*benchNode, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, nd := range nodes {
		for {
			up := 0
			for _, pi := range nd.n.Nodes() {
				if pi.State == cluster.StateUp {
					up++
				}
			}
			if up >= len(nodes)-1 {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("node %s sees %d of the %d other nodes up", nd.n.Name(), up, len(nodes)-1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func engines(nodes []*benchNode) []*engine.Engine {
	es := make([]*engine.Engine, len(nodes))
	for i, nd := range nodes {
		es[i] = nd.e
	}
	return es
}

// maxLingerWait is the longest linger a scale run waits for.
const maxLingerWait = 5 * time.Second

// ErrLingerKept is the error of a scale run whose nodes kept the remote
// entries of topics they left past the linger.
var ErrLingerKept = errors.New("a node kept a topic it left past the linger")

// lingerDone waits until each node dropped the topics it left and holds
// exactly the remote entries it wants.
func lingerDone(ctx context.Context, nodes []*benchNode, wanted, left []int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for nd, bn := range nodes {
		for bn.e.Stats().Remote != wanted[nd] || bn.n.Stats().LingerDrops < uint64(left[nd]) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%w: node %s holds %d remote entries, its topics %d; it dropped %d topics of the %d it left",
					ErrLingerKept, bn.n.Name(), bn.e.Stats().Remote, wanted[nd], bn.n.Stats().LingerDrops, left[nd])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// totals sums the nodes' counters that tell a cluster in trouble.
func totals(nodes []*benchNode) string {
	var t cluster.Stats
	for _, nd := range nodes {
		st := nd.n.Stats()
		t.NodesDown += st.NodesDown
		t.Resyncs += st.Resyncs
		t.Gaps += st.Gaps
		t.SlowConsumer += st.SlowConsumer
		t.RemoteFull += st.RemoteFull
		t.DeltasApplied += st.DeltasApplied
	}
	return fmt.Sprintf("nodes down %d, resyncs %d, gaps %d, slow consumer %d, remote ErrFull %d, deltas applied %d",
		t.NodesDown, t.Resyncs, t.Gaps, t.SlowConsumer, t.RemoteFull, t.DeltasApplied)
}

// delivered returns the messages the NATS server delivered to the nodes
// so far.
func delivered(nodes []*benchNode) (n uint64) {
	for _, nd := range nodes {
		n += nd.nc.Stats().InMsgs
	}
	return n
}

// deliveredBytes returns the bytes of those messages.
func deliveredBytes(nodes []*benchNode) (n uint64) {
	for _, nd := range nodes {
		n += nd.nc.Stats().InBytes
	}
	return n
}

// settle waits until every node's view of each of its topics (with
// everyone, of every topic) equals the truth, and returns how many views it
// compared.
func settle(ctx context.Context, nodes []*benchNode, pop *population, topics int, everyone bool, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	members := pop.members(topics)
	for {
		bad, nbad, checked := viewsAgainstTruth(engines(nodes), members, everyone, scaleTopic)
		if nbad == 0 {
			return checked, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return checked, fmt.Errorf("%w: %d of %d views, such as %v", ErrViewsDiffer, nbad, checked, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// churn changes entries at rate a second for d: each change picks an
// entry at random and moves its socket to a topic picked at random (a
// fraction moves of the changes), or else updates its meta, or one time in
// five untracks it and tracks it again; then it tells the node. A node
// subscribes to a topic before its first entry there and unsubscribes
// after its last left, and subs gets how long each Subscribe took. It counts the changes and the other nodes in each
// changed topic (in both topics of a move).
func churn(ctx context.Context, nodes []*benchNode, pop *population, topics int, rate, moves float64, d time.Duration, changes, interested *atomic.Int64, subs *[]time.Duration) error {
	rng := rand.New(rand.NewPCG(2, 3))
	start := time.Now()
	var meta []byte
	// in counts the nodes in each topic, kept as the moves change them;
	// gone holds the topics each node left and has not joined again.
	in := make([]int, topics)
	gone := make([]map[int]bool, len(nodes))
	for i := range gone {
		gone[i] = map[int]bool{}
	}
	defer func() {
		for i, g := range gone {
			pop.left[i] += len(g)
		}
	}()
	for _, c := range pop.counts {
		for t := range c {
			in[t]++
		}
	}
	done := int64(0)
	for {
		elapsed := time.Since(start)
		if elapsed >= d || ctx.Err() != nil {
			return nil
		}
		for due := int64(elapsed.Seconds() * rate); done < due; done++ {
			ref := pop.global[rng.IntN(len(pop.global))]
			nd, en, counts := nodes[ref.node], &pop.owned[ref.node][ref.idx], pop.counts[ref.node]
			topic := scaleTopic(en.topic)
			en.gen++
			meta = metaOf(meta[:0], en.gen)
			if to := rng.IntN(topics); rng.Float64() < moves && to != en.topic {
				if counts[to] == 0 {
					delete(gone[ref.node], to)
					st := time.Now()
					nd.n.Subscribe(scaleTopic(to))
					*subs = append(*subs, time.Since(st))
					in[to]++
				}
				counts[to]++
				nd.e.Untrack(en.socket, topic)
				nd.n.Changed(topic)
				if err := nd.e.Track(en.socket, scaleTopic(to), en.key, meta); err != nil {
					return fmt.Errorf("churn on node %s: %w", nd.n.Name(), err)
				}
				nd.n.Changed(scaleTopic(to))
				interested.Add(int64(in[en.topic] + in[to] - 2))
				if counts[en.topic]--; counts[en.topic] == 0 {
					delete(counts, en.topic)
					nd.n.Unsubscribe(topic)
					in[en.topic]--
					gone[ref.node][en.topic] = true
				}
				en.topic = to
				changes.Add(1)
				continue
			}
			if rng.IntN(5) == 0 {
				nd.e.Untrack(en.socket, topic)
			}
			if err := nd.e.Track(en.socket, topic, en.key, meta); err != nil {
				return fmt.Errorf("churn on node %s: %w", nd.n.Name(), err)
			}
			nd.n.Changed(topic)
			changes.Add(1)
			interested.Add(int64(in[en.topic] - 1))
		}
		time.Sleep(time.Millisecond)
	}
}

// probe measures visibility until stop or samples: the owner of a pair
// tracks an entry in the pair's topic, and the time until the observer
// counts it is one sample; the untrack that follows is waited for, not
// measured. Each track and untrack is a change with one other node
// interested.
func probe(nodes []*benchNode, pairs, samples int, stop *atomic.Bool, changes, interested *atomic.Int64) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, samples)
	wait := func(nd *benchNode, topic string, want int, start time.Time) error {
		for nd.e.Count(topic) != want {
			if time.Since(start) > 10*time.Second {
				return fmt.Errorf("node %s counts %d entries in %s after 10 s, want %d", nd.n.Name(), nd.e.Count(topic), topic, want)
			}
			time.Sleep(50 * time.Microsecond)
		}
		return nil
	}
	for i := 0; i < samples && !stop.Load(); i++ {
		k := i % pairs
		owner, observer, topic := nodes[k], nodes[k+len(nodes)/2], probeTopic(k)
		start := time.Now()
		if err := owner.e.Track(probeSocket+engine.SocketID(k), topic, "probe", nil); err != nil {
			return nil, err
		}
		owner.n.Changed(topic)
		if err := wait(observer, topic, 1, start); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
		owner.e.Untrack(probeSocket+engine.SocketID(k), topic)
		owner.n.Changed(topic)
		if err := wait(observer, topic, 0, time.Now()); err != nil {
			return nil, err
		}
		changes.Add(2)
		interested.Add(2)
		time.Sleep(2 * time.Millisecond)
	}
	return lat, nil
}

// WriteScaleTable writes r for a person.
func WriteScaleTable(w io.Writer, r *ScaleReport) error {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "cluster simulation: %d nodes on one NATS server in one process, replicate %s, %d buckets\n", r.Nodes, r.Replicate, r.Buckets)
	fmt.Fprintf(w, "  %d entries in %d topics (zipf %g; the largest %d entries in %d nodes); %.1f topics a node (share %g)\n",
		r.Entries, r.Topics, r.Zipf, r.MaxTopicSize, r.MaxTopicNodes, r.TopicsPerNode, r.Share)
	fmt.Fprintf(w, "  started, every node seeing every other up, in %.2f s, with %d heartbeats sent (%.1f a node)\n", r.StartSec, r.StartHeartbeats, float64(r.StartHeartbeats)/float64(max(r.Nodes, 1)))
	fmt.Fprintf(w, "  engine per node: capacity %d, local %d; joined and every view matched in %.2f s\n", r.Capacity, r.LocalCapacity, r.JoinSec)
	fmt.Fprintf(w, "  Subscribe, a node's first join of a topic: at the start p50 %.2f ms  p99 %.2f ms  max %.2f ms; during the churn (%d) p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		r.JoinSubscribeP50ms, r.JoinSubscribeP99ms, r.JoinSubscribeMaxMs, r.MoveSubscribes, r.MoveSubscribeP50ms, r.MoveSubscribeP99ms, r.MoveSubscribeMaxMs)
	fmt.Fprintf(w, "  remote entries per node: %.0f held, %.0f in its topics: %.2fx (max %.2fx)\n", r.RemoteHeldMean, r.RemoteInterestMean, r.RemoteRatioMean, r.RemoteRatioMax)
	fmt.Fprintf(w, "  cluster.Stats: %.1f topics mirrored and %.0f remote entries per node; %d snapshot fetches, %d linger drops (linger %gs)\n",
		r.TopicsMirroredMean, r.StatsRemoteMean, r.SnapshotFetches, r.LingerDrops, r.LingerSec)
	if r.LingerWaited {
		fmt.Fprintf(w, "  every node held only the remote entries of its topics %.0f ms later, the linger over\n", r.LingerWaitMs)
	}
	fmt.Fprintf(w, "  churn: %d changes in %.1f s (%.0f/s, target %.0f/s; moves %g); %.2f other nodes in the changed topics on average\n",
		r.Changes, r.ChurnSec, r.ChurnAchievedPerSec, r.ChurnPerSec, r.Moves, r.InterestedPerChange)
	fmt.Fprintf(w, "  NATS deliveries per change: %.2f (idle rate %.0f/s subtracted)\n", r.DeliveriesPerChange, r.IdleDeliveriesPerSec)
	fmt.Fprintf(w, "  idle, heartbeats only: %.0f KiB/s delivered, %.0f bytes a heartbeat\n", r.IdleBytesPerSec/1024, r.HeartbeatBytes)
	fmt.Fprintf(w, "  visibility under churn: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)\n", r.VisP50ms, r.VisP99ms, r.VisMaxMs, r.VisSamples)
	fmt.Fprintf(w, "  every view equal to the truth %.0f ms after the churn (%d views)\n", r.SettleMs, r.ViewsChecked)
	fmt.Fprintf(w, "  memory: heap in use %.0f MiB, Go sys %.0f MiB, resident %.0f MiB (peak %.0f MiB)\n", mib(r.HeapInuse), mib(r.Sys), mib(r.RSS), mib(r.PeakRSS))
	_, err := fmt.Fprintf(w, "  gaps %d, resyncs %d, remote ErrFull %d, slow consumer %d (NATS server %d), nodes down %d (%d in the join), reconnects %d\n", r.Gaps, r.Resyncs, r.RemoteFull, r.SlowConsumer, r.ServerSlowConsumers, r.NodesDown, r.NodesDownInJoin, r.Reconnects)
	return err
}
