// Command server-load runs the workloads of bench/load against a running
// Centrifugo through centrifuge-go, the Go client Centrifugo users pick,
// and prints the side-by-side table of results from both servers.
//
//	server-load -url ws://127.0.0.1:8765/connection/websocket -workload join -clients 2000 -server-pid PID
//	server-load -table ours.json theirs.json    # one table, a column per server
//
// The flags mean what they mean in presbench -mode server. The Centrifugo it
// drives needs presence, join_leave, force_push_join_leave and
// allow_publish_for_subscriber on its channels and insecure client mode;
// bench/server.sh writes such a config, builds Centrifugo and runs both
// servers. It is its own module so that the presence module never depends
// on Centrifugo's client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/presencekit/presence/bench/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := load.Config{Workload: load.Join, Clients: 100, Rate: 50, MsgSize: 100, Timeout: time.Minute, Dials: 200, Room: "room"}
	url := fs.String("url", "ws://127.0.0.1:8765/connection/websocket", "Centrifugo's WebSocket endpoint (loopback only)")
	table := fs.Bool("table", false, "print the results in the JSON files named as arguments as one table, and run nothing")
	asJSON := fs.Bool("json", false, "write the result as JSON")
	fs.StringVar(&cfg.Workload, "workload", cfg.Workload, "join, churn, fanout or idle")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "clients in the room; fanout: subscribers; idle: connections")
	fs.IntVar(&cfg.Rooms, "rooms", 0, "idle: rooms the connections spread over (0: one per 100 clients)")
	fs.IntVar(&cfg.Churners, "churners", 0, "churn: members that leave and rejoin (0: a tenth of the clients)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "churn: leave-and-rejoin cycles per second; fanout: messages per second")
	fs.DurationVar(&cfg.Duration, "duration", 0, "churn and fanout: how long to measure; idle: how long to stay idle (0: 20s, 10s, 5s)")
	fs.IntVar(&cfg.MsgSize, "msg-size", cfg.MsgSize, "fanout: bytes per message body")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole workload")
	fs.IntVar(&cfg.Dials, "dials", cfg.Dials, "connections opened at once")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to read its CPU time and memory from /proc")
	fs.StringVar(&cfg.Room, "room", cfg.Room, "room (channel) name prefix")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *table {
		if err := printTable(fs.Args(), stdout); err != nil {
			fmt.Fprintln(stderr, "server-load:", err)
			return 1
		}
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "server-load: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg.URL = *url
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "server-load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := load.Run(ctx, &driver{url: *url}, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "server-load:", err)
		return 1
	}
	if *asJSON {
		err = load.WriteJSON(stdout, res)
	} else {
		err = load.WriteTable(stdout, res)
	}
	if err != nil || res.Error != "" {
		fmt.Fprintln(stderr, "server-load:", res.Workload, res.Error, err)
		return 1
	}
	return 0
}

// printTable reads result files written with -json (by this command or by
// presbench -mode server) and prints them as one table.
func printTable(files []string, w io.Writer) error {
	if len(files) == 0 {
		return errors.New("-table: name the JSON result files")
	}
	var all []*load.Result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		rs, err := load.ReadJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, rs...)
	}
	return load.WriteTable(w, all...)
}
