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
// changed, and less often while a large room keeps changing (countFanout).
// Any other value is refused with "invalid_presence_mode". In
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

// countFanout paces presence_count in large rooms. While a topic keeps
// changing, a count-mode socket is sent its count at most every
// PresenceWindow times counting/countFanout (counting: the topic's
// count-mode sockets on this server): with the default window, every
// 0.5 s in a room of 500, every 10 s in a room of 10,000, as occupancy
// services do. A busy topic then costs at most about countFanout frames
// a window (1,000 a second) whatever its size: every socket's write is a
// system call, and in a storm of 10,000 joins a count for every socket
// every 50 ms would cost the server more than the joins, and each client
// kilobytes. Once a window passes with no change, every socket gets the
// exact count. A topic of countFanout count-mode sockets or fewer sends
// every window.
const countFanout = 50

// countEvery returns how often a socket of a topic with counting
// count-mode sockets gets a count while the topic keeps changing.
func (s *Server) countEvery(counting int) time.Duration {
	rounds := max(1, (counting+s.countFanout-1)/s.countFanout)
	return time.Duration(rounds) * s.cfg.PresenceWindow
}

// countChanged notes a change of the topic's presence for its count-mode
// sockets: it runs a round of presence_count now, or schedules one, so
// that rounds come at most once a window. The caller holds ts.mu.
func (s *Server) countChanged(ts *topicState) {
	if ts.counting == 0 {
		return
	}
	ts.countBusy = true
	if ts.countDue {
		return
	}
	wait := time.Until(ts.countRound.Add(s.cfg.PresenceWindow))
	if wait <= 0 {
		s.countRoundNow(ts)
		return
	}
	s.scheduleCountRound(ts, wait)
}

// scheduleCountRound runs a round after wait. The caller holds ts.mu.
func (s *Server) scheduleCountRound(ts *topicState, wait time.Duration) {
	ts.countDue = true
	time.AfterFunc(wait, func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.countDue = false
		if !ts.dead {
			s.countRoundNow(ts)
			s.release(ts)
		}
	})
}

// countRoundNow pushes presence_count to the count-mode subscribers whose
// last count differs from the topic's now: one frame, encoded once and
// shared. While the topic is busy (it changed since the last round), a
// socket sent a count less than countEvery ago waits, and a round a window
// later comes for it; a quiet round reaches everyone sent a count at least
// a window ago. The caller holds ts.mu.
func (s *Server) countRoundNow(ts *topicState) {
	if ts.counting == 0 {
		return
	}
	now := time.Now()
	ts.countRound = now
	busy := ts.countBusy
	ts.countBusy = false
	keys, entries := s.countKeys(ts.name)
	every := s.countEvery(ts.counting)
	var frame []byte
	waiting := false
	for sock, sub := range ts.subs {
		if !sub.count || (sub.keys == keys && sub.entries == entries) {
			continue
		}
		// A quiet round may still see numbers newer than the last note of
		// a change (its note waits for ts.mu): a socket sent a count less
		// than a window ago, at its join, waits for the window too.
		if since := now.Sub(sub.sent); since < s.cfg.PresenceWindow || busy && since < every {
			waiting = true
			continue
		}
		if frame == nil {
			frame = countFrame(phx.Ref{}, ts.name, keys, entries)
		}
		s.stats.presenceCounts.Add(1)
		sock.enqueue(frame)
		sub.keys, sub.entries, sub.sent = keys, entries, now
		ts.subs[sock] = sub
	}
	if waiting {
		s.scheduleCountRound(ts, s.cfg.PresenceWindow)
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
