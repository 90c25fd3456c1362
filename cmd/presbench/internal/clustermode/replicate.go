package clustermode

import (
	"fmt"

	"github.com/presencekit/presence/cluster"
)

// Replication modes of -cluster-replicate.
const (
	ReplicateInterest = "interest"
	ReplicateAll      = "all"
)

// replicationConfig returns the cluster.Config of a -cluster-replicate
// mode.
func replicationConfig(mode string) (cluster.Config, error) {
	switch mode {
	case ReplicateAll:
		return cluster.Config{}, nil
	case ReplicateInterest:
		return cluster.Config{}, fmt.Errorf("%w: -cluster-replicate interest: this build's cluster replicates every entry to every node", ErrInvalidOptions)
	}
	return cluster.Config{}, fmt.Errorf("%w: -cluster-replicate %q: want %s or %s", ErrInvalidOptions, mode, ReplicateInterest, ReplicateAll)
}
