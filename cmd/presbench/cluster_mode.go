package main

import (
	"context"
	"errors"
	"flag"
	"io"
)

// This file is -mode cluster: measuring presence across a cluster of
// servers. It is the hook where that mode is built; until then the mode
// reports that it is not available.

// clusterOptions are -mode cluster's flags.
type clusterOptions struct{}

// clusterFlags registers -mode cluster's flags on fs. Every flag it
// registers applies to -mode cluster only: presbench refuses it in the
// other modes.
func clusterFlags(fs *flag.FlagSet, o *clusterOptions) {}

// errClusterUnavailable is -mode cluster's answer until it is built.
var errClusterUnavailable = errors.New("-mode cluster is not available in this build")

// runCluster runs -mode cluster and writes its report to stdout, as JSON
// when asJSON is set.
func runCluster(ctx context.Context, o *clusterOptions, asJSON bool, stdout, stderr io.Writer) error {
	return errClusterUnavailable
}
