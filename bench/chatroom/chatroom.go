// Package chatroom is presence-chat's room, as a channel.Server for load
// tests: a client connects with its name in the parameter "name", joins a
// topic "chat:*" and is tracked under its name, gets the room's
// presence_state, and may send "new_msg" with {"body": "..."}, which the
// whole room, the sender included, receives as {"user": name, "body":
// "..."}. The demo's user_joined and user_left broadcasts are sent only when
// asked for, so that presence frames can be counted alone.
//
// The server is a channel.Server, with its guarantees.
package chatroom

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// Options shape the room.
type Options struct {
	// Announce broadcasts user_joined and user_left, as the demo does.
	Announce bool
	// Server is the rest of the server's configuration; Presence,
	// Connect and Channels are set by New.
	Server channel.Config
}

// ErrName is the refusal of a connection without a usable name.
var ErrName = errors.New("chatroom: a name of 1 to 32 bytes is required")

// New returns the chat server over presence.
func New(presence *engine.Engine, o Options) (*channel.Server, error) {
	cfg := o.Server
	cfg.Presence = presence
	cfg.Connect = func(_ *http.Request, params url.Values) (map[string]any, error) {
		name := params.Get("name")
		if name == "" || len(name) > 32 || !utf8.ValidString(name) {
			return nil, ErrName
		}
		return map[string]any{"name": name}, nil
	}
	ch := channel.Channel{
		Topic: "chat:*",
		Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
			name := name(s)
			meta, _ := json.Marshal(map[string]string{"name": name})
			if err := s.Track(topic, name, meta); err != nil {
				return nil, err
			}
			if err := s.PushPresenceState(topic); err != nil {
				return nil, err
			}
			if o.Announce {
				s.BroadcastFrom(topic, "user_joined", map[string]string{"user": name})
			}
			return nil, nil
		},
		Handlers: map[string]channel.Handler{
			"new_msg": func(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
				var msg struct {
					Body string `json:"body"`
				}
				if err := json.Unmarshal(payload, &msg); err != nil || msg.Body == "" || len(msg.Body) > 2000 {
					return nil, errors.New("body must be 1 to 2000 bytes")
				}
				return channel.NoReply, s.Broadcast(topic, "new_msg", map[string]string{"user": name(s), "body": msg.Body})
			},
		},
	}
	if o.Announce {
		ch.Leave = func(s *channel.Socket, topic string) {
			s.BroadcastFrom(topic, "user_left", map[string]string{"user": name(s)})
		}
	}
	cfg.Channels = []channel.Channel{ch}
	return channel.NewServer(cfg)
}

func name(s *channel.Socket) string {
	v, _ := s.Get("name")
	n, _ := v.(string)
	return n
}
