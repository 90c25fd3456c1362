package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// Socket is one client connection.
type Socket struct {
	srv    *Server
	id     engine.SocketID
	conn   *websocket.Conn
	net    *batchConn // under conn; nil in tests that make sockets by hand
	params url.Values
	done   chan struct{} // closed when the socket closes
	once   sync.Once

	mu      sync.Mutex
	assigns map[string]any
	joined  map[string]membership // by topic
	// While a Join callback runs, its topic and the pushes it made, sent
	// after the join reply.
	joining      string
	joinRef      phx.Ref
	pending      [][]byte
	wantsState   bool
	tracked      bool // the running Join tracked in its topic
	joiningCount bool // the running Join is in count mode

	scratch, frame []byte // the read loop's, for replies
	limit          bucket // the read loop's: the inbound rate limit

	// The send queue: frames wait in queue, and queued counts their bytes
	// until they are written; ready wakes the writer.
	qmu     sync.Mutex
	queue   [][]byte
	queued  int
	qclosed bool
	ready   chan struct{}

	grace socketGrace // see Config.ReconnectGrace
}

func newSocket(srv *Server, conn *websocket.Conn, params url.Values, assigns map[string]any) *Socket {
	if assigns == nil {
		assigns = map[string]any{}
	}
	return &Socket{
		srv:     srv,
		id:      engine.SocketID(srv.ids.Add(1)),
		conn:    conn,
		params:  params,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		assigns: assigns,
		joined:  map[string]membership{},
	}
}

// Server returns the Server the socket belongs to.
func (s *Socket) Server() *Server { return s.srv }

// ID returns the socket's id in the presence engine. A connection that
// resumed a held session (Config.ReconnectGrace) has the id of the
// connection it resumed, whose entries it took over.
func (s *Socket) ID() engine.SocketID { return s.id }

// Params returns the connection's URL parameters.
func (s *Socket) Params() url.Values { return s.params }

// Assign stores a value on the socket.
func (s *Socket) Assign(key string, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assigns[key] = value
}

// Get returns a value stored with Assign or by Config.Connect.
func (s *Socket) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.assigns[key]
	return v, ok
}

// Topics returns the topics the socket has joined.
func (s *Socket) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.joined))
	for t := range s.joined {
		out = append(out, t)
	}
	return out
}

func (s *Socket) member(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.joined[topic]
	return ok || s.joining == topic
}

// Track records the socket's presence in a topic it joined (or is
// joining), under key with meta; everyone in the topic learns of it in the
// next presence_diff. Errors are the engine's, ErrNotJoined and
// ErrReservedMeta (meta has a top-level key phx_ref or phx_ref_prev, which
// the server sets itself), and ErrClosed.
func (s *Socket) Track(topic, key string, meta []byte) error {
	if s.closed() {
		return ErrClosed
	}
	if !s.member(topic) {
		return ErrNotJoined
	}
	if reservedKey(meta) {
		return ErrReservedMeta
	}
	s.grace.claim(topic)
	out, _, err := s.srv.cfg.Presence.TrackRef(s.id, topic, key, meta)
	for errors.Is(err, engine.ErrSocketLimit) && s.yieldHeld(topic) {
		out, _, err = s.srv.cfg.Presence.TrackRef(s.id, topic, key, meta)
	}
	if err != nil {
		return err
	}
	if out != engine.Unchanged {
		s.srv.presenceChanged(topic)
	}
	s.markTracked(topic)
	if s.closed() { // closed meanwhile: its cleanup may have run already
		s.untrack(topic)
		return ErrClosed
	}
	return nil
}

// Untrack removes the socket's presence from topic. On a closed socket
// it does nothing and returns false: what it tracked goes with its
// cleanup, or is held for the reconnect grace under an engine id that a
// connection resuming its session owns from then on.
func (s *Socket) Untrack(topic string) bool {
	if s.closed() {
		return false
	}
	return s.untrack(topic)
}

// untrack removes the socket's presence from topic, closed or not.
func (s *Socket) untrack(topic string) bool {
	if !s.srv.cfg.Presence.Untrack(s.id, topic) {
		return false
	}
	s.srv.presenceChanged(topic)
	return true
}

// Push sends an event to this socket on topic.
func (s *Socket) Push(topic, event string, payload any) error {
	if s.closed() {
		return ErrClosed
	}
	b, err := encodePayload(payload)
	if err != nil {
		return err
	}
	s.mu.Lock()
	m, ok := s.joined[topic]
	if s.joining == topic {
		s.pending = append(s.pending, newFrame(s.joinRef, phx.Ref{}, topic, event, b))
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if !ok {
		return ErrNotJoined
	}
	s.enqueue(newFrame(m.joinRef, phx.Ref{}, topic, event, b))
	return nil
}

// PushPresenceState sends the topic's presence to this socket as a
// presence_state event, consistent with the presence_diff events that
// follow it. When a presence_diff is due in the topic, the presence_state
// goes out with it, within Config.PresenceWindow, built from the same
// snapshot for every socket that asked meanwhile. A socket that joined
// the topic in count mode gets presence_count instead: for it,
// PushPresenceState does nothing and returns nil.
func (s *Socket) PushPresenceState(topic string) error {
	if s.closed() {
		return ErrClosed
	}
	s.mu.Lock()
	if s.joining == topic {
		s.wantsState = !s.joiningCount
		s.mu.Unlock()
		return nil
	}
	m, ok := s.joined[topic]
	s.mu.Unlock()
	if !ok {
		return ErrNotJoined
	}
	if !m.count {
		s.srv.pushState(s, m)
	}
	return nil
}

// CountMode reports whether the socket joined topic (or is joining it) in
// count mode: it then gets presence_count, not presence_state and
// presence_diff.
func (s *Socket) CountMode(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.joining == topic {
		return s.joiningCount
	}
	return s.joined[topic].count
}

// Broadcast sends an event to every socket in topic, this one included.
func (s *Socket) Broadcast(topic, event string, payload any) error {
	return s.srv.Broadcast(topic, event, payload)
}

// BroadcastFrom sends an event to every socket in topic but this one.
func (s *Socket) BroadcastFrom(topic, event string, payload any) error {
	if s.srv.closed() {
		return ErrServerClosed
	}
	b, err := encodePayload(payload)
	if err != nil {
		return err
	}
	s.srv.broadcast(topic, event, b, s)
	s.srv.clusterPublish(topic, event, b)
	return nil
}

// Close closes the connection with a close frame; on a socket already
// closed it returns ErrClosed.
func (s *Socket) Close() error {
	err := ErrClosed
	s.once.Do(func() {
		err = nil
		s.grace.serverClosed.Store(true) // a close the server chose: no grace
		close(s.done)
		s.conn.Close(websocket.StatusNormalClosure, "")
	})
	return err
}

// enqueue queues a frame without blocking; a queue that would hold more
// than Config.MaxQueueBytes disconnects the socket, so that one slow client
// never holds up the others. A frame alone in the queue may exceed the
// bound: a large presence_state still reaches a client that keeps up.
// The frame may be shared with other sockets, and is never modified.
func (s *Socket) enqueue(frame []byte) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	s.qmu.Lock()
	if s.qclosed {
		s.qmu.Unlock()
		return false
	}
	if s.queued > 0 && s.queued+len(frame) > s.srv.cfg.MaxQueueBytes {
		s.qclosed = true // once: later frames are refused at once
		s.qmu.Unlock()
		s.srv.stats.drops.Add(1)
		// Callers hold a topic's lock, and closing can wait for a close
		// handshake under way.
		go s.drop()
		return false
	}
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	s.qmu.Unlock()
	s.srv.stats.queuedBytes.Add(int64(len(frame)))
	s.srv.stats.pushedBytes.Add(int64(len(frame)))
	s.srv.stats.pushes.Add(1)
	select {
	case s.ready <- struct{}{}:
	default: // the writer is already due to look
	}
	return true
}

// closeQueue empties the queue for good, once the writer is gone.
func (s *Socket) closeQueue() {
	s.qmu.Lock()
	s.qclosed = true
	n := s.queued
	s.queue, s.queued = nil, 0
	s.qmu.Unlock()
	s.srv.stats.queuedBytes.Add(-int64(n))
}

// drop ends the connection at once, without a close handshake: for a peer
// that is not reading, a close frame would only wait in its full buffer.
func (s *Socket) drop() {
	s.once.Do(func() {
		close(s.done)
		s.conn.CloseNow()
	})
}

// timeOut closes a socket that sent nothing for Config.HeartbeatTimeout.
// It is a loss, which the reconnect grace holds, only if it is what
// closes the socket: after a Close, the close stays the server's choice.
func (s *Socket) timeOut() {
	s.once.Do(func() {
		s.grace.timedOut.Store(true)
		close(s.done)
		s.conn.Close(websocket.StatusPolicyViolation, "heartbeat timeout")
	})
}

// closeWith ends the connection with a close frame.
func (s *Socket) closeWith(code websocket.StatusCode, reason string) {
	s.once.Do(func() {
		s.grace.serverClosed.Store(true)
		close(s.done)
		s.conn.Close(code, reason)
	})
}

// serve runs the connection: a writer goroutine drains the queue while this
// goroutine reads and dispatches frames, then cleans up.
func (s *Socket) serve() {
	srv := s.srv
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.write()
	}()
	defer func() {
		s.drop()
		<-writerDone
		s.closeQueue()
		s.cleanup()
	}()
	// A socket that sends nothing, heartbeats included, for the timeout is
	// closed with a close frame; the Read below then returns.
	idle := time.AfterFunc(srv.cfg.HeartbeatTimeout, s.timeOut)
	defer idle.Stop()
	// The read buffer and the parser are reused from frame to frame (the
	// parsed frame is a view of both), and dropped after a large frame so
	// that an idle socket stays small.
	var r reader
	for {
		typ, data, err := r.read(s.conn)
		if err != nil {
			s.grace.lost(err)
			return
		}
		idle.Reset(srv.cfg.HeartbeatTimeout)
		if typ != websocket.MessageText {
			srv.stats.badFrames.Add(1)
			s.closeWith(websocket.StatusUnsupportedData, "binary frames are not supported")
			return
		}
		if !s.dispatch(&r.parser, data) {
			return
		}
		if len(data) > maxKeptFrame {
			r = reader{}
		}
	}
}

// maxKeptFrame is the largest frame whose buffers a read loop keeps.
const maxKeptFrame = 4 << 10

// reader reads whole messages into a reused buffer. Reads use a context
// without a deadline: coder/websocket allocates per read for one that can
// end, and the heartbeat timeout and Shutdown end a socket by closing it.
type reader struct {
	buf    []byte
	parser phx.Parser
}

func (r *reader) read(conn *websocket.Conn) (websocket.MessageType, []byte, error) {
	typ, rd, err := conn.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	if r.buf == nil {
		r.buf = make([]byte, 0, 512)
	}
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			r.buf = b
			return typ, b, nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// write drains the queue. Writes use a context without a deadline, which
// costs coder/websocket no allocation; a timer drops the connection when a
// write takes longer than Config.WriteTimeout.
//
// It takes the whole queue at each wake-up, and swaps two slices so that
// the queue allocates nothing once both have grown.
func (s *Socket) write() {
	stuck := time.AfterFunc(time.Hour, s.drop)
	stuck.Stop()
	defer stuck.Stop()
	var batch [][]byte
	for {
		select {
		case <-s.ready:
		case <-s.done:
			return
		}
		s.qmu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.qmu.Unlock()
		if !s.writeBatch(batch, stuck) {
			return
		}
		if cap(batch) > 256 {
			batch = nil // a storm's queue is not kept by an idle socket
		}
	}
}

// writeBatch writes frames, in one system call where they fit in
// maxHeld, and reports whether the connection is still good. A single
// frame is held too unless it fits coder/websocket's small buffer, which
// writes a larger frame in two pieces.
func (s *Socket) writeBatch(batch [][]byte, stuck *time.Timer) bool {
	if len(batch) == 0 {
		return true // the wake-up of frames an earlier batch took
	}
	held := s.net != nil && (len(batch) > 1 || len(batch[0]) > writeBufSize-maxFrameHeader)
	if held {
		s.net.hold()
	}
	stuck.Reset(s.srv.cfg.WriteTimeout)
	defer stuck.Stop()
	ok := true
	for i, frame := range batch {
		if err := s.conn.Write(context.Background(), websocket.MessageText, frame); err != nil {
			ok = false
			break
		}
		batch[i] = nil // the frame may be large, and shared
		s.qmu.Lock()
		s.queued -= len(frame)
		s.qmu.Unlock()
		s.srv.stats.queuedBytes.Add(-int64(len(frame)))
	}
	// What the batch held goes out even after an error: it may end with
	// a close frame that another goroutine wrote.
	if held && s.net.release() != nil {
		ok = false
	}
	if !ok {
		s.drop()
	}
	return ok
}

// cleanup removes every trace of a closed socket: presence, subscriptions,
// and the channels' Leave callbacks. With a reconnect grace, an abrupt
// loss leaves the presence, the leaves and the Leave callbacks to the
// grace (see Config.ReconnectGrace).
func (s *Socket) cleanup() {
	srv := s.srv
	s.mu.Lock()
	topics := make([]string, 0, len(s.joined))
	for _, m := range s.joined {
		topics = append(topics, m.topic)
	}
	clear(s.joined)
	s.mu.Unlock()
	held := srv.closeSession(s, topics)
	if !held {
		srv.cfg.Presence.UntrackAll(s.id)
	}
	for _, t := range topics {
		srv.unsubscribe(t, s)
		if held {
			continue
		}
		srv.presenceChanged(t)
		srv.stats.leaves.Add(1)
		if c := srv.channelFor(t); c != nil && c.Leave != nil {
			s.safely(func() { c.Leave(s, t) })
		}
	}
	srv.mu.Lock()
	delete(srv.sockets, s)
	srv.mu.Unlock()
	srv.stats.sockets.Add(-1)
}

// safely runs a callback, turning a panic into an error so that a bad
// handler costs its own request, never the server.
func (s *Socket) safely(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.srv.logPanic(s.id, r, debug.Stack())
			err = errCrashed
		}
	}()
	fn()
	return nil
}

// reply queues a phx_reply. Only the read loop replies: it builds the
// reply in its scratch buffers, so that a reply costs one allocation, the
// frame that goes in the queue.
func (s *Socket) reply(f *phx.Frame, ok bool, response []byte) {
	s.enqueue(s.replyFrame(f, ok, response))
}

// replyFrame returns a phx_reply frame of its own, built in the read
// loop's scratch buffers.
func (s *Socket) replyFrame(f *phx.Frame, ok bool, response []byte) []byte {
	if !ok {
		s.srv.stats.errorReplies.Add(1)
	}
	s.scratch = phx.AppendReply(s.scratch[:0], ok, response)
	s.frame = phx.AppendFrame(s.frame[:0], f.JoinRef, f.Ref, f.Topic, "phx_reply", s.scratch)
	frame := bytes.Clone(s.frame)
	if cap(s.frame) > maxKeptFrame {
		s.scratch, s.frame = nil, nil
	}
	return frame
}

// replyError queues an error reply. The reason is built in s.frame,
// which replyFrame copies before it reuses it.
func (s *Socket) replyError(f *phx.Frame, reason string) {
	s.frame = phx.AppendReason(s.frame[:0], reason)
	s.reply(f, false, s.frame)
}

// dispatch handles one inbound frame and reports whether to keep reading.
// The frame is a view of the read loop's buffers: what outlives the call
// (topics, refs) is copied.
func (s *Socket) dispatch(p *phx.Parser, data []byte) bool {
	srv := s.srv
	f, err := p.Parse(data)
	if handled, keep := s.rateLimited(&f, err == nil); handled {
		return keep
	}
	if err != nil {
		srv.stats.badFrames.Add(1)
		if f.Topic == "" || !f.Ref.Valid {
			s.closeWith(websocket.StatusInvalidFramePayloadData, reasonMalformed)
			return false
		}
		s.refuseFrame(&f, RefusedEvent, reasonMalformed, nil)
		return true
	}
	switch {
	case f.Topic == "phoenix" && f.Event == "heartbeat":
		s.reply(&f, true, nil)
	case f.Topic == "phoenix":
		s.refuseFrame(&f, RefusedEvent, reasonUnknownPhoenix, nil)
	case f.Event == "phx_join":
		s.join(&f)
	case f.Event == "phx_leave":
		s.leave(&f)
	default:
		s.event(&f)
	}
	return true
}

func (s *Socket) join(view *phx.Frame) {
	srv := s.srv
	// The topic and join ref live on in the socket and the topic's state.
	f := &phx.Frame{JoinRef: cloneRef(view.JoinRef), Ref: view.Ref, Topic: strings.Clone(view.Topic), Event: view.Event, Payload: view.Payload}
	c := srv.channelFor(f.Topic)
	if c == nil {
		srv.stats.joinsRejected.Add(1)
		s.refuseFrame(f, RefusedJoin, reasonUnmatched, nil)
		return
	}
	s.mu.Lock()
	_, rejoin := s.joined[f.Topic]
	full := !rejoin && len(s.joined) >= srv.cfg.MaxTopicsPerSocket
	s.mu.Unlock()
	if full {
		srv.stats.joinsRejected.Add(1)
		s.refuseFrame(f, RefusedJoin, reasonTooManyTopics, nil)
		return
	}
	if !json.Valid(f.Payload) {
		s.refuseFrame(f, RefusedJoin, reasonMalformed, nil)
		return
	}
	count, ok := presenceMode(f.Payload)
	if !ok {
		srv.stats.joinsRejected.Add(1)
		s.refuseFrame(f, RefusedJoin, reasonInvalidPresenceMode, nil)
		return
	}
	if !count && s.refuseTooLarge(f, c) {
		return
	}
	if rejoin {
		s.endForRejoin(f.Topic) // see rejoin.go
	}
	s.mu.Lock()
	s.joining, s.joinRef, s.pending, s.wantsState, s.tracked, s.joiningCount = f.Topic, f.JoinRef, nil, false, false, count
	s.mu.Unlock()

	var reply any
	var joinErr error
	reason := reasonJoinFailed
	if err := s.safely(func() { reply, joinErr = c.Join(s, f.Topic, f.Payload) }); err != nil {
		joinErr, reason = err, reasonJoinCrashed
	}
	var response []byte
	if joinErr == nil {
		var err error
		if response, err = encodePayload(reply); err != nil {
			joinErr, reason = fmt.Errorf("channel: join reply: %w", err), reasonInternal
		}
	}

	s.mu.Lock()
	pending, wantsState, tracked := s.pending, s.wantsState, s.tracked
	s.joining, s.pending, s.wantsState, s.joiningCount = "", nil, false, false
	if joinErr == nil {
		s.joined[f.Topic] = membership{topic: f.Topic, joinRef: f.JoinRef, count: count}
	}
	s.mu.Unlock()

	if joinErr != nil {
		// Whatever the join tracked goes with it.
		if srv.cfg.Presence.Untrack(s.id, f.Topic) {
			srv.presenceChanged(f.Topic)
		}
		srv.stats.joinsRejected.Add(1)
		s.refuseWith(f, RefusedJoin, joinErr, reason)
		return
	}
	if rejoin && !tracked && srv.cfg.Presence.Untrack(s.id, f.Topic) {
		srv.presenceChanged(f.Topic) // the old join's entry, which the new one did not keep
	}
	srv.stats.joins.Add(1)
	srv.clusterSubscribe(f.Topic)
	// The reply and the pushes Join made go out first, and the socket
	// receives the topic's broadcasts from then on: a client that has the
	// reply misses no broadcast.
	srv.subscribe(f.Topic, s, f.JoinRef, wantsState, count, append([][]byte{s.replyFrame(f, true, response)}, pending...)...)
}

// membership is a topic the socket joined: the topic, owned by the socket,
// the join's ref, and whether it joined in count mode.
type membership struct {
	topic   string
	joinRef phx.Ref
	count   bool
}

func cloneRef(r phx.Ref) phx.Ref { return phx.Ref{S: strings.Clone(r.S), Valid: r.Valid} }

// joinedOrReply returns the membership of f's topic, and answers with an
// error reply if the socket has not joined it.
func (s *Socket) joinedOrReply(f *phx.Frame) (membership, bool) {
	s.mu.Lock()
	m, ok := s.joined[f.Topic]
	s.mu.Unlock()
	if !ok {
		s.refuseFrame(f, RefusedEvent, reasonUnmatched, nil)
	}
	return m, ok
}

func (s *Socket) leave(f *phx.Frame) {
	m, ok := s.joinedOrReply(f)
	if !ok {
		return
	}
	s.leaveTopic(m.topic)
	s.reply(f, true, nil)
	s.enqueue(newFrame(f.JoinRef, f.JoinRef, f.Topic, "phx_close", nil))
}

// leaveTopic untracks, unsubscribes and runs Leave for a joined topic.
func (s *Socket) leaveTopic(topic string) {
	srv := s.srv
	s.grace.claim(topic)
	if srv.cfg.Presence.Untrack(s.id, topic) {
		srv.presenceChanged(topic)
	}
	s.mu.Lock()
	delete(s.joined, topic)
	s.mu.Unlock()
	srv.unsubscribe(topic, s)
	srv.stats.leaves.Add(1)
	if c := srv.channelFor(topic); c != nil && c.Leave != nil {
		s.safely(func() { c.Leave(s, topic) })
	}
}

func (s *Socket) event(f *phx.Frame) {
	m, ok := s.joinedOrReply(f)
	if !ok {
		return
	}
	if f.Event == eventPresenceList {
		s.presenceList(f, m)
		return
	}
	c := s.srv.channelFor(m.topic)
	h := c.Handlers[f.Event]
	if h == nil {
		s.refuseFrame(f, RefusedEvent, reasonUnmatchedEvent, nil)
		return
	}
	var reply any
	var herr error
	if err := s.safely(func() { reply, herr = h(s, m.topic, f.Payload) }); err != nil {
		// The channel crashed, as a Phoenix channel process would: it is
		// left (presence included) and the client gets phx_error, on
		// which the official client rejoins.
		s.refuseFrame(f, RefusedEvent, reasonInternal, nil)
		s.leaveTopic(m.topic)
		s.enqueue(newFrame(m.joinRef, m.joinRef, m.topic, "phx_error", nil))
		return
	}
	if herr != nil {
		s.refuseWith(f, RefusedEvent, herr, reasonEventFailed)
		return
	}
	if reply == NoReply {
		return
	}
	b, err := encodePayload(reply)
	if err != nil {
		s.refuseWith(f, RefusedEvent, fmt.Errorf("channel: reply: %w", err), reasonInternal)
		return
	}
	s.reply(f, true, b)
}
