package shard

// Internals exported to the external tests of package shard_test, as
// package sync does: the API does not widen.

// Stack is the lock-free free stack.
type Stack = stack

func NewStack(n int) *Stack         { return newStack(n) }
func (s *stack) Push(i int32)       { s.push(i) }
func (s *stack) Pop() (int32, bool) { return s.pop() }

// BeginTopic and EndTopic open and close a topic's write window as a writer
// does, holding the shard lock in between.
func (s *Shard) BeginTopic(topic string, hash uint64) {
	s.mu.Lock()
	s.beginTopic(s.p.topic(s.findTopic(topic, hash)))
}

func (s *Shard) EndTopic(topic string, hash uint64) {
	s.endTopic(s.p.topic(s.findTopic(topic, hash)))
	s.mu.Unlock()
}

// HistorySize is the number of events the ring of each shard holds.
func (p *Pool) HistorySize() uint64 { return p.shards[0].hist.size() }
