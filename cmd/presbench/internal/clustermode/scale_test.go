package clustermode

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
)

func TestPlanSpreadsEntriesAndTopics(t *testing.T) {
	const nodes, topics, entries = 100, 2000, 200000
	p := newPlan(nodes, topics, entries, 0.02, 0.5, 1)
	sum := 0
	for i, s := range p.sizes {
		sum += s
		if s < 1 || (i > 0 && s > p.sizes[i-1]+1) {
			t.Fatalf("topic %d holds %d entries, the one before %d: not Zipf-like", i, s, p.sizes[max(i-1, 0)])
		}
		if m := p.members[i]; len(m) == 0 || !slices.IsSorted(m) || len(slices.Compact(slices.Clone(m))) != len(m) {
			t.Fatalf("topic %d members %v", i, m)
		}
	}
	if sum != entries {
		t.Fatalf("sizes add up to %d, want %d", sum, entries)
	}
	if p.sizes[0] < 10*p.sizes[topics-1] {
		t.Fatalf("the first topic holds %d entries, the last %d: no popularity", p.sizes[0], p.sizes[topics-1])
	}
	owned, memberships := 0, 0
	for nd := range nodes {
		owned += p.ownEntries(nd)
		memberships += len(p.own[nd])
		if n := len(p.own[nd]); n < 20 || n > 80 {
			t.Errorf("node %d is in %d topics, want about 40", nd, n)
		}
		if p.interestEntries(nd) < p.ownEntries(nd) {
			t.Errorf("node %d: its topics hold fewer entries than it owns", nd)
		}
	}
	if owned != entries {
		t.Fatalf("nodes own %d entries, want %d", owned, entries)
	}
	pop := newPopulation(p)
	if len(pop.global) != entries {
		t.Fatalf("the population holds %d entries, want %d", len(pop.global), entries)
	}
	wanted, members := pop.remoteWanted(topics), pop.members(topics)
	for nd := range nodes {
		if w := p.interestEntries(nd) - p.ownEntries(nd); wanted[nd] != w {
			t.Fatalf("node %d must mirror %d remote entries, the plan says %d", nd, wanted[nd], w)
		}
	}
	for tp := range topics {
		if !slices.Equal(members[tp], p.members[tp]) {
			t.Fatalf("topic %d: the population's members %v, the plan's %v", tp, members[tp], p.members[tp])
		}
	}
	if q := newPlan(nodes, topics, entries, 0.02, 0.5, 1); !slices.Equal(q.sizes, p.sizes) || !slices.Equal(q.members[7], p.members[7]) {
		t.Fatal("the same seed gave another plan")
	}
	flat := newPlan(nodes, topics, entries, 0.02, 0, 1)
	if flat.sizes[0] != flat.sizes[topics-1] {
		t.Fatalf("zipf 0: sizes from %d to %d", flat.sizes[0], flat.sizes[topics-1])
	}
}

// TestTruthCheckFindsAWrongView builds three engines by hand as a cluster
// would have them, then spoils one view at a time: each is reported.
func TestTruthCheckFindsAWrongView(t *testing.T) {
	p := &plan{sizes: []int{3}, members: [][]int{{0, 1}}, own: [][]ownership{{{0, 2}}, {{0, 1}}, nil}}
	es := make([]*engine.Engine, 3)
	for i := range es {
		var err error
		if es[i], err = engine.New(engine.Config{Capacity: 64, RefTag: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	topic := scaleTopic(0)
	remote := engine.FirstRemoteSocket
	// n0 owns a and b, n1 owns c; each mirrors the other's with the same
	// ref and meta.
	own := func(e *engine.Engine, s engine.SocketID, key string) uint64 {
		_, ref, err := e.TrackRef(s, topic, key, []byte(`{"g":0}`))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	mirror := func(e *engine.Engine, s engine.SocketID, key string, ref uint64, meta string) {
		if _, err := e.TrackWithRef(s, topic, key, []byte(meta), ref); err != nil {
			t.Fatal(err)
		}
	}
	ra, rb, rc := own(es[0], 1, "a"), own(es[0], 2, "b"), own(es[1], 1, "c")
	mirror(es[1], remote+1, "a", ra, `{"g":0}`)
	mirror(es[1], remote+2, "b", rb, `{"g":0}`)
	mirror(es[0], remote+3, "c", rc, `{"g":0}`)
	if bad, n, checked := viewsAgainstTruth(es, p.members, false, scaleTopic); n != 0 || checked != 2 {
		t.Fatalf("a right cluster: %d bad of %d: %v", n, checked, bad)
	}
	check := func(what string) {
		t.Helper()
		bad, n, _ := viewsAgainstTruth(es, p.members, false, scaleTopic)
		if n != 1 || len(bad) != 1 || bad[0].node != 1 {
			t.Fatalf("%s: %d bad, %v; want node 1's view", what, n, bad)
		}
	}
	mirror(es[1], remote+1, "a", ra, `{"g":1}`) // a stale meta
	check("a meta differs")
	mirror(es[1], remote+1, "a", ra+1, `{"g":0}`) // another ref
	check("a ref differs")
	es[1].Untrack(remote+1, topic) // an entry missing
	check("an entry missing")
	mirror(es[1], remote+1, "a", ra, `{"g":0}`)
	mirror(es[1], remote+9, "ghost", 99, `{}`) // one too many
	check("a ghost")
	// A node outside the topic is not asked: its view is not the truth's
	// business here.
	es[1].Untrack(remote+9, topic)
	mirror(es[2], remote+1, "a", ra, `{"g":5}`)
	if bad, n, _ := viewsAgainstTruth(es, p.members, false, scaleTopic); n != 0 {
		t.Fatalf("a node outside the topic was checked: %v", bad)
	}
	// Under full replication it is: n2 holds a with a stale meta, and
	// nothing of b and c.
	if bad, n, checked := viewsAgainstTruth(es, p.members, true, scaleTopic); n != 1 || checked != 3 || bad[0].node != 2 {
		t.Fatalf("everyone: %d bad of %d: %v; want node 2's view", n, checked, bad)
	}
}

func TestValidateScale(t *testing.T) {
	good := smallScale(ReplicateAll)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Options){
		func(o *Options) { o.Nodes = 1 },
		func(o *Options) { o.Nodes = maxScaleNodes + 1 },
		func(o *Options) { o.Topics = 0 },
		func(o *Options) { o.Entries = o.Topics - 1 },
		func(o *Options) { o.Entries = maxScaleEntries + 1 },
		func(o *Options) { o.Share = 0 },
		func(o *Options) { o.Share = 1.5 },
		func(o *Options) { o.Zipf = -1 },
		func(o *Options) { o.Churn = -1 },
		func(o *Options) { o.ChurnFor = 0 },
		func(o *Options) { o.Moves = -0.1 },
		func(o *Options) { o.Moves = 1.1 },
		func(o *Options) { o.Samples = 3 },
		func(o *Options) { o.Replicate = "some" },
		func(o *Options) { o.Linger = -time.Second },
		func(o *Options) { o.Buckets = -1 },
		func(o *Options) { o.Buckets = 3 },
		func(o *Options) { o.Buckets = 1 << 17 },
	} {
		o := good
		mod(&o)
		if _, err := RunScale(context.Background(), o, nil, io.Discard); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := Run(context.Background(), good, nil, io.Discard); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Run of a scale run: %v, want ErrInvalidOptions", err)
	}
}

// smallScale is a scale run small enough for a test: 10 nodes, 2,000
// entries in 100 topics, each node in a fifth of them, 1 s of churn.
func smallScale(replicate string) Options {
	return Options{Scale: true, Nodes: 10, Entries: 2000, Topics: 100, Share: 0.2, Zipf: 0.5,
		Churn: 1000, Moves: 0.1, ChurnFor: time.Second, Samples: 40, Replicate: replicate, idleFor: time.Second}
}

// TestScaleSmall runs the simulation small: every view equals the truth
// at the end (RunScale fails otherwise), changes were made and seen, and
// under full replication every node holds every remote entry.
func TestScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten nodes and churns for a second")
	}
	// Half the entries and churn of the interest run: every node applies
	// every change here, slow under the race detector.
	o := smallScale(ReplicateAll)
	o.Entries, o.Topics, o.ChurnFor, o.Samples = 1000, 60, 500*time.Millisecond, 10
	r, err := RunScale(context.Background(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	switch {
	case r.ViewsChecked < 10*o.Nodes:
		t.Fatalf("only %d views checked", r.ViewsChecked)
	case r.Changes < 100 || r.VisSamples < 4 || r.InterestedPerChange <= 0:
		t.Fatalf("churn or probes did not run: %+v", *r)
	case r.RemoteHeldMean != float64(o.Entries)-float64(o.Entries)/float64(o.Nodes):
		t.Fatalf("under full replication a node holds %.0f remote entries, want every other node's", r.RemoteHeldMean)
	case r.RemoteRatioMean <= 1.2:
		t.Fatalf("full replication's ratio %.2f: the plan's topics hold as much as the cluster", r.RemoteRatioMean)
	}
}

// TestScaleSmallInterest runs the simulation small under interest
// replication, with sockets moving between topics and a short linger: every
// view equals the truth at the end, a node holds about the remote entries
// of its topics and no more (full replication fails this: see
// TestScaleSmall), and the cluster's own Stats agree with the engines.
func TestScaleSmallInterest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten nodes and churns for a second")
	}
	o := smallScale(ReplicateInterest)
	o.Linger = 100 * time.Millisecond
	r, err := RunScale(context.Background(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	switch {
	case r.ViewsChecked < 10*o.Nodes || r.Changes < 100 || r.VisSamples < 4:
		t.Fatalf("the run did little: %+v", *r)
	case r.RemoteRatioMean > 1.2:
		t.Fatalf("a node holds %.2fx the remote entries of its topics, want at most 1.2x", r.RemoteRatioMean)
	case r.RemoteInterestMean == 0 || r.RemoteHeldMean < r.RemoteInterestMean:
		t.Fatalf("held %.0f remote entries for %.0f wanted", r.RemoteHeldMean, r.RemoteInterestMean)
	case r.StatsRemoteMean != r.RemoteInterestMean:
		// Read after the linger: exactly what the topics hold.
		t.Fatalf("cluster.Stats reports %.1f remote entries a node after the linger, the topics hold %.1f", r.StatsRemoteMean, r.RemoteInterestMean)
	case r.SnapshotFetches == 0 || r.MoveSubscribes == 0:
		t.Fatalf("moves made no first join: %+v", *r)
	case !r.LingerWaited || r.LingerDrops < 2*5:
		// At least the probes' topics, five pairs' two nodes each, lingered
		// and went (RunScale fails if a node keeps one it left).
		t.Fatalf("%d linger drops, waited %.0f ms", r.LingerDrops, r.LingerWaitMs)
	}
}

// TestScaleSmallInterestDeliveries: in steady churn, with no socket moving
// to a topic new to its node (whose first join fetches the topic, and
// whose first batch in a bucket is announced by a heartbeat), a change
// costs at most the interested nodes + 2 NATS deliveries.
func TestScaleSmallInterestDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten nodes and churns for a second")
	}
	o := smallScale(ReplicateInterest)
	o.Moves = 0
	r, err := RunScale(context.Background(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	switch {
	case r.ViewsChecked < 10*o.Nodes || r.Changes < 100:
		t.Fatalf("the run did little: %+v", *r)
	case r.DeliveriesPerChange > r.InterestedPerChange+2:
		t.Fatalf("%.2f NATS deliveries per change for %.2f interested nodes, want at most 2 more", r.DeliveriesPerChange, r.InterestedPerChange)
	}
}

// TestScaleBuckets runs the simulation small with -cluster-buckets 1:
// every node follows the one bucket, so a change reaches every node that
// follows any topic, far more than the nodes in its topic, and every view
// still equals the truth at the end.
func TestScaleBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes and churns")
	}
	o := smallScale(ReplicateInterest)
	o.Nodes, o.Entries, o.Topics, o.Moves, o.ChurnFor, o.Samples = 6, 600, 60, 0, 500*time.Millisecond, 10
	o.Buckets = 1
	r, err := RunScale(context.Background(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	switch {
	case r.Buckets != 1 || r.ViewsChecked < o.Nodes || r.Changes < 100:
		t.Fatalf("the run did little: %+v", *r)
	case r.DeliveriesPerChange < r.InterestedPerChange+2:
		t.Fatalf("%.2f NATS deliveries per change for %.2f interested nodes: one bucket should reach every node", r.DeliveriesPerChange, r.InterestedPerChange)
	case r.HeartbeatBytes <= 0 || r.StartHeartbeats < uint64(o.Nodes):
		t.Fatalf("heartbeat bytes %.0f, %d heartbeats at the start", r.HeartbeatBytes, r.StartHeartbeats)
	}
	var b bytes.Buffer
	if err := WriteScaleTable(&b, r); err != nil || !strings.Contains(b.String(), ", 1 buckets") {
		t.Fatalf("the table does not name the bucket count: %v\n%s", err, b.String())
	}
}

// TestNodesFlagIsTheSimulation: -nodes N, as in "-mode cluster -nodes
// 100", asks for the simulation with N nodes.
func TestNodesFlagIsTheSimulation(t *testing.T) {
	fs := flag.NewFlagSet("presbench", flag.ContinueOnError)
	var o Options
	Flags(fs, &o)
	if err := fs.Parse([]string{"-nodes", "100"}); err != nil {
		t.Fatal(err)
	}
	if !o.Scale || o.Nodes != 100 {
		t.Fatalf("-nodes 100 gave Scale %v, Nodes %d", o.Scale, o.Nodes)
	}
	if err := fs.Parse([]string{"-nodes", "many"}); err == nil {
		t.Fatal("-nodes many was accepted")
	}
}
