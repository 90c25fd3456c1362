package stress

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/presencekit/presence/bench/progress"
	"golang.org/x/sync/errgroup"

	"github.com/presencekit/presence/engine"
)

// Failure reasons, in report order.
var reasons = []string{"full", "invalid", "short buffer", "socket limit"}

// Result is what one run measured.
type Result struct {
	Target      string
	Config      Config
	Elapsed     time.Duration
	TotalOps    int64
	ReadRetries uint64
	Interrupted bool     // the context ended the run early
	Checks      int64    // Lists examined by the verifier
	FinalLen    int      // Len after every worker untracked its sockets (with Verify)
	Len         int      // entries when the workers stopped
	MaxTopic    int      // members of the largest topic when the workers stopped
	Violations  []string // invariants the verifier saw broken
	Ops         []OpResult
	Memory      *Memory // what the registry costs, when built with Build
}

// OpResult is one operation's share of a run.
type OpResult struct {
	Op       Op
	Count    int64
	PerSec   float64
	Mean     time.Duration
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	Failures map[string]int64
}

// worker is one goroutine's state and tallies.
type worker struct {
	gen      *generator
	hist     [numOps]*hdrhistogram.Histogram
	fails    [numOps][4]int64
	done     atomic.Int64    // operations so far, published every 64
	cursors  []engine.Cursor // incremental diff cursor per topic
	keys     []string        // key of each of this worker's sockets, from sockLo
	meta     []byte
	buf      []byte
	topics   []string
	verifier *verifier
}

// Run runs cfg against t until the duration or operation count is reached,
// or ctx ends; then the report is of what ran. m, when not nil, follows
// the prefill and the run, named after cfg.Target.
func Run(ctx context.Context, cfg Config, t Target, m *progress.Meter) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	topics := make([]string, cfg.Topics)
	for i := range topics {
		topics[i] = "topic:" + strconv.Itoa(i)
	}
	var v *verifier
	if cfg.Verify {
		v = newVerifier(&cfg, t, topics)
	}
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		w := &worker{
			gen:      newGenerator(&cfg, i),
			cursors:  make([]engine.Cursor, cfg.Topics),
			buf:      make([]byte, cfg.BufSize),
			topics:   topics,
			verifier: v,
		}
		for s := range w.gen.sockN {
			w.keys = append(w.keys, string(appendKey(nil, w.gen.sockLo+uint64(s), cfg.KeySize)))
		}
		for op := range w.hist {
			w.hist[op] = hdrhistogram.New(1, int64(time.Minute), 3)
		}
		workers[i] = w
	}

	// Prefill, unmeasured, so that reads start on populated topics.
	prefilled := m.Counter(cfg.Target + " prefill")
	var prefill errgroup.Group
	for i, w := range workers {
		n := int(cfg.Prefill*float64(cfg.Capacity)) / cfg.Workers
		if i == 0 {
			n += int(cfg.Prefill*float64(cfg.Capacity)) % cfg.Workers
		}
		prefill.Go(func() error {
			for i := range n {
				w.do(&cfg, t, w.gen.step(OpTrack))
				if i&63 == 63 {
					prefilled.Add(64)
				}
			}
			w.hist[OpTrack].Reset()
			w.fails[OpTrack] = [4]int64{}
			return nil
		})
	}
	prefill.Wait()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Ops <= 0 {
		runCtx, cancel = context.WithTimeout(runCtx, cfg.Duration)
		defer cancel()
	}
	m.Phase(cfg.Target, func() (n int64) {
		for _, w := range workers {
			n += w.done.Load()
		}
		return n
	})
	start := time.Now()

	checkCtx, stopChecks := context.WithCancel(context.Background())
	var checks sync.WaitGroup
	if v != nil {
		checks.Add(1)
		go func() {
			defer checks.Done()
			v.check(checkCtx)
		}()
	}

	g, gctx := errgroup.WithContext(runCtx)
	for i, w := range workers {
		quota := int64(-1)
		if cfg.Ops > 0 {
			quota = cfg.Ops / int64(cfg.Workers)
			if i == 0 {
				quota += cfg.Ops % int64(cfg.Workers)
			}
		}
		g.Go(func() error {
			w.run(gctx, &cfg, t, quota)
			return nil
		})
	}
	g.Wait()
	elapsed := time.Since(start)
	stopChecks()
	checks.Wait()

	res := &Result{
		Target:      cfg.Target,
		Config:      cfg,
		Elapsed:     elapsed,
		ReadRetries: t.ReadRetries(),
		Interrupted: ctx.Err() != nil,
	}
	res.Len = t.Len()
	for _, topic := range topics {
		res.MaxTopic = max(res.MaxTopic, t.Count(topic))
	}
	if v != nil {
		// After the run every socket leaves: nothing may remain.
		for _, w := range workers {
			for s := w.gen.sockLo; s < w.gen.sockLo+uint64(w.gen.sockN); s++ {
				t.UntrackAll(s)
			}
		}
		res.FinalLen = t.Len()
		if res.FinalLen != 0 {
			v.fail(fmt.Sprintf("Len() = %d after every socket was untracked, want 0", res.FinalLen))
		}
		res.Checks = v.checks.Load()
		res.Violations = v.violations()
	}
	for op := Op(0); op < numOps; op++ {
		h := hdrhistogram.New(1, int64(time.Minute), 3)
		r := OpResult{Op: op, Failures: map[string]int64{}}
		for _, w := range workers {
			h.Merge(w.hist[op])
			for i, n := range w.fails[op] {
				if n > 0 {
					r.Failures[reasons[i]] += n
				}
			}
		}
		r.Count = h.TotalCount()
		res.TotalOps += r.Count
		if r.Count > 0 {
			r.PerSec = float64(r.Count) / elapsed.Seconds()
			r.Mean = time.Duration(h.Mean())
			r.P50 = time.Duration(h.ValueAtQuantile(50))
			r.P90 = time.Duration(h.ValueAtQuantile(90))
			r.P99 = time.Duration(h.ValueAtQuantile(99))
			r.P999 = time.Duration(h.ValueAtQuantile(99.9))
			r.Max = time.Duration(h.Max())
		}
		res.Ops = append(res.Ops, r)
	}
	return res, nil
}

func (w *worker) run(ctx context.Context, cfg *Config, t Target, quota int64) {
	var n int64
	for quota < 0 || n < quota {
		if n&63 == 0 {
			w.done.Store(n)
			if ctx.Err() != nil {
				break
			}
		}
		n++
		w.do(cfg, t, w.gen.next())
	}
	w.done.Store(n)
}

func (w *worker) do(cfg *Config, t Target, s step) {
	var err error
	topic := w.topics[s.topic]
	var start time.Time
	switch s.op {
	case OpTrack, OpUpdate:
		w.meta = appendMeta(w.meta[:0], s.socket, s.version, cfg.MetaSize)
		if w.verifier != nil {
			w.verifier.tracking(s.socket, s.topic)
		}
		key := w.keys[s.socket-w.gen.sockLo]
		start = time.Now()
		err = t.Track(s.socket, topic, key, w.meta)
	case OpUntrack:
		start = time.Now()
		t.Untrack(s.socket, topic)
		if w.verifier != nil {
			w.verifier.untracked(s.socket, s.topic)
		}
	case OpUntrackAll:
		start = time.Now()
		t.UntrackAll(s.socket)
		if w.verifier != nil {
			w.verifier.untrackedAll(s.socket)
		}
	case OpList:
		start = time.Now()
		_, err = t.List(topic, w.buf)
	case OpDiff:
		start = time.Now()
		_, err = t.Diff(topic, w.buf)
	case OpChanges:
		start = time.Now()
		_, w.cursors[s.topic] = t.Changes(w.buf[:0], topic, w.cursors[s.topic])
	case OpCount:
		start = time.Now()
		t.Count(topic)
	}
	w.hist[s.op].RecordValue(max(time.Since(start).Nanoseconds(), 1))
	if err != nil {
		switch failure(err) {
		case "full":
			w.fails[s.op][0]++
		case "short buffer":
			w.fails[s.op][2]++
		case "socket limit":
			w.fails[s.op][3]++
		default:
			w.fails[s.op][1]++
		}
	}
}

// verifier checks invariants while workers run. state[p] for a (socket,
// topic) pair is odd from the moment a Track of it may begin, and even once
// an Untrack of it has returned: an entry listed by a List that began after
// that, with the state unchanged, is a ghost.
type verifier struct {
	cfg    *Config
	t      Target
	topics []string
	state  []atomic.Uint64
	checks atomic.Int64
	mu     sync.Mutex
	broken []string
}

func newVerifier(cfg *Config, t Target, topics []string) *verifier {
	return &verifier{cfg: cfg, t: t, topics: topics, state: make([]atomic.Uint64, cfg.Sockets*cfg.Topics)}
}

func (v *verifier) pair(s uint64, topic int) *atomic.Uint64 {
	return &v.state[int(s-1)*v.cfg.Topics+topic]
}

func (v *verifier) tracking(s uint64, topic int) {
	if p := v.pair(s, topic); p.Load()%2 == 0 {
		p.Add(1)
	}
}

func (v *verifier) untracked(s uint64, topic int) {
	if p := v.pair(s, topic); p.Load()%2 == 1 {
		p.Add(1)
	}
}

func (v *verifier) untrackedAll(s uint64) {
	for topic := range v.cfg.Topics {
		v.untracked(s, topic)
	}
}

func (v *verifier) fail(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.broken) < 20 {
		v.broken = append(v.broken, msg)
	}
}

func (v *verifier) violations() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.broken...)
}

type listedEntry struct {
	Key  string          `json:"key"`
	Meta json.RawMessage `json:"meta"`
}

// check runs until ctx ends, Listing random topics and checking what it
// gets.
func (v *verifier) check(ctx context.Context) {
	rng := rand.New(rand.NewPCG(v.cfg.Seed, 0))
	buf := make([]byte, v.cfg.BufSize)
	before := make([]uint64, v.cfg.Sockets)
	for ctx.Err() == nil {
		ti := rng.IntN(v.cfg.Topics)
		for s := range v.cfg.Sockets {
			before[s] = v.pair(uint64(s+1), ti).Load()
		}
		out, err := v.t.List(v.topics[ti], buf)
		if err != nil {
			continue // short buffer: counted by the workers' own Lists
		}
		v.checks.Add(1)
		var list []listedEntry
		if err := json.Unmarshal(out, &list); err != nil {
			v.fail(fmt.Sprintf("List(%s) is not valid JSON (%v): %.200s", v.topics[ti], err, out))
			continue
		}
		seen := map[uint64]bool{}
		for _, e := range list {
			s, err := strconv.ParseUint(strings.TrimPrefix(strings.SplitN(e.Key, "_", 2)[0], "s"), 10, 64)
			if err != nil || s < 1 || s > uint64(v.cfg.Sockets) {
				v.fail(fmt.Sprintf("List(%s) holds unknown key %q", v.topics[ti], e.Key))
				continue
			}
			if seen[s] {
				v.fail(fmt.Sprintf("List(%s) holds socket %d twice", v.topics[ti], s))
			}
			seen[s] = true
			var m struct{ S, V uint64 }
			if json.Unmarshal(e.Meta, &m) != nil || m.S != s ||
				string(appendMeta(nil, m.S, m.V, v.cfg.MetaSize)) != string(e.Meta) {
				v.fail(fmt.Sprintf("List(%s): torn or foreign meta for socket %d: %.200s", v.topics[ti], s, e.Meta))
			}
			if b := before[s-1]; b%2 == 0 && v.pair(s, ti).Load() == b {
				v.fail(fmt.Sprintf("List(%s) shows socket %d after its Untrack returned", v.topics[ti], s))
			}
		}
		if n := v.t.Len(); n > v.t.Cap() {
			v.fail(fmt.Sprintf("Len() = %d > Cap() = %d", n, v.t.Cap()))
		}
	}
}
