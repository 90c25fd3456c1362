// Package channel serves Phoenix Channels (serializer v2) over WebSocket,
// with presence tracked in an engine.Engine and cleaned up automatically.
//
// Mount a Server on net/http at /socket/websocket; the official phoenix
// JavaScript client and this package's own client (ClientScript) connect to
// it. A join tracks, a leave or a dropped connection untracks, and everyone
// in the topic receives presence_diff events, coalesced per topic over
// Config.PresenceWindow.
//
// # Concurrency
//
// Each connection has one goroutine that reads and dispatches its messages
// in order, so one socket's callbacks never run concurrently with each
// other; different sockets' callbacks do. Socket methods may be called from
// any goroutine. Outbound messages go through a queue per socket, bounded
// in bytes (Config.MaxQueueBytes), drained by a writer goroutine: a socket
// whose queue is full is disconnected, and never slows down a broadcast.
// A broadcast is encoded once, and its bytes are shared by every queue.
//
// With Config.ReconnectGrace, the Leave callbacks of a connection lost
// abruptly run on a timer's goroutine when its grace ends, after its read
// loop is gone; they may run concurrently with the callbacks of the
// connection that resumed its session, for the topics it did not take
// over.
package channel

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
)

// Config configures a Server. Presence and Channels are required.
type Config struct {
	Presence *engine.Engine
	Channels []Channel

	// Connect authenticates a connection from its URL parameters (vsn
	// removed) and returns the socket's initial assigns; an error rejects
	// the connection with 403 Forbidden.
	Connect func(r *http.Request, params url.Values) (map[string]any, error)

	// OriginPatterns lists the hosts, besides the request's own, that may
	// open connections from a browser (see websocket.AcceptOptions).
	OriginPatterns []string

	HeartbeatTimeout   time.Duration // no message for this long closes the socket; 0 means 60 s
	PresenceWindow     time.Duration // presence changes are coalesced for this long; 0 means 50 ms
	MaxQueueBytes      int           // outbound bytes queued per socket; 0 means 1 MiB
	MaxFrameBytes      int64         // largest inbound frame; 0 means 64 KiB
	MaxTopicsPerSocket int           // topics one socket may join; 0 means the engine's MaxPerSocket, above it is ErrInvalidConfig
	WriteTimeout       time.Duration // per outbound message; 0 means 10 s
	Logger             *slog.Logger  // nil means slog.Default()
	Cluster            Cluster       // nil: this server alone; see the cluster package

	// MaxEventsPerSecond and MaxEventsBurst limit the frames one socket
	// may send, as a token bucket (see StatusRateLimited). 0 means 100 a second
	// with a burst of 200; a negative MaxEventsPerSecond turns it off.
	MaxEventsPerSecond int
	MaxEventsBurst     int

	// ReconnectGrace keeps the presence of a connection lost abruptly (a
	// reset, a connection closed with no close frame, a heartbeat timeout)
	// for this long, so that a client that comes back within it does not
	// flap; 0 turns it off. Only a connection that sent a session token
	// (the SessionParam connect parameter, MinSessionLen to MaxSessionLen
	// bytes) is held, and only a new connection with the same token and
	// the same SessionOwner takes it over. A clean close (phx_leave, or
	// any close frame from the client) leaves at once. In a cluster, a
	// client that comes back on another node gets a fresh session there:
	// its key stays in every roster, and the held entry leaves when its
	// grace ends. See the README's "Reconnect grace".
	ReconnectGrace time.Duration
	// MaxHeldSessions caps the sessions held at once; past it, an abrupt
	// loss leaves at once. 0 means DefaultMaxHeldSessions. A held session
	// costs about 1.2 KB of heap with one topic and the official client's
	// params (its record, timer and key, and the lost connection's params,
	// assigns and topic names, kept for the Leave callbacks), so 12 MB at
	// the default; its entries stay in the engine, where they were.
	MaxHeldSessions int
	// MaxHeldEntries caps the entries that held sessions keep in the
	// engine together (each topic a held connection had joined counts as
	// one), so that clients that join and drop, again and again, cannot
	// fill the engine with held entries; past it, an abrupt loss leaves
	// at once. 0 means a quarter of the engine's LocalCapacity (or of its
	// Capacity, without one).
	MaxHeldEntries int
	// SessionOwner names whom a connection's session belongs to, from the
	// assigns Connect returned (a user id, say): a held session is taken
	// over only by a connection with the same token and the same owner.
	// nil means the assigns as fmt.Sprint writes them (maps with sorted
	// keys), which suits assigns of plain values.
	SessionOwner func(assigns map[string]any) string
}

// Channel defines the topics that match Topic and what happens in them.
type Channel struct {
	// Topic is a pattern: "chat:*" matches every topic that starts with
	// "chat:"; any other pattern matches exactly.
	Topic string
	// Join admits a socket, and may track its presence. A non-nil error
	// rejects the join; presence the socket tracked in the topic during
	// Join is then removed. The client's reason is the text of a
	// *ReplyError (see Reason), a fixed word for the engine's errors
	// ("full", "invalid_meta", "socket_limit", ...), and "join failed"
	// for any other error, which the server logs. The reply
	// is sent to the client as the join response (nil means {}).
	// params is a view of the socket's read buffer, valid until Join
	// returns: copy what must outlive the call (bytes.Clone).
	Join func(s *Socket, topic string, params json.RawMessage) (reply any, err error)
	// Leave runs when a joined socket leaves the topic, by phx_leave or
	// by closing; its presence is already gone. A second phx_join of the
	// topic ends the first join too (the client gets phx_close for it),
	// but keeps its presence while the new Join runs: tracking the same
	// key and meta again then sends the topic nothing.
	Leave func(s *Socket, topic string)
	// Handlers answer client events by name. presence_list is answered
	// by the server itself (see the README's "Large rooms"): a Handler of
	// that name is ErrInvalidConfig.
	Handlers map[string]Handler
	// MaxPresenceState caps, in keys, the topics a full-mode join may
	// enter: a join without "presence": "count" into a topic that holds
	// more keys than this is refused with {"reason":
	// "presence_too_large", "count": K, "max": M}, before Join runs, so
	// that nothing changes; a client then joins in count mode and pages
	// (presence_list). Count-mode joins are never refused for size. 0
	// means DefaultMaxPresenceState; a negative value means no cap.
	MaxPresenceState int
}

// Handler answers one event. Its reply goes back to the client's ref with
// status ok; an error goes back with status error and a reason as for
// Channel.Join ("event failed" for an error of no known kind); returning
// NoReply sends nothing. A panic is logged with its stack and crashes the
// channel, as in Phoenix: the client gets phx_error and rejoins.
//
// payload is a view of the socket's read buffer, valid until the Handler
// returns: the read loop parses the next frame into the same memory. Copy
// what must outlive the call (bytes.Clone); replying with payload itself,
// or broadcasting it, is fine, as both encode before the Handler returns.
type Handler func(s *Socket, topic string, payload json.RawMessage) (reply any, err error)

type noReply struct{}

// NoReply, returned by a Handler, sends no reply.
var NoReply any = noReply{}

func (c *Channel) matches(topic string) bool {
	if prefix, ok := strings.CutSuffix(c.Topic, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return c.Topic == topic
}

// Stats are the Server's counters, for a metrics exporter to read (the
// metrics package turns them into Prometheus metrics). Sockets,
// QueuedBytes, HeldSessions and HeldEntries are gauges, values now; every other field counts since
// NewServer and only grows. Each field is read atomically on its own: a
// Stats is not one consistent snapshot across fields.
type Stats struct {
	Sockets        int64 // open now
	Connects       int64 // accepted
	Rejected       int64 // connections refused by Connect, the origin check or the version
	Joins          int64 // successful joins
	JoinsRejected  int64 // joins refused: unmatched topic, too many topics, or Join's error
	Leaves         int64 // by phx_leave, a crashed channel or close
	Pushes         int64 // frames queued to sockets: replies, pushes, broadcasts, presence
	PushedBytes    int64 // bytes of those frames
	Drops          int64 // slow consumers: sockets disconnected for a full queue
	QueuedBytes    int64 // bytes queued to sockets now, not yet written
	PresenceDiffs  int64 // presence_diff broadcasts, one per topic and window
	PresenceStates int64 // presence_state frames queued
	PresenceCounts int64 // presence_count frames queued, to count-mode sockets
	PresenceLists  int64 // presence_list pages served
	ErrorReplies   int64 // error replies sent
	BadFrames      int64 // frames that were not Phoenix messages

	// Refusals counts refused connections, joins and events by kind
	// (RefusedConnect, ...) and reason, sorted; see RefusalCount.
	Refusals []RefusalCount

	// The reconnect grace (Config.ReconnectGrace).
	HeldSessions int64 // sessions held now, waiting for their client
	HeldEntries  int64 // the entries they keep in the engine now, at most (topics they had joined)
	Resumes      int64 // held sessions a new connection took over
	HeldExpired  int64 // held sessions that ended with no resume: the grace passed, or Shutdown
	HeldRefused  int64 // abrupt losses not held, for MaxHeldSessions or MaxHeldEntries
}

type counters struct {
	sockets, connects, rejected, joins, joinsRejected, leaves, pushes,
	pushedBytes, drops, queuedBytes, presenceDiffs, presenceStates, presenceCounts, presenceLists, errorReplies, badFrames atomic.Int64
}

// Server is a Phoenix Channels endpoint. Create it with NewServer.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ids   atomic.Uint64
	stats counters
	grace graceState

	refusals refusals
	pages    sync.Pool // *pageScratch, for presence_list

	// countFanout paces presence_count (see count.go); a test may lower it.
	countFanout int

	mu      sync.Mutex
	sockets map[*Socket]struct{}
	topics  map[string]*topicState
	closing bool
	wg      sync.WaitGroup // connection goroutines

	// testHookSnapshot, when set by a test, runs just before subscribe
	// takes a topic's snapshot.
	testHookSnapshot func()
}

// NewServer validates cfg and returns a Server. A Config it cannot serve
// is ErrInvalidConfig, with the field at fault; see fill in config.go for
// the defaults and how the limits agree with the engine's.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := cfg.fillGrace(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sockets: map[*Socket]struct{}{}, topics: map[string]*topicState{}}
	s.grace.held = map[sessionKey]*heldSession{}
	s.pages.New = newPageScratch
	s.countFanout = countFanout
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.attachCluster(); err != nil {
		return nil, err
	}
	return s, nil
}

// Presence returns the engine the Server tracks presence in.
func (s *Server) Presence() *engine.Engine { return s.cfg.Presence }

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Sockets: c.sockets.Load(), Connects: c.connects.Load(), Rejected: c.rejected.Load(),
		Joins: c.joins.Load(), JoinsRejected: c.joinsRejected.Load(), Leaves: c.leaves.Load(),
		Pushes: c.pushes.Load(), PushedBytes: c.pushedBytes.Load(), Drops: c.drops.Load(), QueuedBytes: c.queuedBytes.Load(), PresenceDiffs: c.presenceDiffs.Load(),
		PresenceStates: c.presenceStates.Load(), PresenceCounts: c.presenceCounts.Load(), PresenceLists: c.presenceLists.Load(), ErrorReplies: c.errorReplies.Load(), BadFrames: c.badFrames.Load(),
		Refusals: s.refusals.snapshot(),
	}
	s.graceStats(&st)
	return st
}

// ServeHTTP upgrades a request to a WebSocket connection and returns: the
// connection is served by goroutines of its own until it closes, and
// Shutdown waits for them. Returning lets net/http free the request and
// its buffers, which an idle connection would otherwise keep.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if vsn := params.Get("vsn"); vsn != "" && !strings.HasPrefix(vsn, "2.") {
		s.stats.rejected.Add(1)
		s.refuse(refusal{kind: RefusedVersion, reason: "unsupported_version", remote: r.RemoteAddr, detail: vsn})
		http.Error(w, "unsupported serializer version "+vsn+"; want 2.0.0", http.StatusBadRequest)
		return
	}
	params.Del("vsn")
	var assigns map[string]any
	if s.cfg.Connect != nil {
		var err error
		if assigns, err = s.cfg.Connect(r, params); err != nil {
			s.stats.rejected.Add(1)
			reason, forClient := reasonFor(err, "refused")
			var cause error // logged unless it is the reason itself
			if !forClient {
				cause = err
			}
			s.refuse(refusal{kind: RefusedConnect, reason: reason, remote: r.RemoteAddr, err: cause})
			http.Error(w, "connection refused", http.StatusForbidden)
			return
		}
	}
	session, hasSession := s.session(params, assigns)
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	bw := &batchWriter{ResponseWriter: w}
	conn, err := websocket.Accept(bw, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		s.stats.rejected.Add(1)
		if bw.status == http.StatusForbidden {
			s.refuse(refusal{kind: RefusedOrigin, reason: "origin", remote: r.RemoteAddr, detail: r.Header.Get("Origin")})
		} else {
			s.refuse(refusal{kind: RefusedUpgrade, reason: "upgrade", remote: r.RemoteAddr, err: err})
		}
		return // Accept wrote the response
	}
	conn.SetReadLimit(s.cfg.MaxFrameBytes)
	sock := newSocket(s, conn, params, assigns)
	sock.net = bw.conn
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close(websocket.StatusGoingAway, "server shutdown")
		return
	}
	s.sockets[sock] = struct{}{}
	s.mu.Unlock()
	s.resumeSession(sock, session, hasSession)
	s.stats.connects.Add(1)
	s.stats.sockets.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sock.serve()
	}()
}

// Shutdown closes every connection with a close frame (status 1001), waits
// for their cleanup, and refuses new ones. Sessions held for a reconnect
// grace end at once, and the Leave callbacks of graces that ended just
// before run to their end before it returns. When ctx ends first, the
// remaining connections are dropped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	socks := make([]*Socket, 0, len(s.sockets))
	for sock := range s.sockets {
		socks = append(socks, sock)
	}
	s.mu.Unlock()
	s.endHeldSessions()
	for _, sock := range socks {
		go sock.closeWith(websocket.StatusGoingAway, "server shutdown")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, sock := range socks {
			sock.conn.CloseNow()
		}
		<-done
	}
	return err
}

// Broadcast sends an event to every socket that joined topic. After
// Shutdown it returns ErrServerClosed.
func (s *Server) Broadcast(topic, event string, payload any) error {
	if s.closed() {
		return ErrServerClosed
	}
	b, err := encodePayload(payload)
	if err != nil {
		return err
	}
	s.broadcast(topic, event, b, nil)
	s.clusterPublish(topic, event, b)
	return nil
}

func (s *Server) channelFor(topic string) *Channel {
	for i := range s.cfg.Channels {
		if s.cfg.Channels[i].matches(topic) {
			return &s.cfg.Channels[i]
		}
	}
	return nil
}

// encodePayload turns a reply or push payload into JSON.
func encodePayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		if !json.Valid(p) {
			return nil, errors.New("channel: payload is not valid JSON")
		}
		return p, nil
	case []byte:
		if !json.Valid(p) {
			return nil, errors.New("channel: payload is not valid JSON")
		}
		return p, nil
	}
	return json.Marshal(v)
}
