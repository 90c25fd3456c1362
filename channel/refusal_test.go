package channel

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Connections refused by Connect, the origin check or the serializer
// version get their status, and are counted by kind and logged.
func TestConnectionRefusalsCountedAndLogged(t *testing.T) {
	ts, log := newLoggedServer(t)
	dial := func(params url.Values, origin string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
		if origin != "" {
			opts.HTTPHeader.Set("Origin", origin)
		}
		conn, resp, err := websocket.Dial(ctx, ts.url+"?"+params.Encode(), opts)
		if err == nil {
			conn.CloseNow()
			t.Fatalf("dial %v %q was accepted", params, origin)
		}
		return resp.StatusCode
	}
	if code := dial(url.Values{"token": {"bad"}}, ""); code != http.StatusForbidden {
		t.Errorf("refused by Connect: %d, want 403", code)
	}
	if code := dial(url.Values{"user": {"a"}}, "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("refused by the origin check: %d, want 403", code)
	}
	if code := dial(url.Values{"user": {"a"}, "vsn": {"1.0.0"}}, ""); code != http.StatusBadRequest {
		t.Errorf("refused for its version: %d, want 400", code)
	}
	counts := refusalCounts(ts.srv.Stats())
	for _, want := range []string{"connect/refused", "origin/origin", "version/unsupported_version"} {
		if counts[want] != 1 {
			t.Errorf("refusal %s counted %d times, want 1 (all: %v)", want, counts[want], counts)
		}
	}
	logged := log.String()
	for _, want := range []string{`kind=connect reason=refused`, `kind=origin`, `evil.example`, `kind=version`, `bad token`} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q:\n%s", want, logged)
		}
	}
}

// A client that makes the server refuse it again and again, with text of
// its choosing, gets a few log lines a second: its text quoted and cut,
// and a count of the lines held back.
func TestRefusalLogsCannotBeFlooded(t *testing.T) {
	ts, log := newLoggedServer(t)
	c := ts.dial("noisy")
	topic := "admin:" + strings.Repeat("x\ntime=forged level=ERROR ", 400)
	const n = 150 // within the rate limit's burst
	start := time.Now()
	for i := range n {
		c.reply(c.push(fmt.Sprint(i+1), topic, "phx_join", `{}`))
	}
	elapsed := time.Since(start)
	if got := refusalCounts(ts.srv.Stats())["join/unmatched topic"]; got != n {
		t.Fatalf("%d refusals counted, want %d", got, n)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if most := logBurst * (int(elapsed/logWindow) + 2); len(lines) > most {
		t.Fatalf("%d log lines for %d refusals in %v, want at most %d", len(lines), n, elapsed, most)
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "time=2") || len(line) > 400 {
			t.Fatalf("a log line not cut or forged by the client's text:\n%s", line)
		}
	}
	// Once the flood stops, what was held back is logged as a count: the
	// lines and the counts add up to every refusal.
	waitWithin(t, 3*time.Second, "the count of the refusals not logged", func() bool {
		return loggedRefusals(log.String()) == n
	})
}

// loggedRefusals adds up the refusal lines in a log and the refusals they
// say were held back.
func loggedRefusals(log string) int {
	total := 0
	for line := range strings.Lines(log) {
		if strings.Contains(line, `msg="channel: refused"`) {
			total++
		}
		if _, after, ok := strings.Cut(line, "suppressed="); ok {
			var k int
			fmt.Sscan(after, &k)
			total += k
		}
	}
	return total
}

func TestRefusalCounterAdmit(t *testing.T) {
	var c refusalCounter
	t0 := time.Unix(1000, 0)
	for i := range logBurst {
		if ok, _, _ := c.admit(t0); !ok {
			t.Fatalf("line %d of a window refused", i)
		}
	}
	for i := range 5 {
		ok, _, flush := c.admit(t0.Add(logWindow / 2))
		if ok {
			t.Fatal("a line past the burst admitted")
		}
		if i == 0 && flush != logWindow/2 {
			t.Fatalf("first line held back: flush in %v, want at the window's end, %v", flush, logWindow/2)
		}
		if i > 0 && flush != 0 {
			t.Fatalf("line %d held back asks for another flush", i)
		}
	}
	if ok, suppressed, _ := c.admit(t0.Add(logWindow)); !ok || suppressed != 5 {
		t.Fatalf("first line of the next window: %v, suppressed %d; want true, 5", ok, suppressed)
	}
	if n := c.takeSuppressed(); n != 0 {
		t.Fatalf("a flush after the count was logged finds %d", n)
	}
	for range 3 {
		c.admit(t0.Add(logWindow + logWindow/4))
	}
	if n := c.takeSuppressed(); n != 1 {
		t.Fatalf("the flush finds %d held back, want 1", n)
	}
}

// Reasons a Join or Handler makes up are counted apart only up to a bound;
// the rest count as "other".
func TestRefusalReasonsAreBounded(t *testing.T) {
	var r refusals
	for i := range 3 * maxRefusalReasons {
		r.counter(RefusedJoin, fmt.Sprint("reason ", i)).n.Add(1)
	}
	snap := r.snapshot()
	var total, other int64
	for _, c := range snap {
		total += c.Count
		if c.Reason == "other" {
			other = c.Count
		}
	}
	if len(snap) > maxRefusalReasons+1 || total != 3*maxRefusalReasons || other != 2*maxRefusalReasons {
		t.Fatalf("%d reasons, %d counted, %d other; want at most %d reasons, %d counted, %d other",
			len(snap), total, other, maxRefusalReasons+1, 3*maxRefusalReasons, 2*maxRefusalReasons)
	}
}

// A long reason is counted, and labelled, by its first 64 bytes.
func TestLongRefusalReasonsAreCut(t *testing.T) {
	var r refusals
	long := strings.Repeat("é", 100)
	r.counter(RefusedJoin, long).n.Add(1)
	r.counter(RefusedJoin, long+"more").n.Add(1)
	snap := r.snapshot()
	if len(snap) != 1 || snap[0].Count != 2 || len(snap[0].Reason) > maxLoggedText || !strings.HasPrefix(long, snap[0].Reason) {
		t.Fatalf("refusals %+v; want one reason, the first %d bytes of the long one", snap, maxLoggedText)
	}
}
