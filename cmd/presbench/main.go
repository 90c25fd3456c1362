// Command presbench measures presence at three levels, chosen with -mode:
//
//   - engine (the default): stresses a presence registry in process with a
//     configurable mix of joins, leaves, updates and reads, and reports
//     throughput, latency percentiles, failures and seqlock retries per
//     operation.
//   - server: opens real WebSocket clients (Phoenix Channels v2) against a
//     running server on loopback and runs one workload of bench/load: a
//     join storm, churn in a steady room, broadcast fan-out, or idle
//     connections; each client keeps its room's roster from presence_state
//     and presence_diff.
//   - cluster: measures a cluster of servers (cluster_mode.go).
//
// Flags that do not apply to the chosen mode are refused.
//
//	presbench                      # about 10 s on the engine, every operation
//	presbench -compare             # the engine, then the baseline, and the ratios
//	presbench -preset hot-room -verify -cpuprofile cpu.out
//	presbench -mode server -url ws://127.0.0.1:4000/socket/websocket -workload join -clients 2000
//
// See presbench -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/cmd/presbench/internal/phxload"
	"github.com/presencekit/presence/cmd/presbench/internal/stress"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Modes, in usage order.
var modes = []string{"engine", "server", "cluster"}

// options are the parsed command line.
type options struct {
	mode string

	// -mode engine
	cfg     stress.Config
	compare bool

	// -mode server
	load  load.Config
	url   string
	event string

	// -mode cluster
	cluster clusterOptions

	// every mode
	json      bool
	cpuProf   string
	memProf   string
	mutexProf string
	blockProf string
	traceFile string
	pprofAddr string
}

// presets are named workloads; explicit flags override them.
var presets = map[string]func(*stress.Config){
	"default": func(*stress.Config) {},
	"read-heavy": func(c *stress.Config) {
		c.Mix = stress.Mix{stress.OpTrack: 2, stress.OpUpdate: 6, stress.OpUntrack: 2, stress.OpList: 90}
	},
	"churn": func(c *stress.Config) {
		c.Mix = stress.Mix{stress.OpTrack: 45, stress.OpUntrack: 45, stress.OpList: 5, stress.OpChanges: 5}
	},
	"hot-room": func(c *stress.Config) {
		// Every socket joins the hottest room sooner or later: it holds up
		// to 512 members while the rest churn through the other rooms.
		c.Capacity, c.Sockets, c.Topics, c.Dist, c.ZipfS, c.Prefill = 8192, 512, 16, "zipf", 2, 0.25
		c.Mix = stress.Mix{stress.OpTrack: 10, stress.OpUpdate: 30, stress.OpUntrack: 5, stress.OpList: 40, stress.OpChanges: 10, stress.OpCount: 5}
	},
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{cfg: stress.Config{
		Target:   "engine",
		Capacity: 4096,
		Topics:   64,
		Dist:     "uniform",
		ZipfS:    1.2,
		Sockets:  2048,
		KeySize:  16,
		MetaSize: 64,
		Mix:      stress.DefaultMix,
		Workers:  runtime.GOMAXPROCS(0),
		Duration: 10 * time.Second, // unless -duration or -ops
		Seed:     1,
		Prefill:  0.5,
		BufSize:  256 << 10,
	}}
	o.load = load.Config{
		Workload: load.Join,
		Clients:  100,
		Rate:     50,
		MsgSize:  100,
		Timeout:  time.Minute,
		Dials:    200,
		Room:     "chat:room",
	}
	o.url = "ws://127.0.0.1:4000/socket/websocket"
	fs := flag.NewFlagSet("presbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "engine", "what to measure: engine (in process), server (WebSocket clients against -url) or cluster")
	var duration time.Duration
	fs.DurationVar(&duration, "duration", 0, "how long to run (engine: 10s unless -ops is set; server: churn 20s, fanout 10s, idle 5s)")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of presbench to this file")
	fs.StringVar(&o.memProf, "memprofile", "", "write a heap profile of presbench to this file")
	fs.StringVar(&o.mutexProf, "mutexprofile", "", "write a mutex contention profile of presbench to this file")
	fs.StringVar(&o.blockProf, "blockprofile", "", "write a blocking profile of presbench to this file")
	fs.StringVar(&o.traceFile, "trace", "", "write an execution trace of presbench to this file")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this address while running (a bare :port binds loopback)")

	// owner maps each mode-specific flag to its mode.
	owner := map[string]string{}
	// groups hold each mode's flags again, with their defaults, for the
	// usage message.
	groups := map[string]*flag.FlagSet{}
	register := func(mode string, add func()) {
		add()
		g := flag.NewFlagSet(mode, flag.ContinueOnError)
		g.SetOutput(stderr)
		fs.VisitAll(func(f *flag.Flag) {
			if _, ok := owner[f.Name]; !ok && !slices.Contains(commonFlags, f.Name) {
				owner[f.Name] = mode
				g.Var(f.Value, f.Name, f.Usage)
			}
		})
		groups[mode] = g
	}
	common := flag.NewFlagSet("common", flag.ContinueOnError)
	common.SetOutput(stderr)
	fs.VisitAll(func(f *flag.Flag) { common.Var(f.Value, f.Name, f.Usage) })
	c := &o.cfg
	var preset, mix *string
	register("engine", func() {
		preset = fs.String("preset", "default", "named workload: default, read-heavy, churn, hot-room (flags override it)")
		fs.StringVar(&c.Target, "target", c.Target, "registry to run: engine or baseline (sync.RWMutex, maps, encoding/json)")
		fs.BoolVar(&o.compare, "compare", false, "run the engine, then the baseline, on the same workload, and print the ratios")
		fs.IntVar(&c.Capacity, "capacity", c.Capacity, "registry capacity (entries)")
		fs.IntVar(&c.Shards, "shards", 0, "engine shards (a power of two; 0 for the engine's default)")
		fs.IntVar(&c.Topics, "topics", c.Topics, "number of topics")
		fs.StringVar(&c.Dist, "dist", c.Dist, "how operations spread over topics: uniform or zipf")
		fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipf exponent (> 1; larger makes the first topics hotter)")
		fs.IntVar(&c.Sockets, "sockets", c.Sockets, "number of sockets, split between workers")
		fs.IntVar(&c.KeySize, "key-size", c.KeySize, "bytes per key")
		fs.IntVar(&c.MetaSize, "meta-size", c.MetaSize, "bytes per meta")
		mix = fs.String("mix", "", "operation mix in percent, e.g. track=20,update=20,untrack=15,untrackall=5,list=20,diff=5,changes=10,count=5")
		fs.IntVar(&c.Workers, "workers", c.Workers, "concurrent workers")
		fs.Int64Var(&c.Ops, "ops", 0, "total operations to run instead of a duration")
		fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed: the same flags and seed replay the same operations")
		fs.Float64Var(&c.Prefill, "prefill", c.Prefill, "fraction of capacity to track, unmeasured, before the run")
		fs.BoolVar(&c.Verify, "verify", false, "check invariants while running; exit 1 on any violation")
		fs.IntVar(&c.BufSize, "buf", c.BufSize, "bytes of each worker's List/Diff buffer")
	})
	l := &o.load
	register("server", func() {
		fs.StringVar(&o.url, "url", o.url, "the server's Phoenix WebSocket endpoint (loopback only)")
		fs.StringVar(&l.Workload, "workload", l.Workload, "join (join storm), churn (steady room, members leave and rejoin), fanout (one publisher) or idle")
		fs.IntVar(&l.Clients, "clients", l.Clients, fmt.Sprintf("clients in the room; fanout: subscribers; idle: connections (at most %d)", load.MaxClients))
		fs.IntVar(&l.Rooms, "rooms", 0, "idle: rooms the connections spread over (0: one per 100 clients)")
		fs.IntVar(&l.Churners, "churners", 0, "churn: members that leave and rejoin (0: a tenth of the clients)")
		fs.Float64Var(&l.Rate, "rate", l.Rate, "churn: leave-and-rejoin cycles per second; fanout: messages per second")
		fs.IntVar(&l.MsgSize, "msg-size", l.MsgSize, "fanout: bytes per message body")
		fs.DurationVar(&l.Timeout, "timeout", l.Timeout, "bound on the whole workload")
		fs.IntVar(&l.Dials, "dials", l.Dials, "connections opened at once")
		fs.IntVar(&l.ServerPID, "server-pid", 0, "the server's process id, to read its CPU time and memory from /proc (0: client side only)")
		fs.StringVar(&l.Room, "room", l.Room, "room name prefix (presence-chat serves chat:*)")
		fs.StringVar(&o.event, "event", "new_msg", "fanout: the event messages are published and received with")
	})
	register("cluster", func() { clusterFlags(fs, &o.cluster) })
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presbench [-mode engine|server|cluster] [flags]")
		fmt.Fprintln(stderr, "\nevery mode:")
		common.PrintDefaults()
		for _, m := range modes {
			fmt.Fprintf(stderr, "\n-mode %s:\n", m)
			groups[m].PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if !slices.Contains(modes, o.mode) {
		fs.Usage()
		return nil, fmt.Errorf("mode %q: want %s", o.mode, strings.Join(modes, ", "))
	}
	var foreign []string
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if m, ok := owner[f.Name]; ok && m != o.mode {
			foreign = append(foreign, fmt.Sprintf("-%s (-mode %s)", f.Name, m))
		}
	})
	if len(foreign) > 0 {
		fs.Usage()
		return nil, fmt.Errorf("flags that do not apply to -mode %s: %s", o.mode, strings.Join(foreign, ", "))
	}
	switch o.mode {
	case "server":
		if err := o.serverConfig(set["duration"], duration); err != nil {
			fs.Usage()
			return nil, err
		}
		return o, nil
	case "cluster":
		return o, nil
	}
	if set["duration"] {
		c.Duration = duration
	}
	apply, ok := presets[*preset]
	if !ok {
		fs.Usage()
		return nil, fmt.Errorf("unknown preset %q", *preset)
	}
	// Apply the preset, then put back what the flags set explicitly.
	explicit := *c
	apply(c)
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "capacity":
			c.Capacity = explicit.Capacity
		case "topics":
			c.Topics = explicit.Topics
		case "dist":
			c.Dist = explicit.Dist
		case "zipf-s":
			c.ZipfS = explicit.ZipfS
		case "sockets":
			c.Sockets = explicit.Sockets
		case "prefill":
			c.Prefill = explicit.Prefill
		}
	})
	if *mix != "" {
		m, err := stress.ParseMix(*mix)
		if err != nil {
			fs.Usage()
			return nil, err
		}
		c.Mix = m
	}
	if o.compare {
		c.Target = "engine"
	}
	if err := c.Validate(); err != nil {
		fs.Usage()
		return nil, err
	}
	return o, nil
}

// commonFlags apply to every mode.
var commonFlags = []string{"mode", "duration", "json", "cpuprofile", "memprofile", "mutexprofile", "blockprofile", "trace", "pprof"}

// serverConfig completes -mode server's workload from the flags.
func (o *options) serverConfig(durationSet bool, duration time.Duration) error {
	l := &o.load
	l.URL = o.url
	if durationSet {
		if duration == 0 {
			return errors.New("duration must be positive")
		}
		l.Duration = duration
	}
	l.SetDefaults()
	return l.Validate()
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "presbench:", err)
		return 2
	}
	measure := bench
	switch o.mode {
	case "server":
		measure = benchServer
	case "cluster":
		measure = func(o *options, stdout, stderr io.Writer) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			return runCluster(ctx, &o.cluster, o.json, stdout, stderr)
		}
	}
	if err := profile(o, stderr, func() error { return measure(o, stdout, stderr) }); err != nil {
		fmt.Fprintln(stderr, "presbench:", err)
		return 1
	}
	return 0
}

var errViolation = errors.New("verify found violations")

// bench runs the workload (twice with -compare) and writes the report.
func bench(o *options, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	targets := []string{o.cfg.Target}
	if o.compare {
		targets = []string{"engine", "baseline"}
	}
	var results []*stress.Result
	for _, name := range targets {
		cfg := o.cfg
		cfg.Target = name
		t, err := stress.NewTarget(&cfg)
		if err != nil {
			return err
		}
		res, err := stress.Run(ctx, cfg, t, progressLine(stderr, name))
		if err != nil {
			return err
		}
		results = append(results, res)
		if !o.json {
			if err := stress.WriteTable(stdout, res); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if o.json {
		if err := stress.WriteJSON(stdout, results...); err != nil {
			return err
		}
	} else if len(results) == 2 {
		if err := stress.WriteRatios(stdout, results[0], results[1]); err != nil {
			return err
		}
	}
	for _, r := range results {
		if len(r.Violations) > 0 {
			for _, v := range r.Violations {
				fmt.Fprintf(stderr, "presbench: %s: %s\n", r.Target, v)
			}
			return errViolation
		}
	}
	return nil
}

// benchServer runs one workload against a running server and writes the
// report; a workload that did not complete is an error, after the report.
func benchServer(o *options, stdout, _ io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := load.Run(ctx, &phxload.Driver{URL: o.url, Event: o.event}, o.load)
	if err != nil {
		return err
	}
	if o.json {
		err = load.WriteJSON(stdout, res)
	} else {
		err = load.WriteTable(stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Error != "" {
		return fmt.Errorf("%s: %s", res.Workload, res.Error)
	}
	return nil
}

// progressLine returns a Progress that rewrites one line on stderr, or nil
// when stderr is not a terminal.
func progressLine(stderr io.Writer, target string) stress.Progress {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(elapsed time.Duration, ops int64) {
		fmt.Fprintf(stderr, "\r%s: %s, %d ops, %.0f ops/s   ", target, elapsed.Round(time.Second), ops, float64(ops)/elapsed.Seconds())
		if elapsed < 0 {
			fmt.Fprintln(stderr)
		}
	}
}

// profile runs fn with the profiles and pprof server that o asks for.
func profile(o *options, stderr io.Writer, fn func() error) (err error) {
	if o.pprofAddr != "" {
		addr := o.pprofAddr
		if host, port, e := net.SplitHostPort(addr); e == nil && host == "" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		ln, e := net.Listen("tcp", addr)
		if e != nil {
			return fmt.Errorf("pprof: %w", e)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stderr, "presbench: pprof on http://%s/debug/pprof/\n", ln.Addr())
	}
	if o.mutexProf != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() { err = errors.Join(err, writeProfile("mutex", o.mutexProf)) }()
	}
	if o.blockProf != "" {
		runtime.SetBlockProfileRate(1)
		defer func() { err = errors.Join(err, writeProfile("block", o.blockProf)) }()
	}
	if o.memProf != "" {
		defer func() { err = errors.Join(err, writeProfile("allocs", o.memProf)) }()
	}
	if o.cpuProf != "" {
		stop, e := startFile(o.cpuProf, pprof.StartCPUProfile, pprof.StopCPUProfile)
		if e != nil {
			return e
		}
		defer stop()
	}
	if o.traceFile != "" {
		stop, e := startFile(o.traceFile, trace.Start, trace.Stop)
		if e != nil {
			return e
		}
		defer stop()
	}
	return fn()
}

// startFile creates path and starts a recorder writing to it; the returned
// function stops the recorder and closes the file.
func startFile(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { stop(); f.Close() }, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}
