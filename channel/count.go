package channel

import (
	"bytes"
	"strconv"
	"time"

	"github.com/presencekit/presence/phx"
	"github.com/valyala/fastjson"
)

// countKeys returns the topic's distinct keys and entries, at one
// instant, in O(1).
func (s *Server) countKeys(topic string) (keys, entries int) {
	return s.cfg.Presence.CountKeys(topic)
}

// Presence modes. A join chooses one with the "presence" field of its
// params: "full" (the default, Phoenix's presence_state and presence_diff)
// or "count", for a room too large for every member to hold the roster:
// the socket then gets no presence_state and no presence_diff for the
// topic, but presence_count events, {"count": K, "entries": E}, K the
// topic's distinct keys and E its entries. The first comes right after the
// join's reply; then at most one a Config.PresenceWindow, when the numbers
// changed. Any other value is refused with "invalid_presence_mode". In
// either mode a socket may page through the topic's presence with
// presence_list (see pages.go).
const (
	presenceParam      = "presence"
	presenceModeFull   = "full"
	presenceModeCount  = "count"
	eventPresenceCount = "presence_count"
)

var paramParsers fastjson.ParserPool

// presenceMode reads the presence mode of a join's params, valid JSON:
// count is true for "count", ok false for a value that is no mode. Params
// that are not an object, or have no "presence" field, ask for full.
func presenceMode(params []byte) (count, ok bool) {
	if !bytes.Contains(params, []byte(presenceParam)) && !bytes.Contains(params, []byte(`\u`)) {
		return false, true // the common case, without parsing
	}
	p := paramParsers.Get()
	defer paramParsers.Put(p)
	v, err := p.ParseBytes(params)
	if err != nil || v.Type() != fastjson.TypeObject {
		return false, true
	}
	m := v.Get(presenceParam)
	if m == nil {
		return false, true
	}
	mode, err := m.StringBytes()
	if err != nil {
		return false, false
	}
	switch string(mode) {
	case presenceModeFull:
		return false, true
	case presenceModeCount:
		return true, true
	}
	return false, false
}

// countFrame returns a presence_count frame of its own.
func countFrame(joinRef phx.Ref, topic string, keys, entries int) []byte {
	var payload [48]byte
	return newFrame(joinRef, phx.Ref{}, topic, eventPresenceCount, phx.AppendPresenceCount(payload[:0], keys, entries))
}

// countFanout is how many count-mode sockets of one topic a presence
// window's round of presence_count may reach. A topic with more goes
// round less often, every PresenceWindow times counting/countFanout:
// every socket's write is a system call, and a join storm that sent each
// of 10,000 sockets a count every 50 ms would cost the server more in
// writes than the joins themselves, and the more so the longer it lasts.
// Paced, a topic costs at most countFanout frames a window, whatever its
// size; a count in a room of 10,000 count-mode sockets lags by at most a
// second, in a room of 500 or fewer by at most a window.
const countFanout = 500

// countEvery returns how often a topic with counting count-mode sockets
// sends presence_count.
func (s *Server) countEvery(counting int) time.Duration {
	rounds := max(1, (counting+s.countFanout-1)/s.countFanout)
	return time.Duration(rounds) * s.cfg.PresenceWindow
}

// scheduleCounts sends the topic's count-mode sockets their counts now,
// or schedules the round when the last one is too recent (countEvery).
// The caller holds ts.mu.
func (s *Server) scheduleCounts(ts *topicState) {
	if ts.counting == 0 || ts.countDue {
		return
	}
	wait := time.Until(ts.countSent.Add(s.countEvery(ts.counting)))
	if wait <= 0 {
		s.sendCounts(ts)
		return
	}
	ts.countDue = true
	time.AfterFunc(wait, func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.countDue = false
		if !ts.dead {
			s.sendCounts(ts)
			s.release(ts)
		}
	})
}

// sendCounts pushes presence_count to the count-mode subscribers whose
// last count differs from the topic's now: one frame, encoded once and
// shared. The caller holds ts.mu.
func (s *Server) sendCounts(ts *topicState) {
	if ts.counting == 0 {
		return
	}
	ts.countSent = time.Now()
	keys, entries := s.countKeys(ts.name)
	var frame []byte
	for sock, sub := range ts.subs {
		if !sub.count || (sub.keys == keys && sub.entries == entries) {
			continue
		}
		if frame == nil {
			frame = countFrame(phx.Ref{}, ts.name, keys, entries)
		}
		s.stats.presenceCounts.Add(1)
		sock.enqueue(frame)
		sub.keys, sub.entries = keys, entries
		ts.subs[sock] = sub
	}
}

// tooLargeResponse is the response of a full-mode join refused for
// Channel.MaxPresenceState: {"reason":"presence_too_large","count":K,"max":M}.
func tooLargeResponse(dst []byte, count, maxKeys int) []byte {
	dst = append(dst, `{"reason":"`+reasonPresenceTooLarge+`","count":`...)
	dst = strconv.AppendInt(dst, int64(count), 10)
	dst = append(dst, `,"max":`...)
	dst = strconv.AppendInt(dst, int64(maxKeys), 10)
	return append(dst, '}')
}

// refuseTooLarge refuses a full-mode join into a topic that holds more
// keys than its channel's MaxPresenceState, and reports whether it did.
// It runs before Join, so that a refused join changes nothing.
func (s *Socket) refuseTooLarge(f *phx.Frame, c *Channel) bool {
	maxKeys := c.MaxPresenceState
	if maxKeys == 0 {
		maxKeys = DefaultMaxPresenceState
	}
	if maxKeys < 0 {
		return false
	}
	keys, _ := s.srv.countKeys(f.Topic)
	if keys <= maxKeys {
		return false
	}
	s.srv.stats.joinsRejected.Add(1)
	s.srv.refuse(refusal{kind: RefusedJoin, reason: reasonPresenceTooLarge, socket: s.id, topic: f.Topic, event: f.Event})
	s.frame = tooLargeResponse(s.frame[:0], keys, maxKeys)
	s.reply(f, false, s.frame)
	return true
}
