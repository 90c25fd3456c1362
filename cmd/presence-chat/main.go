// Command presence-chat is the chat-with-presence example: a web page where
// people pick a name, join a room, see who is online as it changes, and
// chat. It serves the page, the presence.js client, the Phoenix Channels
// endpoint at /socket/websocket, and the server's counters at /debug/vars
// and, for Prometheus, at /metrics.
//
//	go run ./cmd/presence-chat -addr 127.0.0.1:4000
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/cluster"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/metrics/clustermetrics"
)

//go:embed index.html
var indexHTML []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "address to listen on")
	window := flag.Duration("presence-window", 50*time.Millisecond, "presence diff coalescing window")
	heartbeat := flag.Duration("heartbeat-timeout", 60*time.Second, "close sockets silent for this long")
	rateLimit := flag.Int("rate-limit", 0, "frames a second one socket may send (burst: twice as many, at least 200); 0 means the server's default, 100; negative turns the limit off")
	grace := flag.Duration("reconnect-grace", 15*time.Second, "keep the presence of a connection lost abruptly for this long, for its client to come back (0: off)")
	maxState := flag.Int("max-presence-state", 0, "refuse full-mode joins into rooms of more members than this with presence_too_large; the page then shows counts and pages (0: the server's default, 2000; negative: no cap)")
	cl := clusterFlags(flag.CommandLine)
	flag.Parse()
	limits := func(c *channel.Config) {
		c.MaxEventsPerSecond = *rateLimit
		c.ReconnectGrace = *grace
	}
	if err := run(*addr, *window, *heartbeat, cl, limits, maxPresenceState(*maxState)); err != nil {
		fmt.Fprintln(os.Stderr, "presence-chat:", err)
		os.Exit(1)
	}
}

func run(addr string, window, heartbeat time.Duration, cl *clusterOptions, mods ...func(*channel.Config)) error {
	presence, err := engine.New(cl.engineConfig())
	if err != nil {
		return err
	}
	node, leave, err := cl.start(context.Background(), presence)
	if err != nil {
		return err
	}
	defer leave()
	srv, err := newNodeServer(presence, window, heartbeat, node, cl.nodeName(), mods...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The e2e tests read this line to find the port.
	fmt.Printf("presence-chat listening on http://%s\n", ln.Addr())
	var more []prometheus.Collector
	if node != nil {
		more = append(more, clustermetrics.Node(node))
	}
	httpSrv := &http.Server{Handler: routes(srv, more...), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return httpSrv.Shutdown(shutdown)
}

// routes serves the chat; more are collectors that /metrics serves beside
// the engine's and the channel layer's (a cluster node's, in cluster mode).
func routes(srv *channel.Server, more ...prometheus.Collector) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	mux.Handle("/presence.js", channel.ClientScript())
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	expvar.Publish("channel", expvar.Func(func() any { return srv.Stats() }))
	expvar.Publish("presence", expvar.Func(func() any { return srv.Presence().Stats() }))
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("/metrics", metricsHandler(srv, more...))
	return mux
}

// newServer wires the seed's chat example: join tracks and pushes the
// presence list, join and leave are announced, get_presence answers with
// the list, and new_msg is broadcast.
func newServer(presence *engine.Engine, window, heartbeat time.Duration) (*channel.Server, error) {
	return newNodeServer(presence, window, heartbeat, nil, "local")
}

// newNodeServer is newServer as one node of a cluster (none when node is
// nil): metas name the node each connection is on. mods change the
// Config before it is used.
func newNodeServer(presence *engine.Engine, window, heartbeat time.Duration, node *cluster.Node, nodeName string, mods ...func(*channel.Config)) (*channel.Server, error) {
	var cl channel.Cluster
	if node != nil {
		cl = node
	}
	cfg := channel.Config{
		Presence:         presence,
		PresenceWindow:   window,
		HeartbeatTimeout: heartbeat,
		Cluster:          cl,
		Connect: func(r *http.Request, params url.Values) (map[string]any, error) {
			name := params.Get("name")
			if !validText(name, maxNameChars) {
				return nil, channel.Reason(reasonName)
			}
			return map[string]any{"username": name, "node": nodeName}, nil
		},
		Channels: []channel.Channel{{
			Topic: "chat:*",
			Join:  chatJoin,
			Leave: chatLeave,
			Handlers: map[string]channel.Handler{
				"get_presence": handleGetPresence,
				"new_msg":      handleNewMsg,
				"set_status":   rememberStatus(handleSetStatus), // typing.go
				"set_typing":   handleSetTyping,                 // typing.go
			},
		}},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	return channel.NewServer(cfg)
}

func username(s *channel.Socket) string {
	if v, ok := s.Get("username"); ok {
		return v.(string)
	}
	return "anonymous"
}

// maxPresenceState sets the chat channel's cap on full-mode joins, in
// keys (see channel.Channel.MaxPresenceState).
func maxPresenceState(keys int) func(*channel.Config) {
	return func(c *channel.Config) {
		for i := range c.Channels {
			c.Channels[i].MaxPresenceState = keys
		}
	}
}

// quietAssign says whether a socket's join of topic and its leave go
// unannounced: true when it joined in count mode, the mode of rooms too
// large for every member to hear of every other.
func quietAssign(topic string) string { return "quiet:" + topic }

func chatJoin(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
	name := username(s)
	meta, resumed := resumedMeta(s, topic, name)
	if !resumed {
		s.Assign("joined_at", time.Now().UTC().Format(time.RFC3339))
		meta = chatMeta(s, "online")
	}
	if err := s.Track(topic, name, meta); err != nil {
		return nil, err
	}
	if err := s.PushPresenceState(topic); err != nil { // nothing in count mode
		return nil, err
	}
	quiet := s.CountMode(topic)
	s.Assign(quietAssign(topic), quiet)
	if !quiet && !resumed { // a resumed one: the room never saw it leave
		s.BroadcastFrom(topic, "user_joined", map[string]string{"user": name})
	}
	return nil, nil
}

// resumedMeta returns the meta of the entry in topic that a connection
// took over from its lost predecessor (see channel.Config.ReconnectGrace),
// and keeps its joined_at: tracked unchanged, it sends the room nothing.
func resumedMeta(s *channel.Socket, topic, name string) ([]byte, bool) {
	key, meta, ok := s.HeldEntry(topic)
	if !ok || key != name {
		return nil, false
	}
	var m struct {
		JoinedAt string `json:"joined_at"`
	}
	if json.Unmarshal(meta, &m) != nil || m.JoinedAt == "" {
		return nil, false
	}
	s.Assign("joined_at", m.JoinedAt)
	return meta, true
}

func chatLeave(s *channel.Socket, topic string) {
	if quiet, _ := s.Get(quietAssign(topic)); quiet == true {
		return
	}
	s.BroadcastFrom(topic, "user_left", map[string]string{"user": username(s)})
}

func handleGetPresence(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
	return json.RawMessage(s.Server().Presence().AppendList(nil, topic)), nil
}

func handleNewMsg(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
	var msg struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil || !validText(msg.Body, maxBodyChars) {
		return nil, channel.Reason(reasonBody)
	}
	s.Broadcast(topic, "new_msg", map[string]string{"user": username(s), "body": msg.Body})
	return channel.NoReply, nil
}

// chatMeta is a connection's presence meta: its user, when it joined, the
// node it is on, and its status.
func chatMeta(s *channel.Socket, status string) []byte {
	joined, _ := s.Get("joined_at")
	node, _ := s.Get("node")
	meta, _ := json.Marshal(map[string]any{"name": username(s), "joined_at": joined, "node": node, "status": status})
	return meta
}

// handleSetStatus updates the connection's status: a Track update, which
// everyone sees as one presence_diff.
func handleSetStatus(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
	var msg struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil || !validText(msg.Status, maxStatusChars) {
		return nil, channel.Reason(reasonStatus)
	}
	if err := s.Track(topic, username(s), chatMeta(s, msg.Status)); err != nil {
		return nil, err
	}
	return nil, nil
}

// The demo's text limits count characters (Unicode code points, as Go's
// runes and JavaScript's [...s].length do), the same on the page and here.
// A refused event's reply carries the reason, which the page shows.
const (
	maxNameChars   = 32
	maxStatusChars = 40
	maxBodyChars   = 2000

	reasonName   = "name must be 1 to 32 characters"
	reasonStatus = "status must be 1 to 40 characters"
	reasonBody   = "message must be 1 to 2000 characters"
)

// validText reports whether s is valid UTF-8 of 1 to most characters.
func validText(s string, most int) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= most
}
