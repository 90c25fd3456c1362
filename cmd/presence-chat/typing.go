package main

import (
	"encoding/json"

	"github.com/presencekit/presence/channel"
)

// The page's typing indicator is carried in the presence meta, so that it
// goes where presence goes (other nodes, a late joiner's presence_state)
// and goes away with the connection. The page debounces it: one set_typing
// true when typing starts, one false a few seconds after the last key.

// statusAssign is the socket assign that remembers a topic's last status,
// so that set_typing can rebuild the whole meta.
func statusAssign(topic string) string { return "status:" + topic }

// rememberStatus wraps the set_status handler: a status it accepted is
// remembered for set_typing.
func rememberStatus(h channel.Handler) channel.Handler {
	return func(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
		reply, err := h(s, topic, payload)
		if err == nil {
			var msg struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(payload, &msg) == nil {
				s.Assign(statusAssign(topic), msg.Status)
			}
		}
		return reply, err
	}
}

// handleSetTyping sets or clears "typing": true in the connection's meta,
// keeping its status: {"typing": true|false}. Everyone sees one
// presence_diff.
func handleSetTyping(s *channel.Socket, topic string, payload json.RawMessage) (any, error) {
	var msg struct {
		Typing *bool `json:"typing"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil || msg.Typing == nil {
		return nil, channel.Reason("typing must be true or false")
	}
	status := "online"
	if v, ok := s.Get(statusAssign(topic)); ok {
		status, _ = v.(string)
	}
	meta := chatMeta(s, status)
	if *msg.Typing {
		var fields map[string]any
		if err := json.Unmarshal(meta, &fields); err != nil {
			return nil, err
		}
		fields["typing"] = true
		typing, err := json.Marshal(fields)
		if err != nil {
			return nil, err
		}
		meta = typing
	}
	if err := s.Track(topic, username(s), meta); err != nil {
		return nil, err
	}
	return nil, nil
}
