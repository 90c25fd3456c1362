package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// clusterOptions are the flags that make this server one node of a
// cluster. With none of them it runs alone, with no NATS.
type clusterOptions struct {
	node         string
	natsURL      string
	natsListen   string
	natsCluster  string
	natsRoutes   string
	heartbeat    time.Duration
	downAfter    time.Duration
	replicateAll bool
	linger       time.Duration
	capacity     int
	localCap     int
}

func clusterFlags(fs *flag.FlagSet) *clusterOptions {
	o := &clusterOptions{}
	fs.StringVar(&o.node, "node", "", "this node's name in the cluster (letters, digits, - and _)")
	fs.StringVar(&o.natsURL, "nats", "", "join the cluster through the NATS server at this URL")
	fs.StringVar(&o.natsListen, "nats-listen", "", "embed a NATS server listening on HOST:PORT and join through it")
	fs.StringVar(&o.natsCluster, "nats-cluster", "", "the embedded NATS server's route listener, HOST:PORT")
	fs.StringVar(&o.natsRoutes, "nats-routes", "", "routes of the embedded NATS server to the others' -nats-cluster, as nats://HOST:PORT,...")
	fs.DurationVar(&o.heartbeat, "node-heartbeat", cluster.DefaultHeartbeat, "how often a node says it is alive")
	fs.DurationVar(&o.downAfter, "node-down-after", cluster.DefaultDownAfter, "how long a silent node stays up before its users are removed")
	fs.BoolVar(&o.replicateAll, "node-replicate-all", false, "mirror every node's entries, not only those of the rooms this node's connections are in")
	fs.DurationVar(&o.linger, "node-linger", cluster.DefaultLinger, "how long a room's entries of other nodes stay after this node's last connection left it")
	fs.IntVar(&o.capacity, "capacity", 4096, "presence entries the engine holds: this node's and those of the rooms it mirrors")
	fs.IntVar(&o.localCap, "local-capacity", 0, "of those, entries this node's own connections may hold; 0 means half of -capacity in a cluster, all of it alone")
	return o
}

func (o *clusterOptions) replicate() cluster.Replication {
	if o.replicateAll {
		return cluster.All
	}
	return cluster.Interest
}

func (o *clusterOptions) enabled() bool { return o.natsURL != "" || o.natsListen != "" }

// nodeName is the name shown on the page for this server's connections.
func (o *clusterOptions) nodeName() string {
	if o.node == "" {
		return "local"
	}
	return o.node
}

// engineConfig sizes the engine; each node gets its own RefTag so that
// phx_refs never collide across nodes. In a cluster, local connections
// may take only part of the capacity, so that they cannot starve the
// other nodes' entries out of it.
func (o *clusterOptions) engineConfig() engine.Config {
	local := o.localCap
	if local == 0 && o.enabled() {
		local = o.capacity / 2
	}
	cfg := engine.Config{Capacity: o.capacity, LocalCapacity: local, RefTag: cluster.RefTag(o.nodeName()),
		MaxKeyLen: 4 * maxNameChars, MaxMetaLen: 1024} // names and statuses of any characters fit
	if o.enabled() {
		cfg.History = 4096 // the cluster publishes local changes from it
	}
	return cfg
}

// start joins the cluster, embedding a NATS server first if asked. It
// returns a nil node without the cluster flags, and a function that leaves
// the cluster and stops what it started.
func (o *clusterOptions) start(ctx context.Context, presence *engine.Engine) (*cluster.Node, func(), error) {
	if !o.enabled() {
		if o.natsCluster != "" || o.natsRoutes != "" || o.node != "" {
			return nil, nil, errors.New("-node, -nats-cluster and -nats-routes need -nats or -nats-listen")
		}
		return nil, func() {}, nil
	}
	if o.node == "" {
		return nil, nil, errors.New("a cluster node needs -node NAME")
	}
	if o.natsURL != "" && o.natsListen != "" {
		return nil, nil, errors.New("-nats and -nats-listen exclude each other")
	}
	var ns *server.Server
	url := o.natsURL
	if o.natsListen != "" {
		var err error
		if ns, err = o.embed(); err != nil {
			return nil, nil, err
		}
		url = ns.ClientURL()
	}
	nc, err := nats.Connect(url, nats.Name("presence-chat "+o.node), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		stopServer(ns)
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	node, err := cluster.Start(ctx, nc, presence, cluster.Config{
		Node: o.node, Heartbeat: o.heartbeat, DownAfter: o.downAfter, Linger: o.linger,
		Replicate: o.replicate(),
		OnNodeChange: func(n cluster.NodeInfo) {
			slog.Info("cluster: node changed", "node", n.Name, "state", n.State.String(), "entries", n.Entries)
		},
	})
	if err != nil {
		nc.Close()
		stopServer(ns)
		return nil, nil, fmt.Errorf("joining the cluster through %s: %w", url, err)
	}
	// /debug/vars shows the other nodes and the cluster's counters.
	expvar.Publish("cluster", expvar.Func(func() any {
		return map[string]any{"node": o.node, "nodes": node.Nodes(), "stats": node.Stats()}
	}))
	stop := func() {
		node.Close()
		nc.Close()
		stopServer(ns)
	}
	return node, stop, nil
}

func (o *clusterOptions) embed() (*server.Server, error) {
	host, port, err := splitHostPort(o.natsListen)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen: %w", err)
	}
	opts := &server.Options{ServerName: o.node, Host: host, Port: port, NoSigs: true, NoLog: true}
	if o.natsCluster != "" {
		ch, cp, err := splitHostPort(o.natsCluster)
		if err != nil {
			return nil, fmt.Errorf("-nats-cluster: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: "presence-chat", Host: ch, Port: cp,
			PingInterval: time.Second, MaxPingsOut: 3}
	}
	if o.natsRoutes != "" {
		if o.natsCluster == "" {
			return nil, errors.New("-nats-routes needs -nats-cluster")
		}
		opts.Routes = server.RoutesFromStr(o.natsRoutes)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("the embedded NATS server did not start")
	}
	return ns, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, errors.New("bad port in " + strings.TrimSpace(hp))
	}
	return host, port, nil
}

func stopServer(ns *server.Server) {
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}
