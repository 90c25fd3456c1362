package channel

import (
	"sync"
	"time"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// topicState is a topic's subscribers and where its presence broadcasts
// stand. Every subscriber's view of the topic's presence is at cursor:
// presence_state pushes and presence_diff broadcasts both happen under mu,
// so each socket sees them in an order that adds up.
type topicState struct {
	name string

	mu       sync.Mutex
	subs     map[*Socket]subscriber
	waiting  int    // subscribers awaiting presence_state at the next flush
	counting int    // count-mode subscribers
	roster   roster // what the subscribers that are not waiting were told
	cursor   engine.Cursor
	started  bool // cursor is set
	pending  bool // a flush is scheduled
	// The presence_count rounds (count.go): countDue, one is scheduled;
	// countBusy, the topic changed since the last; countRound, when the
	// last ran.
	countDue, countBusy bool
	countRound          time.Time
	dead                bool // removed from Server.topics
	snap                engine.Snapshot
	changes             engine.Changes
}

// state returns the topic's state, creating it; the caller locks it and
// retries when it finds it dead.
func (s *Server) state(topic string) *topicState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.topics[topic]
	if ts == nil {
		ts = &topicState{name: topic, subs: map[*Socket]subscriber{}, roster: roster{}}
		s.topics[topic] = ts
	}
	return ts
}

// lockState returns the live state of topic, locked.
func (s *Server) lockState(topic string) *topicState {
	for {
		ts := s.state(topic)
		ts.mu.Lock()
		if !ts.dead {
			return ts
		}
		ts.mu.Unlock()
	}
}

// release drops a topic's state once nobody needs it. The caller holds
// ts.mu.
func (s *Server) release(ts *topicState) {
	if len(ts.subs) > 0 || ts.pending || ts.countDue {
		return
	}
	s.mu.Lock()
	if s.topics[ts.name] == ts {
		delete(s.topics, ts.name)
	}
	s.mu.Unlock()
	ts.dead = true
}

// subscriber is a socket subscribed to a topic.
type subscriber struct {
	joinRef phx.Ref
	// waiting: the socket is due a presence_state at the next flush, and
	// gets no presence_diff until then.
	waiting bool
	// count: the socket joined in count mode; it gets presence_count,
	// never presence_state nor presence_diff. keys and entries are the
	// numbers it was last sent.
	count         bool
	keys, entries int
	sent          time.Time // when it was last sent a count
}

// subscribe adds a socket to a topic's broadcasts. With state, it also
// pushes presence_state: the topic's other subscribers first get the diff
// up to the snapshot's cursor, so that everyone stands at the same cursor.
//
// When a flush is due anyway, as in a storm of joins, the presence_state
// waits for it: then one snapshot, encoded once, serves every socket that
// joined in the window, and the others get one diff for the window rather
// than one per join.
//
// first are frames for the socket that go before any broadcast it gets, the
// join's reply among them. Where presence_state goes out at once, they
// follow its snapshot: a change made after the client has its reply then
// reaches it as a presence_diff, not inside the presence_state.
//
// A count-mode socket (count) gets, after first, the topic's presence_count
// at once, and from then on the counts the flushes send.
func (s *Server) subscribe(topic string, sock *Socket, joinRef phx.Ref, state, count bool, first ...[]byte) {
	ts := s.lockState(topic)
	defer ts.mu.Unlock()
	s.subscribeLocked(ts, sock, joinRef, state, count, first...)
}

// pushState is PushPresenceState's subscribe, for the full-mode join m.
// PushPresenceState may run on any goroutine, and the read loop may end
// m meanwhile, by a leave or a rejoin (in count mode, say): it subscribes
// only while the socket's join of the topic is still m, checked under the
// topic's lock, so that a socket is never subscribed again to a topic it
// left, nor in full mode to a topic it joined in count mode.
func (s *Server) pushState(sock *Socket, m membership) {
	ts := s.lockState(m.topic)
	defer ts.mu.Unlock()
	sock.mu.Lock()
	now, ok := sock.joined[m.topic]
	sock.mu.Unlock()
	if !ok || now.joinRef != m.joinRef || now.count {
		s.release(ts)
		return
	}
	s.subscribeLocked(ts, sock, m.joinRef, true, false)
}

// subscribeLocked is subscribe; the caller holds ts.mu.
func (s *Server) subscribeLocked(ts *topicState, sock *Socket, joinRef phx.Ref, state, count bool, first ...[]byte) {
	topic := ts.name
	old, already := ts.subs[sock]
	sendFirst := func() {
		for _, f := range first {
			sock.enqueue(f)
		}
	}
	if count {
		s.subscribeCount(ts, sock, joinRef, old, sendFirst)
		return
	}
	if old.count { // a rejoin unsubscribes first; stay right regardless
		ts.counting--
		old, already = subscriber{}, false
	}
	if already && !state {
		sendFirst()
		return
	}
	if !state && ts.started {
		sendFirst()
		ts.subs[sock] = subscriber{joinRef: joinRef}
		return
	}
	if ts.started && ts.pending {
		sendFirst()
		if !old.waiting {
			ts.waiting++
		}
		ts.subs[sock] = subscriber{joinRef: joinRef, waiting: true}
		return
	}
	if old.waiting {
		ts.waiting--
	}
	if s.testHookSnapshot != nil {
		s.testHookSnapshot()
	}
	e := s.cfg.Presence
	e.Snapshot(&ts.snap, topic)
	sendFirst()
	if ts.started && ts.snap.Cursor != ts.cursor {
		e.ChangesBetween(&ts.changes, topic, ts.cursor, ts.snap.Cursor)
		if ts.changes.Full {
			// The history no longer reaches back: everyone resyncs.
			ts.cursor = ts.changes.Next
			ts.subs[sock] = subscriber{joinRef: joinRef, waiting: state}
			if state {
				ts.waiting++
			}
			s.resync(ts, ts.changes.Joins)
			return
		}
		s.sendDiff(ts)
	}
	if !ts.started {
		ts.roster.set(ts.snap.Entries)
	}
	ts.cursor, ts.started = ts.snap.Cursor, true
	ts.subs[sock] = subscriber{joinRef: joinRef, waiting: state}
	if state {
		ts.waiting++
		s.sendWaitingStates(ts, ts.snap.Entries)
	}
}

// subscribeCount is subscribe for a count-mode socket. The caller holds
// ts.mu.
func (s *Server) subscribeCount(ts *topicState, sock *Socket, joinRef phx.Ref, old subscriber, sendFirst func()) {
	if old.waiting { // a rejoin unsubscribes first; stay right regardless
		ts.waiting--
	}
	if !ts.started {
		// The diffs of full-mode subscribers to come start here.
		s.cfg.Presence.Snapshot(&ts.snap, ts.name)
		ts.roster.set(ts.snap.Entries)
		ts.cursor, ts.started = ts.snap.Cursor, true
	}
	sendFirst()
	keys, entries := s.countKeys(ts.name)
	s.stats.presenceCounts.Add(1)
	sock.enqueue(countFrame(joinRef, ts.name, keys, entries))
	if !old.count {
		ts.counting++
	}
	ts.subs[sock] = subscriber{joinRef: joinRef, count: true, keys: keys, entries: entries, sent: time.Now()}
}

func (s *Server) unsubscribe(topic string, sock *Socket) {
	ts := s.lockState(topic)
	defer ts.mu.Unlock()
	if ts.subs[sock].waiting {
		ts.waiting--
	}
	if ts.subs[sock].count {
		ts.counting--
	}
	delete(ts.subs, sock)
	s.release(ts)
	s.clusterUnsubscribe(topic)
}

// presenceChanged tells the cluster, if any, that this server's presence
// in topic changed, and schedules a presence_diff for topic.
func (s *Server) presenceChanged(topic string) {
	s.clusterPresenceChanged(topic)
	s.schedulePresenceDiff(topic)
}

// schedulePresenceDiff schedules a presence_diff for topic, unless one is
// due, and the topic's presence_count round (countChanged); alone, for a
// change that came through the cluster.
func (s *Server) schedulePresenceDiff(topic string) {
	ts := s.lockState(topic)
	defer ts.mu.Unlock()
	// Counts go out on the first change after a quiet window, not a
	// window later; within a window they wait for its end.
	s.countChanged(ts)
	if ts.pending || len(ts.subs) == 0 {
		s.release(ts)
		return
	}
	ts.pending = true
	time.AfterFunc(s.cfg.PresenceWindow, func() { s.flush(ts) })
}

// flush broadcasts what changed in a topic since its cursor: the
// presence_diff and the presence_state of the sockets that wait for one.
// Count-mode sockets have rounds of their own (countChanged).
func (s *Server) flush(ts *topicState) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.pending = false
	if ts.dead || !ts.started || len(ts.subs) == 0 {
		s.release(ts)
		return
	}
	s.flushDiff(ts)
}

// flushDiff is flush's presence_diff and presence_state part. The caller
// holds ts.mu.
func (s *Server) flushDiff(ts *topicState) {
	e := s.cfg.Presence
	if ts.waiting == 0 {
		e.ChangesSince(&ts.changes, ts.name, ts.cursor)
		ts.cursor = ts.changes.Next
		if ts.changes.Full {
			s.resync(ts, ts.changes.Joins)
			return
		}
		s.sendDiff(ts)
		return
	}
	// Some sockets wait for presence_state: everyone moves to a snapshot's
	// cursor, the others by a diff, they by the snapshot itself.
	e.Snapshot(&ts.snap, ts.name)
	if ts.snap.Cursor != ts.cursor {
		e.ChangesBetween(&ts.changes, ts.name, ts.cursor, ts.snap.Cursor)
		if ts.changes.Full {
			ts.cursor = ts.changes.Next
			s.resync(ts, ts.changes.Joins)
			return
		}
		s.sendDiff(ts)
	}
	ts.cursor = ts.snap.Cursor
	s.sendWaitingStates(ts, ts.snap.Entries)
}

// sendDiff broadcasts ts.changes as presence_diff, if it holds anything.
// The caller holds ts.mu.
func (s *Server) sendDiff(ts *topicState) {
	s.sendDiffEntries(ts, ts.changes.Joins, ts.changes.Leaves)
	ts.roster.apply(ts.changes.Joins, ts.changes.Leaves)
}

// sendDiffEntries broadcasts a presence_diff to the subscribers that are
// not waiting for presence_state, if it holds anything: encoded once, the
// same bytes for all. The caller holds ts.mu.
func (s *Server) sendDiffEntries(ts *topicState, joins, leaves []engine.Entry) {
	if len(joins) == 0 && len(leaves) == 0 || len(ts.subs) == ts.waiting+ts.counting {
		return // nothing to say, or nobody to say it to
	}
	payload := phx.AppendPresenceDiff(nil, joins, leaves)
	frame := newFrame(phx.Ref{}, phx.Ref{}, ts.name, "presence_diff", payload)
	s.stats.presenceDiffs.Add(1)
	for sock, sub := range ts.subs {
		if !sub.waiting && !sub.count {
			sock.enqueue(frame)
		}
	}
}

// resync brings the subscribers to entries, a full state, when the history
// no longer reaches back to their cursor: those that were told of the topic
// get the difference from the roster as one presence_diff, and those that
// wait get a presence_state. The caller holds ts.mu.
func (s *Server) resync(ts *topicState, entries []engine.Entry) {
	joins, leaves := ts.roster.diffTo(entries)
	s.sendDiffEntries(ts, joins, leaves)
	s.sendWaitingStates(ts, entries)
}

// newFrame returns a frame of its own, allocated once: it has room for the
// frame unless the topic, event or refs need escapes.
func newFrame(joinRef, ref phx.Ref, topic, event string, payload []byte) []byte {
	n := len(payload) + len(topic) + len(event) + len(joinRef.S) + len(ref.S) + 32
	return phx.AppendFrame(make([]byte, 0, n), joinRef, ref, topic, event, payload)
}

// sendWaitingStates pushes presence_state to the subscribers that wait for
// it: the payload is encoded once, and framed with each one's join ref.
// The caller holds ts.mu.
func (s *Server) sendWaitingStates(ts *topicState, entries []engine.Entry) {
	if ts.waiting == 0 {
		return
	}
	payload := phx.AppendPresenceState(nil, entries)
	for sock, sub := range ts.subs {
		if !sub.waiting {
			continue
		}
		frame := newFrame(sub.joinRef, phx.Ref{}, ts.name, "presence_state", payload)
		s.stats.presenceStates.Add(1)
		sock.enqueue(frame)
		ts.subs[sock] = subscriber{joinRef: sub.joinRef}
	}
	ts.waiting = 0
}

// broadcast sends an event to a topic's subscribers, except one.
func (s *Server) broadcast(topic, event string, payload []byte, except *Socket) {
	ts := s.lockState(topic)
	defer ts.mu.Unlock()
	if len(ts.subs) > 0 {
		frame := newFrame(phx.Ref{}, phx.Ref{}, topic, event, payload)
		for sock := range ts.subs {
			if sock != except {
				sock.enqueue(frame)
			}
		}
	}
	s.release(ts)
}
