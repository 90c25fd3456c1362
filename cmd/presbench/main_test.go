package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence/cmd/presbench/internal/stress"
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
}

func TestParseFlagsPresetsAndOverrides(t *testing.T) {
	o, err := parseFlags([]string{"-preset", "hot-room", "-topics", "4", "-mix", "list=60,update=40", "-seed", "9", "-ops", "100"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Dist != "zipf" || c.Topics != 4 || c.Mix[stress.OpList] != 60 || c.Seed != 9 || c.Ops != 100 {
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
}

func TestBadFlagsExitTwoWithUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"-mix", "track=50,list=40"},
		{"-mix", "fly=100"},
		{"-key-size", "-5"},
		{"-meta-size", "-1"},
		{"-capacity", "-1"},
		{"-workers", "0"},
		{"-duration", "0s"},
		{"-target", "redis"},
		{"-preset", "nope"},
		{"-dist", "zipf", "-zipf-s", "0.5"},
		{"-prefill", "2"},
		{"extra-arg"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "usage: presbench") || !strings.Contains(errOut.String(), "presbench:") {
			t.Errorf("%v: stderr lacks usage and error:\n%s", args, errOut.String())
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
	for _, want := range []string{"target engine", "target baseline", "verify: ok", "engine vs baseline"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{cpu, trace} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	out.Reset()
	if code := run([]string{"-ops", "5000", "-json", "-preset", "churn"}, &out, &errOut); code != 0 {
		t.Fatalf("json run: exit %d: %s", code, errOut.String())
	}
	var rep struct {
		Runs []struct {
			TotalOps int64 `json:"total_ops"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Runs) != 1 || rep.Runs[0].TotalOps != 5000 {
		t.Fatalf("json report %s: %v", out.String(), err)
	}
}

// TestModeRejectsForeignFlags: each mode refuses the flags of the others.
func TestModeRejectsForeignFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
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
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errOut.String(), tc.want) || !strings.Contains(errOut.String(), "usage: presbench") {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, errOut.String())
		}
	}
}

func TestServerModeDefaults(t *testing.T) {
	o, err := parseFlags([]string{"-mode", "server", "-workload", "churn", "-clients", "1000", "-json"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if l := o.load; l.Duration != 20*time.Second || l.Churners != 100 || l.Rate != 50 || l.URL != o.url || !o.json {
		t.Fatalf("churn defaults: %+v", l)
	}
	o, err = parseFlags([]string{"-mode", "server", "-workload", "idle", "-clients", "10000", "-duration", "1s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if l := o.load; l.Duration != time.Second || l.Rooms != 100 {
		t.Fatalf("idle: %+v", l)
	}
}

// TestServerModeReportsFailure runs -mode server against a port nobody
// listens on: the report names the failed connects, and the exit is 1.
func TestServerModeReportsFailure(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"-mode", "server", "-url", "ws://127.0.0.1:1/socket/websocket", "-clients", "3", "-timeout", "1s"}, &out, &errOut)
	if code != 1 || !regexp.MustCompile(`connect or join errors +3 `).MatchString(out.String()) || !strings.Contains(errOut.String(), "join:") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
}
