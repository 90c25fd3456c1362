package main

import (
	"github.com/presencekit/presence/bench/runinfo"
	"github.com/presencekit/presence/cmd/presbench/internal/clustermode"
)

// benchCluster is -mode cluster, and with -cluster-scale its simulation.
func benchCluster(o *options, env *modeEnv) error {
	if o.cluster.Scale {
		r, err := clustermode.RunScale(env.ctx, o.cluster, env.meter, env.stderr)
		env.stop()
		if err != nil {
			return err
		}
		if o.json {
			return runinfo.WriteJSON(env.stdout, "cluster", r)
		}
		return clustermode.WriteScaleTable(env.stdout, r)
	}
	r, err := clustermode.Run(env.ctx, o.cluster, env.meter, env.stderr)
	env.stop()
	if err != nil {
		return err
	}
	if o.json {
		return runinfo.WriteJSON(env.stdout, "cluster", r)
	}
	return clustermode.WriteTable(env.stdout, r)
}
