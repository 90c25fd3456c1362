// Package phx is the Phoenix Channels v2 JSON wire codec: it reads and
// writes the frames [join_ref, ref, topic, event, payload] that the official
// phoenix JavaScript client exchanges with a server, and the payloads of
// phx_reply, presence_state and presence_diff.
//
// It knows the wire format and nothing of sockets: the channel package
// serves it over WebSocket, and Go clients (tests, load generators) speak it
// with the same functions.
//
// # Concurrency
//
// The functions are safe for concurrent use; they keep no state.
package phx

import (
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/presencekit/presence/jsonwriter"
)

// ErrMalformed is returned for a frame that is not a Phoenix v2 message.
var ErrMalformed = errors.New("phx: malformed frame")

// Frame is one Phoenix Channels message, serializer v2:
// [join_ref, ref, topic, event, payload].
type Frame struct {
	JoinRef Ref
	Ref     Ref
	Topic   string
	Event   string
	Payload json.RawMessage // any JSON value, usually an object
}

// Ref is a message or join reference: a string, or null.
type Ref struct {
	S     string
	Valid bool
}

// MakeRef returns a non-null Ref.
func MakeRef(s string) Ref { return Ref{S: s, Valid: true} }

// ParseFrame decodes one text frame. On error, what could be read of the
// frame is returned with it: a frame whose ref and topic are known can be
// answered with an error reply; anything else is garbage.
func ParseFrame(b []byte) (Frame, error) {
	var f Frame
	var parts []json.RawMessage
	if !utf8.Valid(b) || json.Unmarshal(b, &parts) != nil || len(parts) != 5 {
		return f, ErrMalformed
	}
	var err error
	if f.JoinRef, err = parseRef(parts[0]); err != nil {
		return Frame{}, err
	}
	if f.Ref, err = parseRef(parts[1]); err != nil {
		return Frame{}, err
	}
	if json.Unmarshal(parts[2], &f.Topic) != nil || !isString(parts[2]) || f.Topic == "" {
		return Frame{Ref: f.Ref, JoinRef: f.JoinRef}, ErrMalformed
	}
	if json.Unmarshal(parts[3], &f.Event) != nil || !isString(parts[3]) || f.Event == "" {
		return Frame{Ref: f.Ref, JoinRef: f.JoinRef, Topic: f.Topic}, ErrMalformed
	}
	f.Payload = parts[4]
	return f, nil
}

func isString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

// parseRef accepts a string or null; the official client sends strings.
func parseRef(raw json.RawMessage) (Ref, error) {
	if string(raw) == "null" {
		return Ref{}, nil
	}
	var s string
	if !isString(raw) || json.Unmarshal(raw, &s) != nil {
		return Ref{}, ErrMalformed
	}
	return MakeRef(s), nil
}

// AppendFrame appends the encoding of a message with a payload that is
// already JSON.
func AppendFrame(dst []byte, joinRef, ref Ref, topic, event string, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendRef(dst, joinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, ref)
	dst = append(dst, ',')
	dst = jsonwriter.AppendString(dst, topic)
	dst = append(dst, ',')
	dst = jsonwriter.AppendString(dst, event)
	dst = append(dst, ',')
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	dst = append(dst, payload...)
	return append(dst, ']')
}

func appendRef(dst []byte, r Ref) []byte {
	if !r.Valid {
		return append(dst, "null"...)
	}
	return jsonwriter.AppendString(dst, r.S)
}

// AppendReply appends a phx_reply payload, {"status":"ok","response":...}
// or {"status":"error","response":...}; an empty response is {}.
func AppendReply(dst []byte, ok bool, response []byte) []byte {
	if ok {
		dst = append(dst, `{"status":"ok","response":`...)
	} else {
		dst = append(dst, `{"status":"error","response":`...)
	}
	if len(response) == 0 {
		response = []byte("{}")
	}
	dst = append(dst, response...)
	return append(dst, '}')
}

// AppendReason appends {"reason":reason}, the response of an error reply.
func AppendReason(dst []byte, reason string) []byte {
	dst = append(dst, `{"reason":`...)
	dst = jsonwriter.AppendString(dst, reason)
	return append(dst, '}')
}
