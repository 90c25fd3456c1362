package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/bench/stress"
)

// TestOneTableSideBySide: one run gives one table with the three
// registries, the ratios against the engine and the CPU.
func TestOneTableSideBySide(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-ops", "4000", "-workers", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"cpu: " + runinfo.CPU(), "engine vs centrifuge", "engine vs baseline", "memory reserved", "list p50 / p99", "capacity 4096"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	header := regexp.MustCompile(`(?m)^ *engine +centrifuge +baseline +engine vs centrifuge +engine vs baseline$`)
	if !header.MatchString(s) {
		t.Errorf("no header with the three side by side:\n%s", s)
	}
	if !regexp.MustCompile(`(?m)^ *ops/s( +[0-9.]+[kM]?){3}( +[0-9.]+x){2}$`).MatchString(s) {
		t.Errorf("no throughput row with three figures and two ratios:\n%s", s)
	}
}

// TestJSON: -json carries every registry's figures and the ratios.
func TestJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-ops", "3000", "-workers", "2", "-json", "-preset", "read-heavy"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	env, err := runinfo.ReadJSON(&out)
	if err != nil || env.Mode != "peers" || env.CPU == "" {
		t.Fatalf("envelope %+v: %v", env, err)
	}
	var rep stress.JSONReport
	if err := json.Unmarshal(env.Report, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 3 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	for i, name := range registries {
		r := rep.Runs[i]
		if r.Target != name || r.TotalOps != 3000 || r.OpsPerS <= 0 || r.Memory == nil || r.Memory.HeapEnd <= 0 {
			t.Errorf("run %d: %+v", i, r)
		}
	}
	if rep.Versus["centrifuge"]["all"] <= 0 || rep.Versus["baseline"]["list"] <= 0 || rep.Ratios != nil {
		t.Fatalf("ratios: %v %v", rep.Versus, rep.Ratios)
	}
}

func TestBadFlagsOneLine(t *testing.T) {
	for _, args := range [][]string{{"-peers", "engine,redis"}, {"-peers", "engine,engine"}, {"-capacity", "0"}, {"-nope"}, {"-quiet", "-progress"}, {"x"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || strings.Count(errOut.String(), "\n") != 1 || !strings.Contains(errOut.String(), "(see presbench-peers -h)") {
			t.Errorf("%v: exit %d:\n%s", args, code, errOut.String())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestProgress(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "200ms", "-workers", "2", "-progress", "-peers", "centrifuge,engine"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o.progressEvery, o.progressAfter = 20*time.Millisecond, 50*time.Millisecond
	var out bytes.Buffer
	var errOut lockedBuffer
	if err := measure(o, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := errOut.b.String()
	for _, phase := range []string{"centrifuge", "engine"} {
		if !regexp.MustCompile(`(?m)^presbench-peers: ` + phase + `: [0-9.]+[kM]? ops, [0-9.]+[kM]? ops/s, [0-9]+m?s elapsed$`).MatchString(lines) {
			t.Errorf("no progress line for %s:\n%s", phase, lines)
		}
	}
}
