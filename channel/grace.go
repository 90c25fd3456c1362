package channel

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
)

// Reconnect grace (Config.ReconnectGrace): a connection that sends a
// session token and is lost abruptly keeps its presence for the grace, and
// a new connection of the same session and owner takes it over.
//
// The new connection takes over the lost one's engine SocketID when it
// connects, so that the held entries are already its own: a Track of the
// same key and meta changes nothing in the engine (observers receive
// nothing, here and on every node of a cluster), and a Track of a new meta
// is one update, which observers receive as one presence_diff with a leave
// and a join of the key. The held topics the new connection has not
// tracked in (nor left) when the grace ends leave then, or sooner, one
// by one, when the new connection tracks in other topics and needs the
// room they take under its id (the engine's MaxPerSocket).

// SessionParam is the connect parameter (a URL query parameter, as
// Phoenix's params are) that names a client's session: a random token of
// MinSessionLen to MaxSessionLen bytes, made once per page or app
// instance. A connection without one, or with one of another length, gets
// no grace.
const SessionParam = "session"

// Bounds of a session token, in bytes.
const (
	MinSessionLen = 16
	MaxSessionLen = 256
)

// DefaultMaxHeldSessions is Config.MaxHeldSessions when it is 0.
const DefaultMaxHeldSessions = 10_000

// sessionKey names a session: a hash of its owner and its token, so that
// a held session costs the same whatever their length, and a token is only
// ever matched together with its owner.
type sessionKey [sha256.Size]byte

func makeSessionKey(owner, token string) sessionKey {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(owner)))
	h.Write(n[:])
	h.Write([]byte(owner))
	h.Write([]byte(token))
	var k sessionKey
	h.Sum(k[:0])
	return k
}

// fillGrace checks the reconnect grace's fields of cfg and fills in their
// defaults.
func (cfg *Config) fillGrace() error {
	switch {
	case cfg.ReconnectGrace < 0:
		return badConfig("ReconnectGrace %v is negative", cfg.ReconnectGrace)
	case cfg.MaxHeldSessions < 0:
		return badConfig("MaxHeldSessions %d is negative", cfg.MaxHeldSessions)
	case cfg.MaxHeldSessions == 0:
		cfg.MaxHeldSessions = DefaultMaxHeldSessions
	}
	switch {
	case cfg.MaxHeldEntries < 0:
		return badConfig("MaxHeldEntries %d is negative", cfg.MaxHeldEntries)
	case cfg.MaxHeldEntries == 0:
		ec := cfg.Presence.Config()
		local := ec.Capacity
		if ec.LocalCapacity > 0 {
			local = ec.LocalCapacity
		}
		cfg.MaxHeldEntries = max(1, local/4)
	}
	return nil
}

// graceState is a Server's held sessions.
type graceState struct {
	mu     sync.Mutex
	held   map[sessionKey]*heldSession
	closed bool // Shutdown began: nothing more is held

	// count is len(held), and entries the sum of their entries' bound,
	// for Stats; both change under mu.
	count, entries            atomic.Int64
	resumes, expired, refused atomic.Int64
}

// add records h as held; the caller holds g.mu.
func (g *graceState) add(h *heldSession) {
	g.held[h.key] = h
	g.count.Add(1)
	g.entries.Add(int64(h.entries))
}

// remove forgets h, if it is held; the caller holds g.mu.
func (g *graceState) remove(h *heldSession) bool {
	if g.held[h.key] != h {
		return false
	}
	delete(g.held, h.key)
	g.count.Add(-1)
	g.entries.Add(-int64(h.entries))
	return true
}

// heldSession is what a lost connection left for the grace: its engine
// SocketID, the topics it had joined, and what its Leave callbacks need.
type heldSession struct {
	key     sessionKey
	id      engine.SocketID
	params  url.Values
	assigns map[string]any

	// entries bounds the entries it holds: the topics it held when it
	// was lost, each with at most one entry.
	entries int

	mu     sync.Mutex
	topics []string // joined and not yet taken over; nil once ended
	timer  *time.Timer
}

// socketGrace is a socket's part in the reconnect grace.
type socketGrace struct {
	key     sessionKey
	session bool // the connection sent a session token
	// resumed is the held session the socket took over when it
	// connected, whose topics are still its until it tracks in them, it
	// leaves them, or the grace ends. Set before the socket is served.
	resumed *heldSession

	timedOut     atomic.Bool // closed for its heartbeat timeout
	serverClosed atomic.Bool // closed by the server with a close frame
	peerClosed   atomic.Bool // the client sent a close frame
}

// lost records how the read loop ended: a close frame from the client is
// a clean close, and a frame over Config.MaxFrameBytes a close the server
// chose (the websocket package closed it with 1009).
func (g *socketGrace) lost(err error) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		g.serverClosed.Store(true)
		return
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) && !clientTimedOut(ce) {
		g.peerClosed.Store(true)
	}
}

// StatusClientTimeout is the close code presence.js sends when the server
// missed its heartbeat: the client is about to reconnect.
const StatusClientTimeout websocket.StatusCode = 4000

// clientTimedOut reports whether a client's close frame says that the
// client gave up on a silent server and will reconnect: presence.js sends
// StatusClientTimeout, and the official phoenix client 1000 with the
// reason "heartbeat timeout". Such a close is a lost connection, not a
// leave, so the reconnect grace holds it.
func clientTimedOut(ce websocket.CloseError) bool {
	return ce.Code == StatusClientTimeout || ce.Reason == "heartbeat timeout"
}

// abrupt reports whether the connection was lost rather than closed: a
// heartbeat timeout, or an end with no close frame from either side (a
// reset, a dead network, a write that failed or a full queue).
func (g *socketGrace) abrupt() bool {
	return g.timedOut.Load() || !g.serverClosed.Load() && !g.peerClosed.Load()
}

// session returns the session a connection names with its params, and
// whether it names one: a token of the right length, with a grace. It runs
// after Connect and before the upgrade, and changes nothing: a
// SessionOwner that panics fails the request as a Connect that panics
// does.
func (s *Server) session(params url.Values, assigns map[string]any) (sessionKey, bool) {
	if s.cfg.ReconnectGrace <= 0 {
		return sessionKey{}, false
	}
	token := params.Get(SessionParam)
	if len(token) < MinSessionLen || len(token) > MaxSessionLen {
		return sessionKey{}, false
	}
	owner := fmt.Sprint(assigns)
	if s.cfg.SessionOwner != nil {
		owner = s.cfg.SessionOwner(assigns)
	}
	return makeSessionKey(owner, token), true
}

// resumeSession runs once a connection is accepted, before it is served:
// a session makes it eligible for the grace, and if the session is held,
// the socket takes it over.
func (s *Server) resumeSession(sock *Socket, key sessionKey, ok bool) {
	if !ok {
		return
	}
	sock.grace.key, sock.grace.session = key, true
	g := &s.grace
	g.mu.Lock()
	h := g.held[key]
	if h != nil {
		g.remove(h)
	}
	g.mu.Unlock()
	if h == nil {
		return
	}
	g.resumes.Add(1)
	sock.id = h.id
	sock.grace.resumed = h
}

// claim ends the hold on a topic of the session the socket resumed: the
// socket tracks in it or leaves it, and its entry is the socket's own from
// now on. Holding h.mu orders it against the end of the grace, which
// removes what is held under h.mu: an entry is either taken over or
// removed, never tracked anew and then removed.
func (g *socketGrace) claim(topic string) {
	h := g.resumed
	if h == nil {
		return
	}
	h.mu.Lock()
	if i := slices.Index(h.topics, topic); i >= 0 {
		h.topics = slices.Delete(h.topics, i, i+1)
	}
	h.mu.Unlock()
}

// yieldHeld ends the hold on one topic of the session the socket resumed
// that the socket has not joined (nor is joining), other than topic, and
// reports whether there was one. The held entries are under the socket's
// engine id, and count against the engine's MaxPerSocket: a connection
// that comes back and joins other topics than its held ones gets their
// room, as it would have without a grace.
func (s *Socket) yieldHeld(topic string) bool {
	h := s.grace.resumed
	if h == nil {
		return false
	}
	h.mu.Lock()
	i := slices.IndexFunc(h.topics, func(t string) bool { return t != topic && !s.member(t) })
	if i < 0 {
		h.mu.Unlock()
		return false
	}
	yielded := h.topics[i]
	h.topics = slices.Delete(h.topics, i, i+1)
	s.srv.cfg.Presence.Untrack(h.id, yielded)
	h.mu.Unlock()
	// The Leave callback runs as it would have when the grace ended: on
	// a goroutine of its own, not inside the Track that made room (whose
	// caller may hold a lock the callback takes).
	s.srv.goTracked(func() { s.srv.heldLeft(h, []string{yielded}) })
	return true
}

// goTracked runs fn on a goroutine that Shutdown waits for; once Shutdown
// has begun, it runs fn at once.
func (s *Server) goTracked(fn func()) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		fn()
		return
	}
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// HeldEntry returns the key and meta of the entry in topic that the socket
// took over from an earlier connection of its session (see
// Config.ReconnectGrace) and has not yet tracked again, so that a Join can
// track it unchanged: then observers receive nothing. ok is false when
// there is none.
func (s *Socket) HeldEntry(topic string) (key string, meta []byte, ok bool) {
	h := s.grace.resumed
	if h == nil {
		return "", nil, false
	}
	h.mu.Lock()
	held := slices.Contains(h.topics, topic)
	h.mu.Unlock()
	if !held {
		return "", nil, false
	}
	s.srv.cfg.Presence.SocketEntries(s.id, func(t, k string, m []byte, _ uint64) bool {
		if t == topic {
			key, meta, ok = k, append([]byte(nil), m...), true
			return false
		}
		return true
	})
	return key, meta, ok
}

// hold keeps a closing socket's presence for the grace, and reports
// whether it did; topics are the topics it had joined. It does so for an
// abrupt loss of a socket that sent a session token, unless the server is
// shutting down, or holds MaxHeldSessions already, or MaxHeldEntries would
// be passed.
func (s *Server) hold(sock *Socket, topics []string) bool {
	sg := &sock.grace
	if !sg.session || !sg.abrupt() {
		return false
	}
	// What the socket still holds of a session it resumed is held again,
	// if the socket is; until then, the resumed session keeps it.
	r := sg.resumed
	unlockResumed := func() {}
	if r != nil {
		r.mu.Lock()
		unlockResumed = r.mu.Unlock
		for _, t := range r.topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	if len(topics) == 0 {
		unlockResumed()
		return false
	}
	g := &s.grace
	// The ghost's own copy: an app goroutine may still use the closed
	// socket while the Leave callbacks use the ghost.
	sock.mu.Lock()
	assigns := maps.Clone(sock.assigns)
	sock.mu.Unlock()
	h := &heldSession{key: sg.key, id: sock.id, params: sock.params, assigns: assigns, entries: len(topics)}
	h.mu.Lock() // until it is complete: nothing may end it before
	g.mu.Lock()
	old := g.held[sg.key]
	if old != nil {
		g.remove(old)
	}
	if g.closed || len(g.held) >= s.cfg.MaxHeldSessions || g.entries.Load()+int64(h.entries) > int64(s.cfg.MaxHeldEntries) {
		if old != nil {
			g.add(old)
		}
		if !g.closed {
			g.refused.Add(1)
		}
		g.mu.Unlock()
		h.mu.Unlock()
		unlockResumed()
		return false
	}
	g.add(h)
	g.mu.Unlock()
	if r != nil {
		r.topics = nil
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	unlockResumed()
	// A copy: the caller's cleanup still reads topics, and a connection
	// that resumes the session changes h.topics in place (claim).
	h.topics = slices.Clone(topics)
	h.timer = time.AfterFunc(s.cfg.ReconnectGrace, func() { s.expireHeld(h) })
	h.mu.Unlock()
	if old != nil {
		// The same session was held already, by another connection lost
		// before: only one can be resumed, the latest.
		g.expired.Add(1)
		s.endHeld(old)
	}
	return true
}

// ghost returns a closed Socket that stands for the lost connection in
// its Leave callbacks: it has the lost one's id, params and assigns, and
// its methods fail as a closed socket's do.
func (h *heldSession) ghost(srv *Server) *Socket {
	done := make(chan struct{})
	close(done)
	g := &Socket{srv: srv, id: h.id, params: h.params, assigns: h.assigns, done: done, qclosed: true}
	g.once.Do(func() {}) // nothing to close
	return g
}

// expireHeld ends a held session whose grace has passed. Shutdown waits
// for it, as for a connection: its Leave callbacks never run after
// Shutdown returns. Once Shutdown has begun, it ends h itself: h is held,
// or a live connection resumed it and ends it as it closes.
func (s *Server) expireHeld(h *heldSession) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		return
	}
	defer s.wg.Done()
	g := &s.grace
	g.mu.Lock()
	waiting := g.remove(h)
	g.mu.Unlock()
	if waiting {
		g.expired.Add(1)
	}
	s.endHeld(h)
}

// endHeld removes what h still holds, and runs the Leave callbacks of its
// topics with its ghost. It may run more than once, and concurrently: the
// topics go to whichever run takes them.
func (s *Server) endHeld(h *heldSession) {
	e := s.cfg.Presence
	h.mu.Lock()
	topics := h.topics
	h.topics = nil
	if h.timer != nil {
		h.timer.Stop()
	}
	// Under h.mu, so that a claim of the same topic waits (see claim).
	for _, t := range topics {
		e.Untrack(h.id, t)
	}
	h.mu.Unlock()
	s.heldLeft(h, topics)
}

// heldLeft announces that h's hold on topics ended, its entries removed:
// the topics' observers are due a diff, and their Leave callbacks run
// with h's ghost.
func (s *Server) heldLeft(h *heldSession, topics []string) {
	var ghost *Socket
	for _, t := range topics {
		// Whether the entry was still there or went with the resumed
		// socket, the topic's observers are due a diff.
		s.presenceChanged(t)
		s.stats.leaves.Add(1)
		if c := s.channelFor(t); c != nil && c.Leave != nil {
			if ghost == nil {
				ghost = h.ghost(s)
			}
			ghost.safely(func() { c.Leave(ghost, t) })
		}
	}
}

// endHeldSessions ends every held session at once, and holds no more: the
// server is shutting down.
func (s *Server) endHeldSessions() {
	g := &s.grace
	g.mu.Lock()
	g.closed = true
	all := make([]*heldSession, 0, len(g.held))
	for _, h := range g.held {
		all = append(all, h)
	}
	clear(g.held)
	g.count.Store(0)
	g.entries.Store(0)
	g.mu.Unlock()
	g.expired.Add(int64(len(all)))
	for _, h := range all {
		s.endHeld(h)
	}
}

// closeSession is the reconnect grace's part of a socket's cleanup, after
// it left its topics; topics are the topics it had joined. It reports
// whether the socket's presence is held: then the caller leaves it in the
// engine, and the topics' leaves and Leave callbacks wait for the grace.
func (s *Server) closeSession(sock *Socket, topics []string) bool {
	if s.hold(sock, topics) {
		return true
	}
	if r := sock.grace.resumed; r != nil {
		// What it still held of a session it resumed goes with it.
		s.endHeld(r)
	}
	return false
}

// graceStats fills in the reconnect grace's counters.
func (s *Server) graceStats(st *Stats) {
	g := &s.grace
	st.HeldSessions = g.count.Load()
	st.HeldEntries = g.entries.Load()
	st.Resumes = g.resumes.Load()
	st.HeldExpired = g.expired.Load()
	st.HeldRefused = g.refused.Load()
}
