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
// The functions keep no state and are safe for concurrent use. A Parser
// reuses its memory from frame to frame: each goroutine that reads frames
// has its own, and what it returns is valid until its next Parse.
package phx

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
	"unsafe"

	"github.com/presencekit/presence/jsonwriter"
	"github.com/valyala/fastjson"
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

// ParseFrame decodes one text frame into a Frame that owns its memory. It
// allocates; a read loop uses a Parser instead. On error, what could be
// read of the frame is returned with it: a frame whose ref and topic are
// known can be answered with an error reply; anything else is garbage.
func ParseFrame(b []byte) (Frame, error) {
	var p Parser
	f, err := p.Parse(b)
	// The strings point into p, which nobody else holds; the payload points
	// into b.
	f.Payload = bytes.Clone(f.Payload)
	return f, err
}

// Parser decodes text frames with a reused github.com/valyala/fastjson
// parser: once warm, it does not allocate.
//
// A Parser may not be used from concurrent goroutines: give each read loop
// its own. The zero value is ready to use.
type Parser struct {
	p    fastjson.Parser
	raw  []byte // scratch
	head []byte // a frame's head, with a 0 for its payload
}

// Parse decodes one text frame, as ParseFrame does, without copying: the
// Frame's strings and payload are views of b and of the Parser's memory.
// They stay valid until the next call of Parse and while b is unchanged;
// copy whatever must live longer (strings.Clone, bytes.Clone).
//
// A frame is accepted when it is valid UTF-8 and valid JSON (RFC 8259, as
// encoding/json reads it) nested at most fastjson.MaxDepth (300) deep: an
// array of five elements whose refs are strings or null and whose topic
// and event are non-empty strings.
func (p *Parser) Parse(b []byte) (Frame, error) {
	var f Frame
	// fastjson's parser is lenient (NaN, raw control characters, bad
	// escapes); its validator is strict, and both are allocation-free on
	// valid input. The validator has no depth limit, and its errors grow
	// with the depth at every level: deep input is refused first.
	sh := shapeOf(b)
	if sh.tooDeep || !utf8.Valid(b) || fastjson.ValidateBytes(b) != nil || !sh.array || sh.commas != 4 {
		return f, ErrMalformed
	}
	// Only the head, join_ref to event, goes through the parser: the
	// payload, validated above, is passed on as it is, however large.
	p.head = append(append(p.head[:0], b[:sh.fourth]...), ",0]"...)
	v, err := p.p.ParseBytes(p.head)
	if err != nil {
		return f, ErrMalformed
	}
	parts, err := v.Array()
	if err != nil || len(parts) != 5 {
		return f, ErrMalformed
	}
	if f.JoinRef, err = p.parseRef(parts[0]); err != nil {
		return Frame{}, err
	}
	if f.Ref, err = p.parseRef(parts[1]); err != nil {
		return Frame{}, err
	}
	var ok bool
	if f.Topic, ok = p.stringOf(parts[2]); !ok || f.Topic == "" {
		return Frame{Ref: f.Ref, JoinRef: f.JoinRef}, ErrMalformed
	}
	if f.Event, ok = p.stringOf(parts[3]); !ok || f.Event == "" {
		return Frame{Ref: f.Ref, JoinRef: f.JoinRef, Topic: f.Topic}, ErrMalformed
	}
	end := bytes.LastIndexByte(b, ']')
	f.Payload = bytes.Trim(b[sh.fourth+1:end], " \t\r\n")
	return f, nil
}

// shape is what one scan of a frame tells, strings aside: whether it is an
// array, how many commas its top level has, where the fourth one is, and
// whether it nests deeper than fastjson.MaxDepth.
type shape struct {
	array   bool
	tooDeep bool
	commas  int
	fourth  int
}

func shapeOf(b []byte) shape {
	var sh shape
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			if depth == 0 {
				sh.array = b[i] == '['
			}
			if depth++; depth > fastjson.MaxDepth {
				sh.tooDeep = true
				return sh
			}
		case ']', '}':
			depth--
		case ',':
			if depth == 1 {
				if sh.commas++; sh.commas == 4 {
					sh.fourth = i
				}
			}
		}
	}
	return sh
}

// stringOf returns a string value. Without escapes, as refs, topics and
// events usually are, it is a view of the parser's memory; with escapes it
// is decoded by encoding/json, so that every string reads as it always has.
func (p *Parser) stringOf(v *fastjson.Value) (string, bool) {
	p.raw = v.MarshalTo(p.raw[:0])
	if len(p.raw) == 0 || p.raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(p.raw, '\\') >= 0 {
		var s string
		err := json.Unmarshal(p.raw, &s)
		return s, err == nil
	}
	s := v.GetStringBytes()
	return unsafe.String(unsafe.SliceData(s), len(s)), true
}

// parseRef accepts a string or null; the official client sends strings.
func (p *Parser) parseRef(v *fastjson.Value) (Ref, error) {
	s, ok := p.stringOf(v)
	if !ok && string(p.raw) == "null" {
		return Ref{}, nil
	}
	if !ok {
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
