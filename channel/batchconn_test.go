package channel

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
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
// out in pieces that each hold as much as fits.
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
	if len(rec.writes) < 2 {
		t.Fatalf("%d writes for %d bytes", len(rec.writes), want.Len())
	}
	for _, w := range rec.writes[:len(rec.writes)-1] {
		if len(w) <= maxHeld-200 || len(w) > maxHeld { // the writes hold 1 to 200 bytes
			t.Fatalf("a piece of %d bytes went out before the batch ended", len(w))
		}
	}
}

// TestFrameSentWithTheUpgradeRequest: a client may send its first frame
// right behind the upgrade request, in the same packet; net/http may then
// hold it in its buffer when the connection is hijacked, and the frame
// must still be read whole.
func TestFrameSentWithTheUpgradeRequest(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := strings.TrimPrefix(ts.http.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	join := []byte(`["1","1","room:lobby","phx_join",{}]`)
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(join))}, mask[:]...)
	for i, b := range join {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /socket/websocket?vsn=2.0.0&user=early HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(`"phx_reply",{"status":"ok"`)) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		t.Fatalf("response %q", got)
	}
}

func TestBatchConnWritesALargeFrameWithoutCopy(t *testing.T) {
	rec := &recordConn{}
	c := &batchConn{Conn: rec}
	c.hold()
	c.Write([]byte("head"))
	c.Write(make([]byte, maxHeld))
	c.Write([]byte("tail"))
	c.release()
	if len(rec.writes) != 3 || rec.writes[0] != "head" || len(rec.writes[1]) != maxHeld || rec.writes[2] != "tail" {
		t.Fatalf("%d writes", len(rec.writes))
	}
}
