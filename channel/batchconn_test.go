package channel

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
)

// recordConn records the writes that reach the network.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestBatchConnWritesABatchAtOnce(t *testing.T) {
	rec := &recordConn{}
	c := &batchConn{Conn: rec}
	c.Write([]byte("direct"))
	c.hold()
	for _, s := range []string{"a", "b", "c"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("held write: %d, %v", n, err)
		}
	}
	if len(rec.writes) != 1 {
		t.Fatalf("held writes reached the network: %q", rec.writes)
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("after"))
	if got := strings.Join(rec.writes, "|"); got != "direct|abc|after" {
		t.Fatalf("writes %q, want direct|abc|after", got)
	}
}

// TestBatchConnKeepsOrder: writes from other goroutines during a batch
// leave in the order they were made, and a batch larger than maxHeld goes
// out in pieces of at least maxHeld.
func TestBatchConnKeepsOrder(t *testing.T) {
	rec := &recordConn{}
	c := &batchConn{Conn: rec}
	c.hold()
	var want bytes.Buffer
	var mu sync.Mutex // orders the writes and want alike
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				p := []byte(strings.Repeat(string(rune('a'+g)), 1+i%200))
				mu.Lock()
				c.Write(p)
				want.Write(p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.release()
	if got := strings.Join(rec.writes, ""); got != want.String() {
		t.Fatal("bytes reordered or lost")
	}
	for _, w := range rec.writes[:len(rec.writes)-1] {
		if len(w) < maxHeld {
			t.Fatalf("a piece of %d bytes went out before the batch ended", len(w))
		}
	}
}
