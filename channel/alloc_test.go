package channel

import (
	"bytes"
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHeartbeatAllocations counts the allocations of a heartbeat's round
// trip on a live loopback socket, client and server together: the server's
// reply frame is the one allocation allowed.
func TestHeartbeatAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	// Round trips back to back are far past the default rate limit: a
	// limit no test reaches keeps its bucket in the measured path.
	ts := newTestServer(t, func(c *Config) { c.MaxEventsPerSecond = 1 << 30 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ts.url+"?"+url.Values{"user": {"hb"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	heartbeat := []byte(`[null,"7","phoenix","heartbeat",{}]`)
	want := []byte(`[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	var r reader
	roundTrip := func() {
		if err := conn.Write(context.Background(), websocket.MessageText, heartbeat); err != nil {
			t.Fatal(err)
		}
		_, got, err := r.read(conn)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("reply %s, %v; want %s", got, err, want)
		}
	}
	for range 100 {
		roundTrip() // warm up buffers, timers and the parser
	}
	n := testing.AllocsPerRun(500, roundTrip)
	t.Logf("%v allocations per heartbeat round trip", n)
	if n > 1 {
		t.Fatalf("%v allocations per heartbeat, want at most 1", n)
	}
}

// queued returns the frames waiting in a socket's queue.
func queued(s *Socket) [][]byte {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return append([][]byte(nil), s.queue...)
}

// TestRateLimitedAllocations: an event refused by the rate limit costs
// its reply frame and nothing more, so a flood cannot make the server
// allocate for its refusals.
func TestRateLimitedAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	const burst = 200
	ts := newTestServer(t, func(c *Config) { c.MaxEventsPerSecond, c.MaxEventsBurst = 1, 10*burst })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ts.url+"?"+url.Values{"user": {"rl"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	event := []byte(`[null,"7","room:x","echo",{}]`) // not joined: refused, or rate limited
	limited := []byte(`[null,"7","room:x","phx_reply",{"status":"error","response":{"reason":"rate_limited"}}]`)
	var r reader
	var got []byte
	roundTrip := func() {
		if err := conn.Write(context.Background(), websocket.MessageText, event); err != nil {
			t.Fatal(err)
		}
		if _, got, err = r.read(conn); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 * burst { // the burst
		roundTrip()
	}
	for range 100 {
		roundTrip() // warm up
	}
	if !bytes.Equal(got, limited) {
		t.Fatalf("reply %s, want %s", got, limited)
	}
	n := testing.AllocsPerRun(500, roundTrip)
	t.Logf("%v allocations per rate-limited event", n)
	if n > 1 || !bytes.Equal(got, limited) {
		t.Fatalf("%v allocations per rate-limited event (last reply %s), want at most 1", n, got)
	}
}
