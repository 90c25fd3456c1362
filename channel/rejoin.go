package channel

// A phx_join for a topic the socket has already joined replaces the old
// join, as in Phoenix: the old join gets phx_close (with its join_ref) and
// its Leave runs, then the new join runs as any join does. Presence is
// kept steady across the two: the old join's entry stays while the new
// Join runs, so that a Join that tracks the same key and meta changes
// nothing and observers receive no presence frame; other meta is one
// update. A new Join that fails or tracks nothing removes the entry.

// endForRejoin ends the socket's join of topic for a new one, keeping its
// presence; see above.
func (s *Socket) endForRejoin(topic string) {
	srv := s.srv
	s.mu.Lock()
	m := s.joined[topic]
	delete(s.joined, topic)
	s.mu.Unlock()
	srv.unsubscribe(topic, s)
	srv.stats.leaves.Add(1)
	s.enqueue(newFrame(m.joinRef, m.joinRef, topic, "phx_close", nil))
	if c := srv.channelFor(topic); c != nil && c.Leave != nil {
		s.safely(func() { c.Leave(s, topic) })
	}
}

// markTracked notes that the Join running for topic, if any, tracked.
func (s *Socket) markTracked(topic string) {
	s.mu.Lock()
	if s.joining == topic {
		s.tracked = true
	}
	s.mu.Unlock()
}
