package main

import (
	"fmt"
	"io"
	"syscall"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/cmd/presbench/internal/countstorm"
	"github.com/presencekit/presence/cmd/presbench/internal/phxload"
)

// Presence modes of -presence.
const (
	presenceFull  = "full"
	presenceCount = "count"
)

// serverResult is one workload's result with what -mode server adds: the
// presence mode the clients joined in, the bytes each client received on
// average, and the open-files limit the run had (RLIMIT_NOFILE, raised to
// its hard limit at start).
type serverResult struct {
	*load.Result
	Presence       string  `json:"presence"`
	BytesPerClient float64 `json:"bytes_per_client"`
	NoFile         uint64  `json:"nofile"`
	NoFileMax      uint64  `json:"nofile_max"`
}

// benchServer is -mode server: it checks that a server answers at the URL,
// then runs one workload against it and writes the report; a workload that
// did not complete is an error, after the report. -presence count runs the
// join storm in count mode (internal/countstorm).
func benchServer(o *options, env *modeEnv) error {
	noFile, noFileMax := raiseNoFile()
	d := &phxload.Driver{URL: o.url, Event: o.event}
	if err := d.Probe(env.ctx); err != nil {
		return err
	}
	cfg := o.load
	cfg.Progress = env.meter
	var res *load.Result
	var err error
	if o.presence == presenceCount {
		res, err = countstorm.Run(env.ctx, d, countstorm.Config{
			URL: cfg.URL, Clients: cfg.Clients, Dials: cfg.Dials, Timeout: cfg.Timeout,
			Room: cfg.Room, ServerPID: cfg.ServerPID, Progress: cfg.Progress,
		})
	} else {
		res, err = load.Run(env.ctx, d, cfg)
	}
	env.stop()
	if err != nil {
		return err
	}
	sr := &serverResult{Result: res, Presence: o.presence, NoFile: noFile, NoFileMax: noFileMax}
	if res.Clients > 0 {
		sr.BytesPerClient = float64(res.Bytes) / float64(res.Clients)
	}
	if o.json {
		err = runinfo.WriteJSON(env.stdout, "server", []*serverResult{sr})
	} else {
		err = writeServerTable(env.stdout, sr)
	}
	if err != nil {
		return err
	}
	if res.Error != "" {
		return fmt.Errorf("%s: %s", res.Workload, res.Error)
	}
	return nil
}

// writeServerTable writes the workload's table and the lines -mode
// server adds.
func writeServerTable(w io.Writer, sr *serverResult) error {
	if err := load.WriteTable(w, sr.Result); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "presence mode\t%s\nbytes received per client\t%.0f\nopen files limit (soft / hard)\t%d / %d\n",
		sr.Presence, sr.BytesPerClient, sr.NoFile, sr.NoFileMax)
	return err
}

// raiseNoFile raises this process's open-files limit to its hard limit,
// as far as the system allows (Go raises it too at start on Linux), and
// returns the soft and hard limits it then has: each client is one file.
func raiseNoFile() (soft, hard uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0, 0
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = want.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			lim = want
		}
	}
	return lim.Cur, lim.Max
}
