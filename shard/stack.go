package shard

import "sync/atomic"

// stack is a lock-free LIFO of indices (a Treiber stack). The head packs a
// 32-bit tag with the top index so that a pop which read a stale next link
// fails its compare-and-swap instead of corrupting the stack (ABA).
type stack struct {
	_    [64]byte
	head atomic.Uint64 // tag<<32 | top+1; top+1 == 0 when empty
	_    [56]byte
	next []atomic.Uint32 // next[i] is the index+1 below i
}

func newStack(n int) *stack { return newStackOf(n, n) }

// newStackOf returns a stack of indices below n that holds 0 to held-1.
func newStackOf(n, held int) *stack {
	s := &stack{next: make([]atomic.Uint32, n)}
	for i := 0; i < held-1; i++ {
		s.next[i].Store(uint32(i + 2))
	}
	if held > 0 {
		s.head.Store(1)
	}
	return s
}

func (s *stack) push(i int32) {
	for {
		h := s.head.Load()
		s.next[i].Store(uint32(h))
		if s.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(i+1)) {
			return
		}
	}
}

func (s *stack) pop() (int32, bool) {
	for {
		h := s.head.Load()
		top := uint32(h)
		if top == 0 {
			return -1, false
		}
		next := s.next[top-1].Load()
		if s.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(next)) {
			return int32(top - 1), true
		}
	}
}
