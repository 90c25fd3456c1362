package cluster_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// A nil *Node, such as a failed Start returns, fails NewServer with an
// error instead of a panic.
func TestNewServerWithNilNodeIsAnError(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var node *cluster.Node // what Start returned with its error
	srv, err := channel.NewServer(channel.Config{
		Presence: e,
		Cluster:  node,
		Channels: []channel.Channel{{Topic: "chat:*", Join: func(*channel.Socket, string, json.RawMessage) (any, error) { return nil, nil }}},
	})
	if srv != nil || !errors.Is(err, cluster.ErrNilNode) {
		t.Fatalf("NewServer with a nil node: %v, %v; want ErrNilNode", srv, err)
	}
}
