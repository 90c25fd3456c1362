package channel

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestBucket(t *testing.T) {
	const sec = int64(time.Second)
	var b bucket
	now := int64(1)
	for i := range 5 {
		if v := b.take(now, 1, 5); v != allowed {
			t.Fatalf("take %d of a full bucket of 5: %v", i, v)
		}
	}
	if v := b.take(now, 1, 5); v != limited {
		t.Fatalf("take from an empty bucket: %v, want limited", v)
	}
	now += 2 * sec // refills 2, back to 1 after the overdraft of 1
	if v := b.take(now, 1, 5); v != allowed {
		t.Fatalf("take after a refill: %v, want allowed", v)
	}
	for i := range 4 {
		if v := b.take(now, 1, 5); v != limited {
			t.Fatalf("overdraft %d: %v, want limited", i+1, v)
		}
	}
	if v := b.take(now, 1, 5); v != overdrawn {
		t.Fatalf("an overdraft of the whole burst: %v, want overdrawn", v)
	}
	now += 100 * sec
	if v := b.take(now, 1, 5); v != allowed || b.tokens != 4 {
		t.Fatalf("after a long pause: %v with %v tokens, want allowed with 4", v, b.tokens)
	}
}

// A socket that floods at 10,000 events a second has at most a burst and
// the rate's worth of events run, gets rate_limited replies, and is closed
// with StatusRateLimited; another socket's heartbeats meanwhile come back
// as fast as ever. With the default limit the flood ends within 50 ms;
// with a burst of 4,000 it lasts most of a second, half run, half refused.
func TestRateLimitFlood(t *testing.T) {
	t.Run("default", func(t *testing.T) { testRateLimitFlood(t, 0) })
	t.Run("burst 4000", func(t *testing.T) { testRateLimitFlood(t, 4000) })
}

func testRateLimitFlood(t *testing.T, burst int) {
	var handled atomic.Int64
	ts := newTestServer(t, func(c *Config) {
		c.MaxEventsBurst = burst
		c.Channels[0].Handlers["count"] = func(s *Socket, topic string, _ json.RawMessage) (any, error) {
			handled.Add(1)
			return nil, nil
		}
	})
	rate, burst := ts.srv.cfg.MaxEventsPerSecond, ts.srv.cfg.MaxEventsBurst
	if rate != DefaultMaxEventsPerSecond || burst == 0 {
		t.Fatalf("limit %d/s, burst %d; want the default rate", rate, burst)
	}
	bystander := ts.dial("bystander")
	bystander.join("room:calm", `{}`)
	flooder := ts.dial("flooder")
	jr := flooder.join("room:flood", `{"no_state":true}`)

	// The flood, in its own goroutine, at 10,000 a second in steps of 1 ms.
	type result struct {
		sent    int
		elapsed time.Duration
	}
	done := make(chan result, 1)
	floodStart := time.Now()
	go func() {
		frame := []byte(fmt.Sprintf(`[%q,"1","room:flood","count",{}]`, jr))
		start := time.Now()
		sent := 0
		for i := range 10_000 {
			if i%10 == 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * 100 * time.Microsecond)))
			}
			if err := flooder.conn.Write(context.Background(), websocket.MessageText, frame); err != nil {
				break // closed by the server
			}
			sent++
		}
		done <- result{sent, time.Since(start)}
	}()
	// Meanwhile the bystander's heartbeats, round trip by round trip.
	var worst time.Duration
	var r result
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		default:
		}
		start := time.Now()
		if status, _ := bystander.reply(bystander.push("", "phoenix", "heartbeat", "{}")); status != "ok" {
			t.Fatalf("bystander's heartbeat: %s", status)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(2 * time.Millisecond) // well under the default rate
	}
	sent, code := r.sent, flooder.closed()
	// The server may run frames later than they were sent, but all of
	// them before it closed the socket: its refills are bounded by now.
	elapsed := time.Since(floodStart)
	if code != StatusRateLimited {
		t.Fatalf("flooder closed with %d, want %d", code, StatusRateLimited)
	}
	allowedMost := int64(burst) + int64(elapsed.Seconds()*float64(rate)) + 1
	if n := handled.Load(); n > allowedMost || n < int64(burst)-1 { // the join took one
		t.Fatalf("%d events handled of %d sent in %v; want %d to %d", n, sent, elapsed, burst-1, allowedMost)
	}
	counts := refusalCounts(ts.srv.Stats())
	if counts["event/rate_limited"] < int64(burst)-1 || counts["event/rate_limited_closed"] != 1 {
		t.Fatalf("refusals %v; want about a burst of event/rate_limited and one event/rate_limited_closed", counts)
	}
	if worst > time.Second {
		t.Fatalf("the bystander's slowest heartbeat took %v during the flood", worst)
	}
	bystander.reply(bystander.push("", "phoenix", "heartbeat", "{}")) // still connected
	t.Logf("%d sent in %v, closed after %v, %d handled; closed with %d; the bystander's slowest heartbeat %v", sent, r.elapsed, elapsed, handled.Load(), code, worst)
}

// A socket past its rate gets rate_limited replies and its heartbeats
// answered, and is closed once it overdrew a whole burst.
func TestRateLimitRepliesAndHeartbeats(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxEventsPerSecond, c.MaxEventsBurst = 1, 10 })
	c := ts.dial("eager")
	jr := c.join("room:r", `{"no_state":true}`) // 1 token
	okCount := 0
	for {
		status, resp := c.reply(c.push(jr, "room:r", "echo", `{}`))
		if status == "error" {
			if string(resp) != `{"reason":"rate_limited"}` {
				t.Fatalf("event past the burst: %s %s, want error rate_limited", status, resp)
			}
			break
		}
		// 9 fit in the burst; a stalled machine may refill a few more.
		if okCount++; okCount > 15 {
			t.Fatalf("%d events ok with a burst of 10 at 1 a second", okCount)
		}
	}
	if okCount < 9 {
		t.Fatalf("rate_limited after %d events, want at least the burst's 9", okCount)
	}
	if status, resp := c.reply(c.push("", "phoenix", "heartbeat", `{}`)); status != "ok" {
		t.Fatalf("heartbeat past the burst: %s %s, want ok", status, resp)
	}
	for range 100 { // the overdraft reaches the burst within about 8 more
		if err := c.conn.Write(context.Background(), websocket.MessageText, []byte(`[null,null,"room:r","echo",{}]`)); err != nil {
			break
		}
	}
	if code := c.closed(); code != StatusRateLimited {
		t.Fatalf("closed with %d, want %d", code, StatusRateLimited)
	}
}

// A negative MaxEventsPerSecond turns the limit off.
func TestRateLimitOff(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxEventsPerSecond, c.MaxEventsBurst = -1, 5 })
	c := ts.dial("free")
	jr := c.join("room:r", `{"no_state":true}`)
	for i := range 50 {
		if status, resp := c.reply(c.push(jr, "room:r", "echo", `{}`)); status != "ok" {
			t.Fatalf("event %d with no limit: %s %s", i, status, resp)
		}
	}
}

// refusalCounts returns Stats.Refusals as "kind/reason" counts.
func refusalCounts(st Stats) map[string]int64 {
	m := map[string]int64{}
	for _, r := range st.Refusals {
		m[r.Kind+"/"+r.Reason] = r.Count
	}
	return m
}
