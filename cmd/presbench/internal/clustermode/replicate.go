package clustermode

import (
	"fmt"
	"time"

	"github.com/presencekit/presence/cluster"
)

// Replication modes of -cluster-replicate.
const (
	ReplicateInterest = "interest"
	ReplicateAll      = "all"
)

// replicationConfig returns the cluster.Config of a -cluster-replicate
// mode and -cluster-linger.
func replicationConfig(mode string, linger time.Duration) (cluster.Config, error) {
	switch mode {
	case ReplicateAll:
		return cluster.Config{Replicate: cluster.All, Linger: linger}, nil
	case ReplicateInterest:
		return cluster.Config{Replicate: cluster.Interest, Linger: linger}, nil
	}
	return cluster.Config{}, fmt.Errorf("%w: -cluster-replicate %q: want %s or %s", ErrInvalidOptions, mode, ReplicateInterest, ReplicateAll)
}
