package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
)

// Two nodes on one NATS server: an entry tracked on one is listed on the
// other with the same ref. With a channel.Server, pass the Node as
// channel.Config.Cluster instead of calling Changed.
func Example() {
	ns, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	go ns.Start()
	ns.ReadyForConnections(5 * time.Second)
	defer ns.Shutdown()

	start := func(name string) (*engine.Engine, *cluster.Node, *nats.Conn) {
		nc, _ := nats.Connect(ns.ClientURL())
		presence, _ := engine.New(engine.Config{RefTag: cluster.RefTag(name)})
		node, err := cluster.Start(context.Background(), nc, presence, cluster.Config{Node: name})
		if err != nil {
			panic(err)
		}
		return presence, node, nc
	}
	a, nodeA, ncA := start("a")
	defer ncA.Close()
	defer nodeA.Close()
	b, nodeB, ncB := start("b")
	defer ncB.Close()
	defer nodeB.Close()

	// A socket of b joins the lobby: b mirrors the lobby's entries from
	// now on (channel.Server calls Subscribe on a join by itself).
	nodeB.Subscribe("chat:lobby")
	a.Track(1, "chat:lobby", "alice", []byte(`{"status":"online"}`))
	nodeA.Changed("chat:lobby") // channel.Server does this by itself

	for b.Count("chat:lobby") == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(string(b.AppendList(nil, "chat:lobby")))
	// Output: [{"key":"alice","meta":{"status":"online"}}]
}
