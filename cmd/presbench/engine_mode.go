package main

import (
	"errors"
	"fmt"

	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/bench/stress"
)

var errViolation = errors.New("verify found violations")

// benchEngine is -mode engine: it runs the workload (on the engine, then
// the baseline with -compare) and writes the report, with each registry's
// memory.
func benchEngine(o *options, env *modeEnv) error {
	targets := []string{o.cfg.Target}
	if o.compare {
		targets = []string{"engine", "baseline"}
	}
	var results []*stress.Result
	for _, name := range targets {
		cfg := o.cfg
		cfg.Target = name
		t, mem, err := stress.Build(&cfg)
		if err != nil {
			return err
		}
		res, err := stress.Run(env.ctx, cfg, t, env.meter)
		if err != nil {
			return err
		}
		mem.End(t)
		res.Memory = mem
		results = append(results, res)
		if !o.json {
			if err := stress.WriteTable(env.stdout, res); err != nil {
				return err
			}
			fmt.Fprintln(env.stdout)
		}
		if env.ctx.Err() != nil {
			break
		}
	}
	env.stop()
	if o.json {
		if err := runinfo.WriteJSON(env.stdout, "engine", stress.NewJSONReport(results...)); err != nil {
			return err
		}
	} else if len(results) == 2 {
		if err := stress.WriteRatios(env.stdout, results[0], results[1]); err != nil {
			return err
		}
	}
	for _, r := range results {
		if len(r.Violations) > 0 {
			for _, v := range r.Violations {
				fmt.Fprintf(env.stderr, "presbench: %s: %s\n", r.Target, v)
			}
			return errViolation
		}
	}
	return nil
}
