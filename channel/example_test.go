package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// newChatServer is a server with one channel, "room:*": a join tracks the
// socket under its user name and pushes the room's presence.
func newChatServer() *channel.Server {
	presence, err := engine.New(engine.Config{Capacity: 1024})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := channel.NewServer(channel.Config{
		Presence: presence,
		// The user name comes from the URL: /socket/websocket?user=alice.
		Connect: func(r *http.Request, params url.Values) (map[string]any, error) {
			if params.Get("user") == "" {
				return nil, fmt.Errorf("no user")
			}
			return map[string]any{"user": params.Get("user")}, nil
		},
		Channels: []channel.Channel{{
			Topic: "room:*",
			Join: func(s *channel.Socket, topic string, params json.RawMessage) (any, error) {
				user, _ := s.Get("user")
				if topic == "room:full" {
					return nil, channel.Reason("room is full") // the client reads this reason
				}
				if err := s.Track(topic, user.(string), []byte(`{"status":"online"}`)); err != nil {
					return nil, err
				}
				return map[string]string{"hello": user.(string)}, s.PushPresenceState(topic)
			},
			Handlers: map[string]channel.Handler{
				// The payload is valid until the handler returns; Broadcast
				// encodes it at once.
				"shout": func(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
					return channel.NoReply, s.Broadcast(topic, "shout", payload)
				},
			},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv
}

// dial opens a Phoenix v2 connection as user.
func dial(base, user string) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"?vsn=2.0.0&user="+user, nil)
	if err != nil {
		log.Fatal(err)
	}
	return conn
}

func send(conn *websocket.Conn, frame string) {
	if err := conn.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

// next reads frames until one has the event.
func next(conn *websocket.Conn, event string) phx.Frame {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		f, err := phx.ParseFrame(data)
		if err != nil {
			log.Fatal(err)
		}
		if f.Event == event {
			return f
		}
	}
}

// Serve Phoenix Channels with presence: a client joins a room, gets the
// join's reply and then the room's presence_state.
func Example() {
	srv := newChatServer()
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	mux.Handle("/js/presence.js", channel.ClientScript()) // the browser client
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	base := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket"

	alice := dial(base, "alice")
	defer alice.CloseNow()
	send(alice, `["1","1","room:lobby","phx_join",{}]`)
	fmt.Println(string(next(alice, "phx_reply").Payload))

	bob := dial(base, "bob")
	defer bob.CloseNow()
	send(bob, `["1","1","room:lobby","phx_join",{}]`)
	var state map[string]struct {
		Metas []map[string]string `json:"metas"`
	}
	json.Unmarshal(next(bob, "presence_state").Payload, &state)
	var users []string
	for user, p := range state {
		users = append(users, user+" is "+p.Metas[0]["status"])
	}
	sort.Strings(users)
	fmt.Println(users)

	// alice learns of bob in a presence_diff, coalesced over the presence
	// window (50 ms by default).
	var diff struct{ Joins, Leaves map[string]any }
	json.Unmarshal(next(alice, "presence_diff").Payload, &diff)
	for user := range diff.Joins {
		fmt.Println("joined:", user)
	}
	// Output:
	// {"status":"ok","response":{"hello":"alice"}}
	// [alice is online bob is online]
	// joined: bob
}

// Broadcast sends an event to every socket in a topic; the frame is
// encoded once and shared by every socket's queue.
func ExampleServer_Broadcast() {
	srv := newChatServer()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	base := "ws" + strings.TrimPrefix(hs.URL, "http")

	alice := dial(base, "alice")
	defer alice.CloseNow()
	send(alice, `["1","1","room:lobby","phx_join",{}]`)
	next(alice, "phx_reply")

	if err := srv.Broadcast("room:lobby", "news", map[string]string{"text": "lunch is served"}); err != nil {
		log.Fatal(err)
	}
	f := next(alice, "news")
	fmt.Println(f.Topic, string(f.Payload))

	// A client's event can broadcast too: see the "shout" handler.
	send(alice, `["1","2","room:lobby","shout",{"text":"thanks"}]`)
	fmt.Println(string(next(alice, "shout").Payload))
	// Output:
	// room:lobby {"text":"lunch is served"}
	// {"text":"thanks"}
}

// A Join or Handler that returns a *ReplyError, made with Reason, tells
// the client its text; other errors reach the client as a fixed reason.
func ExampleReason() {
	srv := newChatServer()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	c := dial("ws"+strings.TrimPrefix(hs.URL, "http"), "carol")
	defer c.CloseNow()
	send(c, `["1","1","room:full","phx_join",{}]`)
	fmt.Println(string(next(c, "phx_reply").Payload))
	// Output:
	// {"status":"error","response":{"reason":"room is full"}}
}
