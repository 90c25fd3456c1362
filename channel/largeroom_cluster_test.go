package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// clusterNode is one server of a test cluster: its engine, and the URL
// of its WebSocket endpoint.
type clusterNode struct {
	e   *engine.Engine
	srv *channel.Server
	url string
}

// startCountCluster starts an in-process NATS server and n nodes, each a
// channel.Server over a cluster.Node, with the default presence window.
func startCountCluster(t *testing.T, n int) []clusterNode {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []clusterNode
	for i := range n {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(engine.Config{Capacity: 1024, RefTag: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		node, err := cluster.Start(context.Background(), nc, e, cluster.Config{Node: fmt.Sprint("n", i), Prefix: "rooms", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := channel.NewServer(channel.Config{
			Presence: e, Cluster: node, Logger: quiet,
			Connect: func(_ *http.Request, p url.Values) (map[string]any, error) {
				return map[string]any{"name": p.Get("name")}, nil
			},
			Channels: []channel.Channel{{
				Topic: "room:*",
				Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
					name, _ := s.Get("name")
					if name == "observer" {
						return nil, nil
					}
					if err := s.Track(topic, name.(string), []byte(`{}`)); err != nil {
						return nil, err
					}
					return nil, s.PushPresenceState(topic)
				},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			hs.Close()
			node.Close()
			nc.Close()
		})
		nodes = append(nodes, clusterNode{e: e, srv: srv, url: "ws" + strings.TrimPrefix(hs.URL, "http")})
	}
	return nodes
}

// wsDial opens a Phoenix connection as name; frames it reads go to the
// returned channel.
func wsDial(t *testing.T, base, name string) (*websocket.Conn, <-chan phx.Frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"?vsn=2.0.0&name="+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	in := make(chan phx.Frame, 1024)
	go func() {
		defer close(in)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			f, err := phx.ParseFrame(data)
			if err != nil {
				return
			}
			in <- f
		}
	}()
	return conn, in
}

func wsSend(t *testing.T, conn *websocket.Conn, frame string) {
	t.Helper()
	if err := conn.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// awaitFrame reads in until ok holds, for up to 5 s.
func awaitFrame(t *testing.T, in <-chan phx.Frame, what string, ok func(phx.Frame) bool) phx.Frame {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, open := <-in:
			if !open {
				t.Fatalf("connection closed waiting for %s", what)
			}
			if ok(f) {
				return f
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type countPayload struct{ Count, Entries int }

// TestCountModeAcrossCluster: a count-mode socket on one of three nodes
// follows joins and leaves made on the two others. After each change its
// presence_count reaches the cluster's distinct keys and entries (a key
// on two nodes counts once); the test reports the delay from the change,
// sent, to that count, received, for changes a window apart.
func TestCountModeAcrossCluster(t *testing.T) {
	nodes := startCountCluster(t, 3)
	const topic = "room:big"
	obs, obsIn := wsDial(t, nodes[0].url, "observer")
	wsSend(t, obs, `["1","1","`+topic+`","phx_join",{"presence":"count"}]`)
	awaitFrame(t, obsIn, "join reply", func(f phx.Frame) bool { return f.Event == "phx_reply" })
	counts := make(chan countPayload, 1024)
	go func() {
		for f := range obsIn {
			if f.Event == "presence_count" {
				var c countPayload
				json.Unmarshal(f.Payload, &c)
				counts <- c
			}
		}
		close(counts)
	}()
	last := countPayload{-1, -1}
	var lastAt time.Time
	awaitCount := func(want countPayload) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for last != want {
			select {
			case c, open := <-counts:
				if !open {
					t.Fatal("observer closed")
				}
				last, lastAt = c, time.Now()
			case <-timeout:
				t.Fatalf("count %+v, want %+v", last, want)
			}
		}
	}
	awaitCount(countPayload{0, 0})

	// A change right after a round waits for the next one, a window
	// later; the test measures a change that finds the topic quiet for a
	// window, as most changes of a room do.
	quiet := func(since time.Time) { time.Sleep(time.Until(since.Add(channel.DefaultPresenceWindow))) }
	type member struct {
		conn *websocket.Conn
		in   <-chan phx.Frame
	}
	entries := map[string]int{} // key -> entries across the cluster
	var members []member
	var delays []time.Duration
	want := func() countPayload {
		n := 0
		for _, v := range entries {
			n += v
		}
		return countPayload{len(entries), n}
	}
	// 16 joins on nodes 1 and 2, every fourth with a key already on the
	// other node, then 8 leaves.
	for i := range 16 {
		name := fmt.Sprint("u", i)
		if i%4 == 3 {
			name = fmt.Sprint("u", i-1)
		}
		conn, in := wsDial(t, nodes[1+i%2].url, name)
		quiet(lastAt)
		start := time.Now()
		wsSend(t, conn, `["1","1","`+topic+`","phx_join",{}]`)
		entries[name]++
		awaitCount(want())
		delays = append(delays, time.Since(start))
		awaitFrame(t, in, "join reply", func(f phx.Frame) bool { return f.Event == "phx_reply" })
		members = append(members, member{conn, in})
	}
	for i := 0; i < 16; i += 2 {
		quiet(lastAt)
		start := time.Now()
		wsSend(t, members[i].conn, `["1","2","`+topic+`","phx_leave",{}]`)
		name := fmt.Sprint("u", i) // u2, u6, ...: one of the key's two entries
		if entries[name]--; entries[name] == 0 {
			delete(entries, name)
		}
		awaitCount(want())
		delays = append(delays, time.Since(start))
	}
	// The observer's node has applied the last leave; the others may
	// apply it a moment later.
	for i, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			k, e := n.e.CountKeys(topic)
			if (countPayload{k, e}) == last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d counts %d keys, %d entries; the observer was told %+v", i, k, e, last)
			}
			time.Sleep(time.Millisecond)
		}
	}
	slices.Sort(delays)
	p50, p99 := delays[len(delays)/2], delays[len(delays)*99/100]
	t.Logf("%d changes on other nodes: delay to the count p50 %v, p99 %v, max %v", len(delays),
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}
