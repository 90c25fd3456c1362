package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/chatroom"
	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/bench/stress"
	"github.com/presencekit/presence/cmd/presbench/internal/clustermode"
	"github.com/presencekit/presence/engine"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Target != "engine" || c.Duration != 10*time.Second || c.Mix != stress.DefaultMix || c.Workers < 1 {
		t.Fatalf("defaults: %+v", c)
	}
	for op, p := range c.Mix {
		if p == 0 {
			t.Errorf("default mix skips %s", stress.Op(op))
		}
	}
	if o.progressEvery != time.Second || o.progressAfter != 2*time.Second || o.quiet || o.progress {
		t.Fatalf("progress defaults: %+v", o)
	}
}

func TestParseFlagsPresetsAndOverrides(t *testing.T) {
	o, err := parseFlags([]string{"-preset", "hot-room", "-topics", "4", "-mix", "list=60,update=40", "-seed", "9", "-ops", "100"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Dist != "zipf" || c.Topics != 4 || c.Mix[stress.OpList] != 60 || c.Seed != 9 || c.Ops != 100 || c.Capacity != 8192 {
		t.Fatalf("hot-room with overrides: %+v", c)
	}
	o, _ = parseFlags([]string{"-preset", "churn"}, &bytes.Buffer{})
	if o.cfg.Mix[stress.OpTrack] != 45 || o.cfg.Mix[stress.OpUntrack] != 45 {
		t.Fatalf("churn mix: %v", o.cfg.Mix)
	}
	o, _ = parseFlags([]string{"-preset", "read-heavy"}, &bytes.Buffer{})
	if o.cfg.Mix[stress.OpList] != 90 {
		t.Fatalf("read-heavy mix: %v", o.cfg.Mix)
	}
	o, _ = parseFlags([]string{"-mode", "cluster", "-cluster-kill=false"}, &bytes.Buffer{})
	if o.cluster.Kill || o.cluster.Nodes != 3 {
		t.Fatalf("cluster: %+v", o.cluster)
	}
	o, err = parseFlags([]string{"-mode", "cluster", "-cluster-scale", "-cluster-nodes", "100"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.cluster.Scale || o.cluster.Nodes != 100 || o.cluster.Entries != 200000 || o.cluster.Topics != 2000 || o.cluster.Churn != 5000 || o.cluster.Replicate != "interest" {
		t.Fatalf("cluster scale: %+v", o.cluster)
	}
}

// usageError runs args and checks that presbench refused them in one line
// on stderr, with the hint, and exit 2; it returns that line.
func usageError(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 2 {
		t.Errorf("%v: exit %d, want 2", args, code)
	}
	line := errOut.String()
	if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "presbench: ") || !strings.HasSuffix(line, " (see presbench -h)\n") {
		t.Errorf("%v: want one line with the error and the hint, got:\n%s", args, line)
	}
	if out.Len() != 0 {
		t.Errorf("%v: wrote to stdout:\n%s", args, out.String())
	}
	return line
}

func TestBadFlagsOneLineWithHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"-mix", "track=50,list=40"}, "sum to 90"},
		{[]string{"-mix", "fly=100"}, `unknown operation "fly"`},
		{[]string{"-key-size", "-5"}, "key-size"},
		{[]string{"-meta-size", "-1"}, "meta-size"},
		{[]string{"-capacity", "-1"}, "capacity must be positive"},
		{[]string{"-workers", "0"}, "workers must be positive"},
		{[]string{"-workers", "x"}, `invalid value "x" for flag -workers`},
		{[]string{"-duration", "0s"}, "duration or ops"},
		{[]string{"-target", "redis"}, `target "redis"`},
		{[]string{"-preset", "nope"}, `unknown preset "nope"`},
		{[]string{"-dist", "zipf", "-zipf-s", "0.5"}, "zipf-s"},
		{[]string{"-prefill", "2"}, "prefill"},
		{[]string{"extra-arg"}, "unexpected arguments: [extra-arg]"},
		{[]string{"-mode", "cluster", "-cluster-kill", "false"}, "-cluster-kill=false"},
		{[]string{"-quiet", "-progress"}, "-quiet and -progress"},
		{[]string{"-mode", "cluster", "-cluster-nodes", "1"}, "cluster-nodes"},
		{[]string{"-mode", "cluster", "-cluster-scale", "-cluster-share", "0"}, "-cluster-share"},
		{[]string{"-mode", "cluster", "-cluster-scale", "-cluster-replicate", "some"}, `-cluster-replicate "some"`},
		{[]string{"-cluster-scale"}, "-cluster-scale (-mode cluster)"},
		{[]string{"-mode", "cluster", "-duration", "1s"}, "-cluster-duration"},
		{[]string{"-mode", "server", "-mix", "list=100"}, "-mix (-mode engine)"},
		{[]string{"-mode", "server", "-compare", "-sockets", "4"}, "-compare (-mode engine), -sockets (-mode engine)"},
		{[]string{"-url", "ws://127.0.0.1:4000/socket/websocket"}, "-url (-mode server)"},
		{[]string{"-mode", "engine", "-workload", "churn"}, "-workload (-mode server)"},
		{[]string{"-mode", "cluster", "-clients", "10"}, "-clients (-mode server)"},
		{[]string{"-mode", "fleet"}, `mode "fleet"`},
		{[]string{"-mode", "server", "-workload", "storm"}, `workload "storm"`},
		{[]string{"-mode", "server", "-url", "ws://10.0.0.1:4000/socket/websocket"}, "loopback"},
		{[]string{"-mode", "server", "-clients", "1000000"}, "clients must be"},
		{[]string{"-mode", "server", "-workload", "churn", "-clients", "10", "-churners", "10"}, "churners"},
	} {
		if line := usageError(t, tc.args...); !strings.Contains(line, tc.want) {
			t.Errorf("%v: %q lacks %q", tc.args, line, tc.want)
		}
	}
}

func TestHelpPrintsEveryModesFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-h"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"usage: presbench", "-quiet", "-progress", "-mode engine:", "-capacity", "-mode server:", "-url", "-mode cluster:", "-cluster-kill"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

// TestEndToEnd runs the command for about a second, with profiles.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cpu, trace := filepath.Join(dir, "cpu.out"), filepath.Join(dir, "trace.out")
	var out, errOut bytes.Buffer
	args := []string{"-duration", "400ms", "-compare", "-verify", "-cpuprofile", cpu, "-trace", trace, "-pprof", "127.0.0.1:0"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"target engine", "target baseline", "verify: ok", "engine vs baseline", "memory for capacity 4096: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{cpu, trace} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// envelope reads -json output: the envelope of mode, and its report into
// report.
func envelope(t *testing.T, out []byte, mode string, report any) *runinfo.Envelope {
	t.Helper()
	env, err := runinfo.ReadJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("-json output is not an envelope: %v\n%s", err, out)
	}
	if env.Schema != runinfo.Schema || env.Mode != mode || env.CPU == "" || env.Cores < 1 || env.GOMAXPROCS < 1 || env.Go == "" {
		t.Fatalf("envelope: %+v", env)
	}
	if _, err := time.Parse(time.RFC3339, env.Time); err != nil {
		t.Fatalf("time: %v", err)
	}
	if err := json.Unmarshal(env.Report, report); err != nil {
		t.Fatalf("report: %v\n%s", err, env.Report)
	}
	return env
}

// TestEngineJSON: -json carries the figures of every run, the ratios and
// the memory of the configuration, and the memory follows -capacity.
func TestEngineJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-ops", "5000", "-json", "-preset", "churn", "-compare", "-capacity", "1024", "-workers", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep stress.JSONReport
	envelope(t, out.Bytes(), "engine", &rep)
	if len(rep.Runs) != 2 || rep.Runs[0].Target != "engine" || rep.Runs[1].Target != "baseline" {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	for _, r := range rep.Runs {
		if r.TotalOps != 5000 || r.OpsPerS <= 0 || len(r.Ops) == 0 || r.Ops[0].P50 <= 0 || r.Capacity != 1024 {
			t.Fatalf("run: %+v", r)
		}
		if r.Memory == nil || r.Memory.Reserved <= 0 || r.Memory.HeapEnd <= 0 || r.Memory.ResidentEnd < 0 {
			t.Fatalf("%s: no memory: %+v", r.Target, r.Memory)
		}
	}
	if rep.Ratios["all"] <= 0 || rep.Versus["baseline"]["all"] != rep.Ratios["all"] {
		t.Fatalf("ratios: %v, versus %v", rep.Ratios, rep.Versus)
	}

	// 64 times the entries: the engine's reservation follows its capacity.
	out.Reset()
	if code := run([]string{"-ops", "1000", "-json", "-capacity", "65536", "-prefill", "0", "-workers", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var big stress.JSONReport
	envelope(t, out.Bytes(), "engine", &big)
	if small, large := rep.Runs[0].Memory.Reserved, big.Runs[0].Memory.Reserved; large < 16*small {
		t.Fatalf("reserved for 1,024 entries %d, for 65,536 %d", small, large)
	}
}

// lockedBuffer is written by the progress printer and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var progressLine = regexp.MustCompile(`^presbench: ([a-z ()]+): ([0-9.]+[kM]?) ops, ([0-9.]+[kM]?) ops/s, ([0-9]+(ms|s)|[0-9]+m[0-9]+s) elapsed$`)

// progressPhases checks every line of stderr and returns how many lines
// each phase got.
func progressPhases(t *testing.T, stderr string) map[string]int {
	t.Helper()
	phases := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := progressLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a progress line: %q", line)
			continue
		}
		phases[m[1]]++
	}
	return phases
}

// fastProgress parses args and paces the progress lines at 20 ms, from
// 50 ms on, so that a short run shows several.
func fastProgress(t *testing.T, args ...string) *options {
	t.Helper()
	o, err := parseFlags(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o.progressEvery, o.progressAfter = 20*time.Millisecond, 50*time.Millisecond
	return o
}

// TestProgressLines: with -progress, a run prints its phase, ops, ops/s
// and elapsed time on stderr, a line per interval, once the run has
// lasted the threshold; and not one line before it.
func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	var errOut lockedBuffer
	o := fastProgress(t, "-progress", "-duration", "300ms", "-workers", "2", "-compare")
	if code := execute(o, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	phases := progressPhases(t, errOut.String())
	if phases["engine"] < 5 || phases["baseline"] < 5 {
		t.Fatalf("lines by phase %v:\n%s", phases, errOut.String())
	}
	// The defaults: nothing in a run shorter than 2 s.
	o, err := parseFlags([]string{"-progress", "-duration", "200ms", "-workers", "2"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	errOut = lockedBuffer{}
	if code := execute(o, &out, &errOut); code != 0 || errOut.String() != "" {
		t.Fatalf("exit %d, stderr of a 200 ms run:\n%s", code, errOut.String())
	}
}

// TestNoProgressUnlessAsked: stderr that is not a terminal gets no line
// without -progress; -quiet silences even a terminal.
func TestNoProgressUnlessAsked(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if code := execute(fastProgress(t, "-duration", "200ms", "-workers", "2"), &out, f); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(f.Name()); len(b) != 0 {
		t.Fatalf("a file as stderr got:\n%s", b)
	}
	// A character device, as a terminal is.
	tty, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer tty.Close()
	for _, tc := range []struct {
		args []string
		w    any
		want bool
	}{
		{nil, tty, true},
		{[]string{"-quiet"}, tty, false},
		{nil, f, false},
		{[]string{"-progress"}, f, true},
		{[]string{"-quiet"}, f, false},
		{nil, &out, false},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		w, _ := tc.w.(interface{ Write([]byte) (int, error) })
		if got := progressWanted(o, w); got != tc.want {
			t.Errorf("%v to %T: progress %v, want %v", tc.args, tc.w, got, tc.want)
		}
	}
}

// TestServerModeNoServerFailsAtOnce runs -mode server against a port
// nobody listens on: one line names the URL, no table comes first, and
// it takes no time.
func TestServerModeNoServerFailsAtOnce(t *testing.T) {
	var out, errOut bytes.Buffer
	const url = "ws://127.0.0.1:1/socket/websocket"
	start := time.Now()
	code := run([]string{"-mode", "server", "-url", url, "-clients", "3", "-timeout", "30s"}, &out, &errOut)
	if code != 1 || out.Len() != 0 || strings.Count(errOut.String(), "\n") != 1 || !strings.Contains(errOut.String(), "no server answers at "+url) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// chatServer serves presence-chat's room and returns its WebSocket URL.
func chatServer(t *testing.T) string {
	t.Helper()
	e, err := engine.New(engine.Config{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := chatroom.New(e, chatroom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket"
}

// TestServerModeJSONAndProgress runs a short churn against a server in
// this process, with -json and -progress.
func TestServerModeJSONAndProgress(t *testing.T) {
	url := chatServer(t)
	var out bytes.Buffer
	var errOut lockedBuffer
	o := fastProgress(t, "-mode", "server", "-url", url, "-workload", "churn", "-clients", "6", "-churners", "2", "-rate", "20", "-duration", "400ms", "-json", "-progress")
	if code := execute(o, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	var rs []*load.Result
	envelope(t, out.Bytes(), "server", &rs)
	if len(rs) != 1 || !rs[0].Complete || rs[0].Workload != "churn" || rs[0].Clients != 6 || rs[0].Actions == 0 || rs[0].Frames == 0 {
		t.Fatalf("report: %+v", rs)
	}
	back, err := load.ReadJSON(bytes.NewReader(out.Bytes()))
	if err != nil || len(back) != 1 || back[0].Actions != rs[0].Actions {
		t.Fatalf("load.ReadJSON of the envelope: %v, %+v", err, back)
	}
	if phases := progressPhases(t, errOut.String()); phases["churn (leaves and joins)"] < 3 {
		t.Fatalf("lines by phase %v:\n%s", phases, errOut.String())
	}
}

// TestClusterModeWithoutKill runs a short cluster with -cluster-kill=false,
// -json and -progress: every figure is plausible, and the kill phase (at
// least the down time, 5 s) never starts.
func TestClusterModeWithoutKill(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("starts NATS servers, loads them and waits for heartbeats: too slow under -race (the cluster package's own tests run there)")
	}
	var out bytes.Buffer
	var errOut lockedBuffer
	o := fastProgress(t, "-mode", "cluster", "-cluster-kill=false", "-cluster-duration", "300ms", "-cluster-samples", "20", "-cluster-resync", "500", "-json", "-progress")
	start := time.Now()
	if code := execute(o, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	elapsed := time.Since(start)
	var r clustermode.Report
	envelope(t, out.Bytes(), "cluster", &r)
	switch {
	case r.MaxUpdatesPerSec <= 0, r.BytesPerDelta <= 0, r.VisP50ms <= 0, r.VisMaxMs < r.VisP99ms:
		t.Fatalf("implausible report: %+v", r)
	case r.ResyncEntries < 500, r.ListAllocs != 0, r.RemoteFull != 0, r.HeartbeatsPerSec <= 0:
		t.Fatalf("report: %+v", r)
	case r.Killed || r.ClearKilledSec != 0:
		t.Fatalf("killed a node with -cluster-kill=false: %+v", r)
	case r.IdleSamples != 5 || r.LoadSamples != 15:
		t.Fatalf("samples: %+v", r)
	}
	phases := progressPhases(t, errOut.String())
	for _, p := range []string{"replicated updates", "heartbeats"} {
		if phases[p] == 0 {
			t.Errorf("no progress line in phase %q: %v", p, phases)
		}
	}
	if phases["clear a killed node"] != 0 {
		t.Errorf("the kill phase ran: %v", phases)
	}
	t.Logf("cluster run without kill: %v", elapsed)
}
