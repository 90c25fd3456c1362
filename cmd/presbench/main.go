// Command presbench measures presence at three levels, chosen with -mode:
//
//   - engine (the default): stresses a presence registry in process with a
//     configurable mix of joins, leaves, updates and reads, and reports
//     throughput, latency percentiles, failures, seqlock retries per
//     operation and the registry's memory (engine_mode.go, bench/stress).
//   - server: opens real WebSocket clients (Phoenix Channels v2) against a
//     running server on loopback and runs one workload of bench/load: a
//     join storm, churn in a steady room, broadcast fan-out, or idle
//     connections; each client keeps its room's roster from presence_state
//     and presence_diff (server_mode.go). With -presence count, the join
//     storm's clients join in count mode and follow presence_count
//     (internal/countstorm).
//   - cluster: measures a cluster of in-process nodes over NATS
//     (internal/clustermode).
//
// Flags that do not apply to the chosen mode are refused. A run longer
// than 2 s says once a second on stderr what it is doing, when stderr is a
// terminal or -progress asks; -quiet silences it. -json writes the report
// in the envelope of bench/runinfo.
//
//	presbench                      # about 10 s on the engine, every operation
//	presbench -compare             # the engine, then the baseline, and the ratios
//	presbench -preset hot-room -verify -cpuprofile cpu.out
//	presbench -mode server -url ws://127.0.0.1:4000/socket/websocket -workload join -clients 2000
//	presbench -mode server -workload join -presence count -clients 10000
//
// See presbench -h for every flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/stress"
	"github.com/presencekit/presence/cmd/presbench/internal/clustermode"
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
	load     load.Config
	url      string
	event    string
	presence string

	// -mode cluster
	cluster clustermode.Options

	// every mode
	json      bool
	quiet     bool
	progress  bool
	cpuProf   string
	memProf   string
	mutexProf string
	blockProf string
	traceFile string
	pprofAddr string

	// progressEvery and progressAfter pace the progress lines: a second,
	// after the first 2 s.
	progressEvery, progressAfter time.Duration
}

// errUsage marks a command line presbench cannot run; the exit is 2.
var errUsage = errors.New("usage")

// parseFlags parses args. -h writes the usage to stderr and returns
// flag.ErrHelp; any other problem is returned, wrapping errUsage, and
// nothing is written.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{progressEvery: time.Second, progressAfter: 2 * time.Second}
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
	fs.SetOutput(io.Discard) // errors are reported in one line by run; -h by fs.Usage
	fs.StringVar(&o.mode, "mode", "engine", "what to measure: engine (in process), server (WebSocket clients against -url) or cluster")
	var duration time.Duration
	fs.DurationVar(&duration, "duration", 0, "how long to run (engine: 10s unless -ops is set; server: churn 20s, fanout 10s, idle 5s)")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON (one object: schema, mode, cpu, cores, gomaxprocs, go, time, report)")
	fs.BoolVar(&o.quiet, "quiet", false, "print no progress lines")
	fs.BoolVar(&o.progress, "progress", false, "print a progress line a second to stderr even when it is not a terminal")
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
	var workload *stress.Flags
	target := "engine"
	register("engine", func() {
		fs.StringVar(&target, "target", target, "registry to run: engine or baseline (the naive one: sync.RWMutex, maps, encoding/json)")
		fs.BoolVar(&o.compare, "compare", false, "run the engine, then the baseline, on the same workload, and print the ratios (for centrifuge too: cd bench/peers && go run ./cmd/presbench-peers)")
		workload = stress.RegisterFlags(fs)
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
		fs.StringVar(&o.presence, "presence", presenceFull, "presence mode of the joins: full (presence_state and presence_diff, a roster each) or count (presence_count only; -workload join, complete when every client's last count is the whole room)")
	})
	register("cluster", func() { clustermode.Flags(fs, &o.cluster) })
	usage := func() {
		fmt.Fprintln(stderr, "usage: presbench [-mode engine|server|cluster] [flags]")
		fmt.Fprintln(stderr, "\nevery mode:")
		common.PrintDefaults()
		for _, m := range modes {
			fmt.Fprintf(stderr, "\n-mode %s:\n", m)
			groups[m].PrintDefaults()
		}
	}
	fs.Usage = func() {} // the flag package calls it on every error too
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		hint := ""
		if a := fs.Arg(0); a == "true" || a == "false" {
			hint = " (a boolean flag takes its value after =, as in -cluster-kill=false)"
		}
		return nil, fmt.Errorf("%w: unexpected arguments: %v%s", errUsage, fs.Args(), hint)
	}
	if !slices.Contains(modes, o.mode) {
		return nil, fmt.Errorf("%w: mode %q: want %s", errUsage, o.mode, strings.Join(modes, ", "))
	}
	if o.quiet && o.progress {
		return nil, fmt.Errorf("%w: -quiet and -progress contradict each other", errUsage)
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
		return nil, fmt.Errorf("%w: flags that do not apply to -mode %s: %s", errUsage, o.mode, strings.Join(foreign, ", "))
	}
	var err error
	switch o.mode {
	case "server":
		err = o.serverConfig(set["duration"], duration)
	case "cluster":
		if set["duration"] {
			err = errors.New("-mode cluster: use -cluster-duration")
		} else {
			err = o.cluster.Validate()
		}
	default:
		if o.compare {
			target = "engine"
		}
		o.cfg, err = workload.Config(fs, target, set["duration"], duration)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return o, nil
}

// commonFlags apply to every mode.
var commonFlags = []string{"mode", "duration", "json", "quiet", "progress", "cpuprofile", "memprofile", "mutexprofile", "blockprofile", "trace", "pprof"}

// serverConfig completes -mode server's workload from the flags.
func (o *options) serverConfig(durationSet bool, duration time.Duration) error {
	l := &o.load
	l.URL = o.url
	switch {
	case o.presence != presenceFull && o.presence != presenceCount:
		return fmt.Errorf("presence %q: want full or count", o.presence)
	case o.presence == presenceCount && l.Workload != load.Join:
		return fmt.Errorf("-presence count runs the join workload only, not %s", l.Workload)
	}
	if durationSet {
		if duration == 0 {
			return errors.New("duration must be positive")
		}
		l.Duration = duration
	}
	l.SetDefaults()
	return l.Validate()
}

// run is the command: exit 0 on success, 1 when a measurement failed, 2
// for a command line it cannot run (one line on stderr, with a hint).
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "presbench: %s (see presbench -h)\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	}
	return execute(o, stdout, stderr)
}

// execute runs the mode o names, with its profiles and progress lines.
func execute(o *options, stdout, stderr io.Writer) int {
	measure := map[string]func(*options, *modeEnv) error{
		"engine":  benchEngine,
		"server":  benchServer,
		"cluster": benchCluster,
	}[o.mode]
	env := newModeEnv(o, stdout, stderr)
	defer env.stop()
	if err := profile(o, stderr, func() error { return measure(o, env) }); err != nil {
		env.stop()
		fmt.Fprintln(stderr, "presbench:", err)
		return 1
	}
	return 0
}
