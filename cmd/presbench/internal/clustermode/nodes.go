package clustermode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// benchNode is a node of the measured cluster: its NATS server, connection, engine and
// cluster.Node, all in this process.
type benchNode struct {
	ns *server.Server
	nc *nats.Conn
	e  *engine.Engine
	n  *cluster.Node
}

func startBenchNATS(n int) ([]*server.Server, error) {
	var ss []*server.Server
	for i := range n {
		opts := &server.Options{ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "presbench", Host: "127.0.0.1", Port: -1}}
		if i > 0 {
			opts.Routes = server.RoutesFromStr("nats://" + ss[0].ClusterAddr().String())
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return ss, err
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			return ss, errors.New("nats-server did not start")
		}
		ss = append(ss, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range ss {
		for s.NumRemotes() != n-1 {
			if time.Now().After(deadline) {
				return ss, errors.New("the NATS cluster did not form")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return ss, nil
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func startBenchNode(s *server.Server, name string, capacity int, cfg cluster.Config) (*benchNode, error) {
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		return nil, err
	}
	e, err := engine.New(engine.Config{Capacity: capacity, MaxPerSocket: capacity, RefTag: cluster.RefTag(name), History: 4096})
	if err != nil {
		return nil, err
	}
	cfg.Node, cfg.Logger = name, quietLog
	cfg.Replicate = cluster.All // the mode measures full replication: no socket joins
	n, err := cluster.Start(context.Background(), nc, e, cfg)
	if err != nil {
		return nil, err
	}
	return &benchNode{ns: s, nc: nc, e: e, n: n}, nil
}

func (b *benchNode) close() { b.n.Close(); b.nc.Close() }

// remoteOf returns how many entries of the named node nd holds.
func remoteOf(nd *benchNode, name string) int {
	for _, p := range nd.n.Nodes() {
		if p.Name == name {
			if p.State == cluster.StateDown {
				return 0
			}
			return p.Entries
		}
	}
	return 0
}
