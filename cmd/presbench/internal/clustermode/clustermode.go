// Package clustermode is presbench -mode cluster: in-process nodes, each
// with its own engine, NATS server (routed to the others) and
// cluster.Node, measured on the cluster package's own figures: replicated
// update throughput, visibility latency idle and under load, List
// allocations, heartbeats, a late joiner's resync and, with Kill, the time
// to clear a node killed without goodbye. Those nodes replicate every
// entry.
//
// With Scale, RunScale simulates many nodes (a hundred and more) on one
// NATS server in this process: a plan of Zipf-like topics, nodes that join
// them with Subscribe, churn, and in the end every node's view of its
// topics checked against the truth, under interest replication or full.
//
// # Concurrency
//
// Run and RunScale may be called from one goroutine at a time; each starts
// and stops every goroutine and server it uses.
package clustermode

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/progress"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// Options are -mode cluster's flags.
type Options struct {
	Nodes    int
	Duration time.Duration // of the throughput run
	Samples  int           // visibility latency samples
	Resync   int           // entries a late joiner fetches
	Kill     bool          // measure the time to clear a killed node
	Load     float64       // visibility load, a fraction of the measured maximum
	Rate     float64       // visibility load in updates/s, instead of Load

	// Scale runs the many-node simulation (scale.go) instead of the
	// measurements above; the fields below apply to it only.
	Scale     bool
	Entries   int           // entries in the whole cluster
	Topics    int           // topics they are in
	Share     float64       // fraction of the topics each node's sockets are in
	Zipf      float64       // topic popularity exponent: the r-th topic holds ∝ 1/r^Zipf
	Churn     float64       // changes per second during the churn
	Moves     float64       // fraction of the changes that move a socket to another topic
	ChurnFor  time.Duration // how long the churn lasts
	Replicate string        // interest or all
	Linger    time.Duration // cluster.Config.Linger; 0 is its default
	Buckets   int           // cluster.Config.Buckets; 0 is its default
	// idleFor is how long the idle delivery rate is measured; 0 means
	// 2 s. Tests shorten it.
	idleFor time.Duration
}

// Flags registers Options' flags on fs. Every flag it registers applies
// to -mode cluster only: presbench refuses it in the other modes.
func Flags(fs *flag.FlagSet, o *Options) {
	fs.IntVar(&o.Nodes, "cluster-nodes", 3, "nodes (each with its own NATS server, routed)")
	fs.DurationVar(&o.Duration, "cluster-duration", 3*time.Second, "how long the throughput run lasts")
	fs.IntVar(&o.Samples, "cluster-samples", 500, "visibility latency samples")
	fs.IntVar(&o.Resync, "cluster-resync", 10000, "entries a late joiner fetches")
	fs.Float64Var(&o.Load, "cluster-load", 0.5, "visibility is measured under this fraction of the measured maximum update rate")
	fs.Float64Var(&o.Rate, "cluster-rate", 0, "if set, visibility is measured under this many updates/s instead of -cluster-load")
	fs.BoolVar(&o.Kill, "cluster-kill", true, "measure the time to clear a killed node at the default heartbeat and down time (about 6 s)")
	fs.BoolVar(&o.Scale, "cluster-scale", false, "simulate -cluster-nodes nodes on one in-process NATS server, with -cluster-entries in -cluster-topics, churned at -cluster-churn, instead of the measurements above")
	fs.IntVar(&o.Entries, "cluster-entries", 200000, "-cluster-scale: entries in the whole cluster")
	fs.IntVar(&o.Topics, "cluster-topics", 2000, "-cluster-scale: topics the entries are in")
	fs.Float64Var(&o.Share, "cluster-share", 0.02, "-cluster-scale: fraction of the topics each node's sockets are in")
	fs.Float64Var(&o.Zipf, "cluster-zipf", 0.5, "-cluster-scale: topic popularity, the r-th topic holding about 1/r^zipf of the first's entries (0: all equal)")
	fs.Float64Var(&o.Churn, "cluster-churn", 5000, "-cluster-scale: changes per second (meta updates, and leaves with rejoins)")
	fs.Float64Var(&o.Moves, "cluster-moves", 0, "-cluster-scale: fraction of the changes that move a socket to a topic picked at random, its node joining and leaving topics")
	fs.DurationVar(&o.ChurnFor, "cluster-churn-for", 10*time.Second, "-cluster-scale: how long the churn lasts")
	fs.DurationVar(&o.Linger, "cluster-linger", 0, "-cluster-scale: how long a node keeps a topic's remote entries after its last socket there left (0: the cluster's default, 30s)")
	fs.IntVar(&o.Buckets, "cluster-buckets", 0, "-cluster-scale: buckets the topics hash into, a power of two from 1 to 65536 (0: the cluster's default, 8192): more mean fewer deltas delivered to nodes not in their topic, and larger heartbeats")
	fs.Func("nodes", "the simulation with this many nodes: -cluster-scale -cluster-nodes N", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		o.Nodes, o.Scale = n, true
		return nil
	})
	fs.StringVar(&o.Replicate, "cluster-replicate", "interest", "-cluster-scale: interest (a node mirrors only the topics its sockets are in) or all (every node mirrors every entry)")
}

// ErrInvalidOptions is the error of Options out of range.
var ErrInvalidOptions = errors.New("invalid cluster options")

// Validate reports Options out of range, as ErrInvalidOptions.
func (o *Options) Validate() error {
	if o.Scale {
		return o.validateScale()
	}
	if o.Buckets != 0 {
		return fmt.Errorf("%w: -cluster-buckets applies to -cluster-scale only", ErrInvalidOptions)
	}
	if o.Nodes < 2 || o.Samples < 4 || o.Resync < 1 || o.Duration <= 0 || o.Load < 0 || o.Load > 1 || o.Rate < 0 {
		return fmt.Errorf("%w: -cluster-nodes must be at least 2, -cluster-samples at least 4, -cluster-load between 0 and 1, -cluster-rate not negative; -cluster-resync and -cluster-duration positive", ErrInvalidOptions)
	}
	return nil
}

// Report is what a run measured; its JSON is presbench's -json report of
// -mode cluster.
type Report struct {
	Nodes             int     `json:"nodes"`
	MaxUpdatesPerSec  float64 `json:"max_replicated_updates_per_sec"` // applied on every other node
	PublishedPerSec   float64 `json:"published_per_sec"`
	LocalTracksPerSec float64 `json:"local_tracks_per_sec"` // before coalescing
	DrainMs           float64 `json:"drain_ms"`
	Deltas            uint64  `json:"deltas"` // after the load stopped, until all was applied
	BytesPerDelta     float64 `json:"bytes_per_delta"`
	LoadPerSec        float64 `json:"visibility_load_per_sec"`
	VisP50ms          float64 `json:"visibility_p50_ms"`
	VisP99ms          float64 `json:"visibility_p99_ms"`
	VisMaxMs          float64 `json:"visibility_max_ms"`
	IdleP50ms         float64 `json:"idle_visibility_p50_ms"`
	IdleP99ms         float64 `json:"idle_visibility_p99_ms"`
	IdleMaxMs         float64 `json:"idle_visibility_max_ms"`
	HeartbeatsPerSec  float64 `json:"heartbeats_per_sec"`
	ClearKilledSec    float64 `json:"clear_killed_sec"`
	ResyncEntries     int     `json:"resync_entries"`
	ResyncMs          float64 `json:"resync_ms"`
	ListAllocs        float64 `json:"list_allocs"`
	Gaps              uint64  `json:"gaps"`
	Resyncs           uint64  `json:"resyncs"`
	RemoteFull        uint64  `json:"remote_full"`
	IdleSamples       int     `json:"idle_visibility_samples"`
	LoadSamples       int     `json:"visibility_samples"`
	Killed            bool    `json:"killed"` // a node was killed and ClearKilledSec measured
	HeartbeatSec      float64 `json:"heartbeat_sec"`
	DownAfterSec      float64 `json:"down_after_sec"`
}

// Run starts the cluster in process, measures it and returns the report;
// m follows its phases, stderr gets what goes wrong under load.
func Run(ctx context.Context, o Options, m *progress.Meter, stderr io.Writer) (*Report, error) {
	if o.Scale {
		return nil, fmt.Errorf("%w: -cluster-scale runs through RunScale", ErrInvalidOptions)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	m.Phase("start nodes", nil)
	ss, err := startBenchNATS(o.Nodes + 1)
	defer func() {
		for _, s := range ss {
			s.Shutdown()
		}
	}()
	if err != nil {
		return nil, err
	}
	const capacity = 1 << 18
	var nodes []*benchNode
	defer func() {
		for _, nd := range nodes {
			nd.close()
		}
	}()
	for i := range o.Nodes {
		nd, err := startBenchNode(ss[i], fmt.Sprintf("n%d", i), capacity, cluster.Config{})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nd)
	}
	waitUp := func(want int) error {
		deadline := time.Now().Add(10 * time.Second)
		for _, nd := range nodes {
			for {
				up := 0
				for _, p := range nd.n.Nodes() {
					if p.State == cluster.StateUp {
						up++
					}
				}
				if up >= want {
					break
				}
				if time.Now().After(deadline) {
					return errors.New("nodes did not see each other")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return nil
	}
	if err := waitUp(o.Nodes - 1); err != nil {
		return nil, err
	}
	r := &Report{Nodes: o.Nodes, HeartbeatSec: cluster.DefaultHeartbeat.Seconds(), DownAfterSec: cluster.DefaultDownAfter.Seconds()}

	// 1. Replicated update throughput: every node updates its own entries
	// (1,000 topics, meta alternating) as fast as it can.
	applied := func() (a, sent, bytes uint64) {
		for _, nd := range nodes {
			st := nd.n.Stats()
			a += st.DeltasApplied
			sent += st.DeltasSent
			bytes += st.BytesSent
		}
		return
	}
	a0, s0, b0 := applied()
	var stop atomic.Bool
	var tracks atomic.Int64
	var wg sync.WaitGroup
	topics := make([]string, 1000)
	for i := range topics {
		topics[i] = fmt.Sprintf("room:%d", i)
	}
	metas := [][]byte{[]byte(`{"status":"online","n":1}`), []byte(`{"status":"away","n":2}`)}
	load := func(nd *benchNode, perSec float64) {
		defer wg.Done()
		start := time.Now()
		for i := 0; !stop.Load(); i++ {
			t := topics[i%len(topics)]
			// 20 sockets per topic, so that a flush finds mostly distinct
			// entries changed, not one entry updated many times.
			e := i % (20 * len(topics))
			if _, _, err := nd.e.TrackRef(engine.SocketID(e+1), t, "user", metas[(i/(20*len(topics)))&1]); err != nil {
				fmt.Fprintln(stderr, "track:", err)
				return
			}
			nd.n.Changed(t)
			tracks.Add(1)
			if perSec > 0 {
				if ahead := time.Duration(float64(i+1)/perSec*1e9) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
	}
	m.Phase("replicated updates", tracks.Load)
	t0 := time.Now()
	for _, nd := range nodes {
		wg.Add(1)
		go load(nd, 0)
	}
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	// Until every delta published is applied on every other node: the
	// rate counts what all nodes applied, backlog included.
	loadFor := time.Since(t0)
	var a1, s1, b1 uint64
	for {
		a1, s1, b1 = applied()
		if a1-a0 >= uint64(o.Nodes-1)*(s1-s0) {
			break
		}
		if time.Since(t0) > loadFor+60*time.Second {
			return nil, fmt.Errorf("the nodes applied %d of %d deltas", a1-a0, uint64(o.Nodes-1)*(s1-s0))
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0)
	r.DrainMs = float64((elapsed - loadFor).Microseconds()) / 1000
	r.MaxUpdatesPerSec = float64(a1-a0) / float64(o.Nodes-1) / elapsed.Seconds()
	r.PublishedPerSec = float64(s1-s0) / elapsed.Seconds()
	r.Deltas = s1 - s0
	r.LocalTracksPerSec = float64(tracks.Load()) / loadFor.Seconds()
	if a1 == a0 {
		return nil, errors.New("no update was replicated")
	}
	if s1 > s0 {
		r.BytesPerDelta = float64(b1-b0) / float64(s1-s0)
	}

	// 2. Visibility latency, idle and at half that rate: a Track on node
	// 0 until a List on node 1 shows it.
	a, b := nodes[0], nodes[1]
	buf := make([]byte, 1<<12)
	var probes atomic.Int64
	m.Phase("visibility idle", probes.Load)
	idle, err := visibility(a, b, 0, o.Samples/4, buf, &probes)
	if err != nil {
		return nil, err
	}
	r.IdleP50ms, r.IdleP99ms, r.IdleMaxMs = quantiles(idle)
	r.IdleSamples = len(idle)
	stop.Store(false)
	r.LoadPerSec = r.MaxUpdatesPerSec * o.Load
	if o.Rate > 0 {
		r.LoadPerSec = o.Rate
	}
	for _, nd := range nodes[1:] {
		wg.Add(1)
		go load(nd, r.LoadPerSec/float64(o.Nodes-1))
	}
	m.Phase("visibility under load", probes.Load)
	probes.Store(0)
	lat, err := visibility(a, b, o.Samples/4, o.Samples, buf, &probes)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	r.VisP50ms, r.VisP99ms, r.VisMaxMs = quantiles(lat)
	r.LoadSamples = len(lat)
	m.Phase("list allocations", nil)

	// 3. No allocation on the read path, remote entries included.
	// The count is process-wide and the nodes' goroutines allocate too, so
	// the least of a few tries is List's own.
	big := make([]byte, 1<<16)
	if l, err := b.e.List(topics[0], big); err != nil || b.e.Stats().Remote == 0 || len(l) < 3 {
		return nil, fmt.Errorf("the List measured reads nothing remote (%v)", err)
	}
	r.ListAllocs = 1e9
	for range 5 {
		r.ListAllocs = min(r.ListAllocs, testing.AllocsPerRun(1000, func() { b.e.List(topics[0], big) }))
	}

	// 4. Heartbeats per second, idle.
	hb := func() (n uint64) {
		for _, nd := range nodes {
			n += nd.n.Stats().HeartbeatsSent
		}
		return
	}
	m.Phase("heartbeats", nil)
	h0, ht := hb(), time.Now()
	time.Sleep(2 * time.Second)
	r.HeartbeatsPerSec = float64(hb()-h0) / time.Since(ht).Seconds()

	m.Phase("clear the earlier entries", nil)
	// 5. A late joiner fetches node 0's entries: resync time. First the
	// entries of the earlier phases go, so that it fetches exactly
	// o.Resync.
	for _, nd := range nodes {
		for s := range 20 * len(topics) {
			nd.e.UntrackAll(engine.SocketID(s + 1))
		}
		for _, t := range topics {
			nd.n.Changed(t)
		}
	}
	for i := range o.Samples {
		a.e.UntrackAll(1<<40 + engine.SocketID(i))
		a.n.Changed(fmt.Sprintf("vis:%d", i))
	}
	for _, nd := range nodes {
		for nd.e.Len() != 0 {
			if time.Since(ht) > time.Minute {
				return nil, errors.New("the earlier entries were never removed everywhere")
			}
			time.Sleep(time.Millisecond)
		}
	}
	var tracked atomic.Int64
	m.Phase("track entries to resync", tracked.Load)
	for i := range o.Resync {
		t := fmt.Sprintf("resync:%d", i%100)
		if err := a.e.Track(2<<40+engine.SocketID(i), t, fmt.Sprintf("u%d", i), []byte(`{"status":"online"}`)); err != nil {
			return nil, err
		}
		a.n.Changed(t)
		tracked.Add(1)
	}
	time.Sleep(500 * time.Millisecond)
	want := 0
	for _, nd := range nodes {
		want += nd.e.Stats().Local
	}
	rs := time.Now()
	late, err := startBenchNode(ss[o.Nodes], "late", capacity, cluster.Config{})
	if err != nil {
		return nil, err
	}
	nodes = append(nodes, late)
	m.Phase("resync by a late joiner", func() int64 { return int64(late.e.Stats().Remote) })
	for late.e.Stats().Remote < want {
		if time.Since(rs) > 30*time.Second {
			return nil, fmt.Errorf("late joiner holds %d of %d entries", late.e.Stats().Remote, want)
		}
		time.Sleep(time.Millisecond)
	}
	r.ResyncEntries, r.ResyncMs = want, float64(time.Since(rs).Microseconds())/1000

	// 6. A node killed without goodbye, at the default heartbeat and down
	// time: until node 0 no longer lists its entries.
	if o.Kill {
		m.Phase("clear a killed node", nil)
		victim := nodes[1]
		for i := range 100 {
			if err := victim.e.Track(engine.SocketID(i+1), "kill", fmt.Sprintf("u%d", i), nil); err != nil {
				return nil, err
			}
		}
		victim.n.Changed("kill")
		for a.e.Count("kill") != 100 {
			if time.Since(ht) > 2*time.Minute {
				return nil, errors.New("the entries of the node to kill never arrived")
			}
			time.Sleep(time.Millisecond)
		}
		kt := time.Now()
		victim.nc.Close()
		for remoteOf(a, "n1") > 0 {
			if time.Since(kt) > 30*time.Second {
				return nil, errors.New("the killed node was never cleared")
			}
			time.Sleep(5 * time.Millisecond)
		}
		r.ClearKilledSec = time.Since(kt).Seconds()
		r.Killed = true
	}
	for _, nd := range nodes {
		st := nd.n.Stats()
		r.Gaps += st.Gaps
		r.Resyncs += st.Resyncs
		r.RemoteFull += st.RemoteFull
	}
	m.Phase("stop nodes", nil)
	return r, nil
}

// WriteTable writes r for a person.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "cluster: %d nodes, each with its own NATS server (routed), in one process\n", r.Nodes)
	fmt.Fprintf(w, "  replicated updates/s (applied on every other node, until drained): %.0f  (local Tracks %.0f/s coalesced into %d deltas; drained %.0f ms after the load; %.1f bytes per delta)\n",
		r.MaxUpdatesPerSec, r.LocalTracksPerSec, r.Deltas, r.DrainMs, r.BytesPerDelta)
	fmt.Fprintf(w, "  visibility idle: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)\n", r.IdleP50ms, r.IdleP99ms, r.IdleMaxMs, r.IdleSamples)
	fmt.Fprintf(w, "  visibility at %.0f updates/s: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)\n", r.LoadPerSec, r.VisP50ms, r.VisP99ms, r.VisMaxMs, r.LoadSamples)
	fmt.Fprintf(w, "  List allocations per call: %.0f\n", r.ListAllocs)
	fmt.Fprintf(w, "  heartbeats/s (all nodes, idle): %.1f\n", r.HeartbeatsPerSec)
	fmt.Fprintf(w, "  resync of %d entries by a late joiner: %.1f ms\n", r.ResyncEntries, r.ResyncMs)
	if r.Killed {
		fmt.Fprintf(w, "  killed node cleared after %.2f s (heartbeat %gs, down after %gs)\n", r.ClearKilledSec, r.HeartbeatSec, r.DownAfterSec)
	}
	_, err := fmt.Fprintf(w, "  gaps %d, resyncs %d, remote ErrFull %d\n", r.Gaps, r.Resyncs, r.RemoteFull)
	return err
}
