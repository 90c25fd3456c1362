package channel

import (
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/phx"
)

// StatusRateLimited is the close code of a socket closed for sending past
// its rate limit (Config.MaxEventsPerSecond): 4429, a code of the range
// RFC 6455 leaves to applications, after HTTP's 429 Too Many Requests.
// The close reason is "rate_limited".
//
// Every inbound frame takes a token from the socket's bucket, which holds
// MaxEventsBurst tokens and refills at MaxEventsPerSecond. A frame that
// finds the bucket empty is refused with an error reply, reason
// "rate_limited", and is not dispatched; a heartbeat is answered all the
// same, so that a client that is being refused is not also timed out. A
// refused frame still draws the bucket, below zero: a client that backs
// off is served again once the rate has refilled what it overdrew, and a
// socket that goes on until it has overdrawn a whole burst is closed
// with StatusRateLimited. The bucket costs each socket 16 bytes.
const StatusRateLimited websocket.StatusCode = 4429

// bucket is a socket's token bucket; only its read loop touches it.
type bucket struct {
	tokens float64
	last   int64 // clock reading of the last take; 0 before the first
}

// What a frame's take from the bucket allows.
type verdict int8

const (
	allowed   verdict = iota
	limited           // refuse the frame
	overdrawn         // close the socket
)

// clockStart is the origin of the monotonic clock buckets read.
var clockStart = time.Now()

func monotonic() int64 { return int64(time.Since(clockStart)) }

// take draws one token at time now (nanoseconds) for a bucket of burst
// tokens refilled at rate a second.
func (b *bucket) take(now int64, rate, burst float64) verdict {
	if b.last == 0 {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+float64(now-b.last)*rate/1e9)
	}
	b.last = now
	b.tokens = max(b.tokens-1, -burst)
	switch {
	case b.tokens >= 0:
		return allowed
	case b.tokens > -burst:
		return limited
	}
	return overdrawn
}

// rateLimited applies the socket's rate limit to a parsed frame (ok: it
// parsed). It reports whether the frame was dealt with, and if so whether
// to keep reading.
func (s *Socket) rateLimited(f *phx.Frame, ok bool) (handled, keepReading bool) {
	cfg := &s.srv.cfg
	if cfg.MaxEventsPerSecond <= 0 {
		return false, true
	}
	switch s.limit.take(monotonic(), float64(cfg.MaxEventsPerSecond), float64(cfg.MaxEventsBurst)) {
	case allowed:
		return false, true
	case overdrawn:
		s.srv.refuse(refusal{kind: RefusedEvent, reason: "rate_limited_closed", socket: s.id})
		s.closeWith(StatusRateLimited, reasonRateLimited)
		return true, false
	}
	if ok && f.Topic == "phoenix" && f.Event == "heartbeat" {
		return false, true // answered all the same
	}
	kind := RefusedEvent
	if f.Event == "phx_join" {
		kind = RefusedJoin
	}
	if f.Topic == "" || !f.Ref.Valid {
		s.srv.refuse(refusal{kind: kind, reason: reasonRateLimited, socket: s.id})
		return true, true // nothing to reply to
	}
	s.refuseFrame(f, kind, reasonRateLimited, nil)
	return true, true
}
