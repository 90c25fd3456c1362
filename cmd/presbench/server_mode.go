package main

import (
	"fmt"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/cmd/presbench/internal/phxload"
)

// benchServer is -mode server: it checks that a server answers at the URL,
// then runs one workload against it and writes the report; a workload that
// did not complete is an error, after the report.
func benchServer(o *options, env *modeEnv) error {
	d := &phxload.Driver{URL: o.url, Event: o.event}
	if err := d.Probe(env.ctx); err != nil {
		return err
	}
	cfg := o.load
	cfg.Progress = env.meter
	res, err := load.Run(env.ctx, d, cfg)
	env.stop()
	if err != nil {
		return err
	}
	if o.json {
		err = runinfo.WriteJSON(env.stdout, "server", []*load.Result{res})
	} else {
		err = load.WriteTable(env.stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Error != "" {
		return fmt.Errorf("%s: %s", res.Workload, res.Error)
	}
	return nil
}
