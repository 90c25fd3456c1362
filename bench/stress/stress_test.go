package stress

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testConfig() Config {
	return Config{
		Target: "engine", Capacity: 512, Topics: 8, Dist: "uniform", ZipfS: 1.2, Sockets: 64,
		KeySize: 16, MetaSize: 64, Mix: DefaultMix, Workers: 2, Ops: 20000, Seed: 7, BufSize: 64 << 10,
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("track=50, list=50")
	if err != nil || m[OpTrack] != 50 || m[OpList] != 50 || m.String() != "track=50,list=50" {
		t.Fatalf("ParseMix = %v, %v", m, err)
	}
	for _, bad := range []string{"track=50", "track=50,list=60", "jump=100", "track", "track=x", "track=-10,list=110", ""} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := testConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"target":    func(c *Config) { c.Target = "" },
		"capacity":  func(c *Config) { c.Capacity = -1 },
		"topics":    func(c *Config) { c.Topics = 0 },
		"dist":      func(c *Config) { c.Dist = "normal" },
		"zipf":      func(c *Config) { c.Dist, c.ZipfS = "zipf", 1 },
		"workers":   func(c *Config) { c.Workers = 0 },
		"sockets":   func(c *Config) { c.Sockets = 1 },
		"key-size":  func(c *Config) { c.KeySize = -3 },
		"meta-size": func(c *Config) { c.MetaSize = 0 },
		"length":    func(c *Config) { c.Ops, c.Duration = 0, 0 },
		"mix":       func(c *Config) { c.Mix[OpList] += 1 },
		"shards":    func(c *Config) { c.Shards = -2 },
	} {
		c := testConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func sequence(cfg Config, worker, n int) []step {
	g := newGenerator(&cfg, worker)
	out := make([]step, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

func TestSameSeedReplaysSameOperations(t *testing.T) {
	for _, dist := range []string{"uniform", "zipf"} {
		cfg := testConfig()
		cfg.Dist = dist
		a, b := sequence(cfg, 1, 5000), sequence(cfg, 1, 5000)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: step %d differs: %+v vs %+v", dist, i, a[i], b[i])
			}
		}
		cfg.Seed++
		c := sequence(cfg, 1, 5000)
		same := 0
		for i := range a {
			if a[i] == c[i] {
				same++
			}
		}
		if same == len(a) {
			t.Fatalf("%s: another seed gave the same sequence", dist)
		}
	}
}

func TestWorkersUseOwnSocketsAndEveryOperation(t *testing.T) {
	cfg := testConfig()
	seen := [numOps]int{}
	for w := range cfg.Workers {
		for _, s := range sequence(cfg, w, 20000) {
			seen[s.op]++
			if s.socket != 0 && (s.socket < uint64(w*32+1) || s.socket > uint64(w*32+32)) {
				t.Fatalf("worker %d used socket %d", w, s.socket)
			}
			if s.topic < 0 || s.topic >= cfg.Topics {
				t.Fatalf("topic %d out of range", s.topic)
			}
		}
	}
	for op, n := range seen {
		if n == 0 {
			t.Errorf("default mix never ran %s", Op(op))
		}
	}
}

func TestMetaHasExactSize(t *testing.T) {
	for _, size := range []int{32, 64, 256} {
		m := appendMeta(nil, 12345, 678, size)
		if len(m) != size || !json.Valid(m) {
			t.Fatalf("meta %q: %d bytes, want %d", m, len(m), size)
		}
	}
	if k := appendKey(nil, 42, 16); string(k) != "s42_kkkkkkkkkkkk" {
		t.Fatalf("key %q", k)
	}
}

func TestRunReportsEveryOperation(t *testing.T) {
	for _, target := range []string{"engine", "baseline"} {
		cfg := testConfig()
		cfg.Target = target
		cfg.Verify = true
		tg, err := NewTarget(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), cfg, tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalOps != cfg.Ops {
			t.Fatalf("%s: ran %d ops, want %d", target, res.TotalOps, cfg.Ops)
		}
		for _, o := range res.Ops {
			if o.Count == 0 || o.P50 <= 0 || o.P99 < o.P50 || o.Max < o.P99 {
				t.Fatalf("%s: %s: %+v", target, o.Op, o)
			}
		}
		if len(res.Violations) > 0 || res.FinalLen != 0 {
			t.Fatalf("%s: violations %v, final Len %d", target, res.Violations, res.FinalLen)
		}
	}
}

// leaky drops some Untracks while reporting success: the ghost entries a
// presence system must never show.
type leaky struct {
	Target
	n atomic.Int64
}

func (l *leaky) Untrack(s uint64, topic string) bool {
	if l.n.Add(1)%7 == 0 {
		return true
	}
	return l.Target.Untrack(s, topic)
}

func TestVerifyCatchesDroppedUntrack(t *testing.T) {
	cfg := testConfig()
	cfg.Verify = true
	cfg.Ops, cfg.Duration = 0, 500*time.Millisecond
	tg, _ := NewTarget(&cfg)
	res, err := Run(context.Background(), cfg, &leaky{Target: tg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatal("verify did not notice Untracks that were dropped")
	}
	var ghost bool
	for _, v := range res.Violations {
		ghost = ghost || strings.Contains(v, "after its Untrack returned")
	}
	if !ghost {
		t.Fatalf("violations do not name the ghost entry: %v", res.Violations)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	cfg := testConfig()
	cfg.Ops, cfg.Duration = 0, time.Hour
	tg, _ := NewTarget(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, cfg, tg, nil)
	if err != nil || !res.Interrupted || res.TotalOps == 0 {
		t.Fatalf("interrupted run: %v, %+v", err, res)
	}
}

func sampleResult(target string, scale time.Duration) *Result {
	cfg := testConfig()
	cfg.Target = target
	cfg.Verify = true
	r := &Result{Target: target, Config: cfg, Elapsed: 2 * time.Second, ReadRetries: 3, Checks: 10, Len: 5, MaxTopic: 4}
	for op := Op(0); op < numOps; op++ {
		r.Ops = append(r.Ops, OpResult{Op: op, Count: 1000, PerSec: 500, Mean: 150 * scale, P50: 100 * scale, P90: 200 * scale,
			P99: 1500 * scale, P999: 2 * time.Millisecond, Max: 3 * time.Millisecond, Failures: map[string]int64{}})
		r.TotalOps += 1000
	}
	r.Ops[OpTrack].Failures["full"] = 12
	return r
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleResult("engine", 1)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"target engine: 2 workers, 20000 ops", "mix track=20", "p99.9",
		"track  1000", "100ns", "1.5µs", "2.00ms", "full:12", "seqlock read retries 3", "verify: ok (10 Lists checked"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	WriteRatios(&buf, sampleResult("engine", 1), sampleResult("baseline", 10))
	if !strings.Contains(buf.String(), "engine vs baseline: 1.0x the throughput") || !strings.Contains(buf.String(), "10.0x") {
		t.Errorf("ratios:\n%s", buf.String())
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResult("engine", 1), sampleResult("baseline", 10)); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []struct {
			Target string
			Ops    []struct {
				Op       string
				P99      int64 `json:"p99_ns"`
				Failures map[string]int64
			}
			Verify struct{ OK bool }
		}
		Ratios map[string]float64
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Target != "engine" || rep.Runs[0].Ops[0].P99 != 1500 ||
		rep.Runs[0].Ops[0].Failures["full"] != 12 || !rep.Runs[0].Verify.OK || rep.Ratios["list"] != 10 {
		t.Fatalf("JSON report: %s", buf.String())
	}
}
