// Command presbench-peers runs presbench's engine workload (bench/stress)
// through the engine, centrifuge's in-memory presence manager and the
// naive baseline registry, one after the other in one process, and prints
// one table with the three side by side, the ratios against the engine and
// the CPU they ran on:
//
//	cd bench/peers && go run ./cmd/presbench-peers            # 5 s each
//	go run ./cmd/presbench-peers -preset read-heavy -duration 10s -json
//
// It takes presbench -mode engine's workload flags (-preset, -mix,
// -capacity, ...), so the same flags mean the same run. It lives in this
// nested module so that the presence module never requires centrifuge.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/presencekit/presence/bench/peers"
	"github.com/presencekit/presence/bench/progress"
	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/bench/stress"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// registries are the ones this command can run, in table order.
var registries = []string{"engine", "centrifuge", "baseline"}

type options struct {
	cfg      stress.Config
	names    []string
	json     bool
	quiet    bool
	progress bool
	// progressEvery and progressAfter pace the progress lines.
	progressEvery, progressAfter time.Duration
}

var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{progressEvery: time.Second, progressAfter: 2 * time.Second}
	fs := flag.NewFlagSet("presbench-peers", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	workload := stress.RegisterFlags(fs)
	duration := fs.Duration("duration", 5*time.Second, "how long each registry runs, unless -ops is set")
	names := fs.String("peers", strings.Join(registries, ","), "the registries to run, in order; the first is the one the ratios are against")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON (the envelope of presbench -json, mode \"peers\")")
	fs.BoolVar(&o.quiet, "quiet", false, "print no progress lines")
	fs.BoolVar(&o.progress, "progress", false, "print a progress line a second to stderr even when it is not a terminal")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: presbench-peers [flags]: engine, centrifuge and baseline on one workload, side by side")
			fs.PrintDefaults()
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments: %v", errUsage, fs.Args())
	}
	if o.quiet && o.progress {
		return nil, fmt.Errorf("%w: -quiet and -progress contradict each other", errUsage)
	}
	for _, n := range strings.Split(*names, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(registries, n) || slices.Contains(o.names, n) {
			return nil, fmt.Errorf("%w: -peers: %q is not one of %s, or is named twice", errUsage, n, strings.Join(registries, ", "))
		}
		o.names = append(o.names, n)
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "duration" })
	cfg, err := workload.Config(fs, "engine", true, *duration)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if cfg.Ops > 0 && !set {
		cfg.Duration = 0
	}
	o.cfg = cfg
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "presbench-peers: %s (see presbench-peers -h)\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	}
	if err := measure(o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "presbench-peers:", err)
		return 1
	}
	return 0
}

// build returns the registry name runs on.
func build(name string, cfg *stress.Config) (stress.Target, *stress.Memory, error) {
	if name == "centrifuge" {
		return stress.BuildWith(func() (stress.Target, error) { return peers.NewCentrifuge(cfg.Capacity), nil })
	}
	return stress.Build(cfg)
}

func measure(o *options, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	var meter *progress.Meter
	stopLines := func() {}
	if !o.quiet && (o.progress || progress.IsTerminal(stderr)) {
		meter = &progress.Meter{}
		stopLines = progress.Printer{W: stderr, Prefix: "presbench-peers", Every: o.progressEvery, After: o.progressAfter}.Start(meter)
	}
	defer stopLines()
	var results []*stress.Result
	for _, name := range o.names {
		cfg := o.cfg
		cfg.Target = name
		t, mem, err := build(name, &cfg)
		if err != nil {
			return err
		}
		res, err := stress.Run(ctx, cfg, t, meter)
		if err != nil {
			return err
		}
		mem.End(t)
		res.Memory = mem
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	stopLines()
	if o.json {
		return runinfo.WriteJSON(stdout, "peers", stress.NewJSONReport(results...))
	}
	fmt.Fprintf(stdout, "%s: the same workload, one after the other, in one process\n", strings.Join(o.names, ", "))
	fmt.Fprintln(stdout, runinfo.Line())
	return stress.WriteSideBySide(stdout, results...)
}
