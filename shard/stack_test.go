package shard_test

import (
	"sync"
	"testing"

	"github.com/presencekit/presence/shard"
)

func TestStackIsLIFOAndStartsFull(t *testing.T) {
	s := shard.NewStack(4)
	for want := int32(0); want < 4; want++ {
		if i, ok := s.Pop(); !ok || i != want {
			t.Fatalf("Pop = %d, %v; want %d", i, ok, want)
		}
	}
	if i, ok := s.Pop(); ok {
		t.Fatalf("Pop of an empty stack = %d", i)
	}
	s.Push(2)
	s.Push(0)
	for _, want := range []int32{0, 2} {
		if i, ok := s.Pop(); !ok || i != want {
			t.Fatalf("Pop = %d, %v; want %d", i, ok, want)
		}
	}
	if _, ok := shard.NewStack(0).Pop(); ok {
		t.Fatal("a stack of 0 popped")
	}
}

// TestStackUnderContention pops and pushes from several goroutines; at the
// end every index is in the stack exactly once, so none was lost or handed
// out twice (which an ABA race would do).
func TestStackUnderContention(t *testing.T) {
	const n, goroutines, rounds = 64, 4, 20000
	s := shard.NewStack(n)
	var held [n]int32 // holders per index, checked by each holder
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int32
			for r := range rounds {
				if r%3 != 2 {
					if i, ok := s.Pop(); ok {
						mu.Lock()
						held[i]++
						twice := held[i] > 1
						mu.Unlock()
						if twice {
							t.Errorf("index %d popped while held", i)
							return
						}
						mine = append(mine, i)
					}
					continue
				}
				for _, i := range mine {
					mu.Lock()
					held[i]--
					mu.Unlock()
					s.Push(i)
				}
				mine = mine[:0]
			}
			for _, i := range mine {
				mu.Lock()
				held[i]--
				mu.Unlock()
				s.Push(i)
			}
		}()
	}
	wg.Wait()
	seen := map[int32]bool{}
	for {
		i, ok := s.Pop()
		if !ok {
			break
		}
		if seen[i] || i < 0 || i >= n {
			t.Fatalf("index %d twice or out of range", i)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d indices left in the stack", len(seen), n)
	}
}
