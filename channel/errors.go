package channel

import (
	"bytes"
	"errors"

	"github.com/presencekit/presence/engine"
	"github.com/valyala/fastjson"
)

// Errors.
var (
	ErrNotJoined    = errors.New("channel: socket has not joined the topic")
	ErrReservedMeta = errors.New("channel: meta may not hold phx_ref or phx_ref_prev")
)

// ReplyError is an error made for the client: returned by Channel.Join or
// a Handler, alone or wrapped, its Reason is the reply's
// {"reason": ...}. Any other error reaches the client as a short fixed
// reason, and its text goes to the server's log only.
type ReplyError struct {
	Reason string
}

func (e *ReplyError) Error() string { return e.Reason }

// Reason returns a *ReplyError: the client is told reason.
func Reason(reason string) error { return &ReplyError{Reason: reason} }

// Reasons the server gives clients, as Phoenix does with {"reason": ...}:
// short, stable, and free of Go package names.
const (
	reasonJoinFailed     = "join failed"    // Join returned an error of no known kind
	reasonEventFailed    = "event failed"   // a Handler did
	reasonJoinCrashed    = "join crashed"   // Join panicked
	reasonInternal       = "internal error" // a Handler panicked, or a reply did not encode
	reasonMalformed      = "malformed frame"
	reasonUnmatched      = "unmatched topic"
	reasonTooManyTopics  = "too_many_topics"
	reasonUnmatchedEvent = "unmatched event"
	reasonUnknownPhoenix = "unknown event on phoenix"
	reasonRateLimited    = "rate_limited"

	reasonInvalidPresenceMode = "invalid_presence_mode" // a join's "presence" is neither "full" nor "count"
	reasonPresenceTooLarge    = "presence_too_large"    // a full-mode join above Channel.MaxPresenceState
	reasonInvalidLimit        = "invalid_limit"         // presence_list's limit is not 1 to 1000
	reasonInvalidCursor       = "invalid_cursor"        // presence_list's after is no cursor of the topic
)

// errCrashed stands for a recovered panic; the log holds its value and
// stack.
var errCrashed = errors.New("channel: callback panicked")

// reasons maps the engine's and the package's sentinel errors to what a
// client is told.
var reasons = [...]struct {
	err    error
	reason string
}{
	{engine.ErrFull, "full"},
	{engine.ErrSocketLimit, "socket_limit"},
	{engine.ErrInvalidTopic, "invalid_topic"},
	{engine.ErrTopicTooLong, "topic_too_long"},
	{engine.ErrInvalidKey, "invalid_key"},
	{engine.ErrKeyTooLong, "key_too_long"},
	{engine.ErrInvalidMeta, "invalid_meta"},
	{engine.ErrMetaTooLong, "meta_too_long"},
	{ErrReservedMeta, "reserved_meta"},
	{ErrNotJoined, "not_joined"},
}

// reasonFor returns the reason a client is told for err, and whether err
// was made for the client (then the server need not log it); an error of
// no known kind gives fallback.
func reasonFor(err error, fallback string) (reason string, forClient bool) {
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason, false
		}
	}
	return fallback, false
}

var metaParsers fastjson.ParserPool

// reservedKey reports whether meta, a JSON object, has a top-level key
// phx_ref or phx_ref_prev (escaped or not). Values may hold anything.
// Meta that does not parse is left for the engine to refuse.
func reservedKey(meta []byte) bool {
	if !bytes.Contains(meta, []byte("phx_ref")) && !bytes.Contains(meta, []byte(`\u`)) {
		return false // the common case, without parsing
	}
	p := metaParsers.Get()
	defer metaParsers.Put(p)
	v, err := p.ParseBytes(meta)
	if err != nil {
		return false
	}
	o, err := v.Object()
	if err != nil {
		return false
	}
	reserved := false
	o.Visit(func(key []byte, _ *fastjson.Value) {
		reserved = reserved || string(key) == "phx_ref" || string(key) == "phx_ref_prev"
	})
	return reserved
}
