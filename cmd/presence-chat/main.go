// Command presence-chat is the chat-with-presence example: a web page where
// people pick a name, join a room, see who is online as it changes, and
// chat. It serves the page, the presence.js client, the Phoenix Channels
// endpoint at /socket/websocket, and the server's counters at /debug/vars.
//
//	go run ./cmd/presence-chat -addr 127.0.0.1:4000
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
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

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

//go:embed index.html
var indexHTML []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "address to listen on")
	window := flag.Duration("presence-window", 50*time.Millisecond, "presence diff coalescing window")
	heartbeat := flag.Duration("heartbeat-timeout", 60*time.Second, "close sockets silent for this long")
	flag.Parse()
	if err := run(*addr, *window, *heartbeat); err != nil {
		fmt.Fprintln(os.Stderr, "presence-chat:", err)
		os.Exit(1)
	}
}

func run(addr string, window, heartbeat time.Duration) error {
	presence, err := engine.New(engine.Config{Capacity: 4096})
	if err != nil {
		return err
	}
	srv, err := newServer(presence, window, heartbeat)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The e2e tests read this line to find the port.
	fmt.Printf("presence-chat listening on http://%s\n", ln.Addr())
	httpSrv := &http.Server{Handler: routes(srv), ReadHeaderTimeout: 10 * time.Second}
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

func routes(srv *channel.Server) http.Handler {
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
	mux.Handle("/metrics", metricsHandler(srv))
	return mux
}

// newServer wires the seed's chat example: join tracks and pushes the
// presence list, join and leave are announced, get_presence answers with
// the list, and new_msg is broadcast.
func newServer(presence *engine.Engine, window, heartbeat time.Duration) (*channel.Server, error) {
	return channel.NewServer(channel.Config{
		Presence:         presence,
		PresenceWindow:   window,
		HeartbeatTimeout: heartbeat,
		Connect: func(r *http.Request, params url.Values) (map[string]any, error) {
			name := params.Get("name")
			if name == "" || len(name) > 32 || !utf8.ValidString(name) {
				return nil, errors.New("a name of 1 to 32 bytes is required")
			}
			return map[string]any{"username": name}, nil
		},
		Channels: []channel.Channel{{
			Topic: "chat:*",
			Join:  chatJoin,
			Leave: chatLeave,
			Handlers: map[string]channel.Handler{
				"get_presence": handleGetPresence,
				"new_msg":      handleNewMsg,
			},
		}},
	})
}

func username(s *channel.Socket) string {
	if v, ok := s.Get("username"); ok {
		return v.(string)
	}
	return "anonymous"
}

func chatJoin(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
	name := username(s)
	meta, _ := json.Marshal(map[string]string{"name": name, "joined_at": time.Now().UTC().Format(time.RFC3339)})
	if err := s.Track(topic, name, meta); err != nil {
		return nil, err
	}
	if err := s.PushPresenceState(topic); err != nil {
		return nil, err
	}
	s.BroadcastFrom(topic, "user_joined", map[string]string{"user": name})
	return nil, nil
}

func chatLeave(s *channel.Socket, topic string) {
	s.BroadcastFrom(topic, "user_left", map[string]string{"user": username(s)})
}

func handleGetPresence(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
	return json.RawMessage(s.Server().Presence().AppendList(nil, topic)), nil
}

func handleNewMsg(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
	var msg struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil || msg.Body == "" || len(msg.Body) > 2000 {
		return nil, errors.New("body must be 1 to 2000 bytes")
	}
	s.Broadcast(topic, "new_msg", map[string]string{"user": username(s), "body": msg.Body})
	return channel.NoReply, nil
}
