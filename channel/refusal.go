package channel

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// What a refusal refused: the kinds of RefusalCount.
const (
	RefusedConnect = "connect" // Config.Connect returned an error: 403
	RefusedOrigin  = "origin"  // the browser's Origin is not allowed: 403
	RefusedVersion = "version" // a serializer other than 2.x: 400
	RefusedUpgrade = "upgrade" // not a WebSocket handshake websocket.Accept takes
	RefusedJoin    = "join"    // a phx_join answered with an error
	RefusedEvent   = "event"   // any other frame answered with an error
)

// RefusalCount is how many requests of one kind were refused for one
// reason: for joins and events, the reason the client was told
// ("rate_limited", "too_many_topics", "full", a Reason of the app's, ...),
// and "rate_limited_closed" for a socket closed by the rate limit. The
// first 64 bytes of a reason count; past 64 reasons, new ones count as
// "other".
type RefusalCount struct {
	Kind, Reason string
	Count        int64
}

// Refusal logging: at most logBurst lines per reason in each logWindow;
// the lines held back are logged as one count when the window ends.
const (
	logWindow = time.Second
	logBurst  = 3
	// maxRefusalReasons bounds the reasons counted apart, since a Join or
	// Handler may make its own (Reason): later ones count as "other".
	maxRefusalReasons = 64
	// maxLoggedText is how much client-chosen text a log line quotes, and
	// maxLoggedErr how much of an error's text, which may embed some.
	maxLoggedText = 64
	maxLoggedErr  = 256
)

type refusalKey struct{ kind, reason string }

// refusalCounter counts one kind and reason, and limits its log lines.
type refusalCounter struct {
	n atomic.Int64

	mu         sync.Mutex
	window     time.Time // start of the current log window
	logged     int       // lines logged in it
	suppressed int64     // refusals not logged since the last line
	flushing   bool      // a timer will log suppressed at the window's end
}

// refusals counts refusals by kind and reason. Safe for concurrent use; a
// refusal of a known reason allocates nothing unless it is logged.
type refusals struct {
	mu   sync.RWMutex
	byKR map[refusalKey]*refusalCounter

	panics refusalCounter // limits the log lines of callbacks' panics
}

func (r *refusals) counter(kind, reason string) *refusalCounter {
	if len(reason) > maxLoggedText { // a reason a Join or Handler made, perhaps of client text
		n := maxLoggedText
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	k := refusalKey{kind, reason}
	r.mu.RLock()
	c := r.byKR[k]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKR == nil {
		r.byKR = map[refusalKey]*refusalCounter{}
	}
	if c = r.byKR[k]; c != nil {
		return c
	}
	if len(r.byKR) >= maxRefusalReasons {
		k.reason = "other"
		if c = r.byKR[k]; c != nil {
			return c
		}
	}
	c = &refusalCounter{}
	r.byKR[k] = c
	return c
}

// snapshot returns the counts, sorted by kind and reason.
func (r *refusals) snapshot() []RefusalCount {
	r.mu.RLock()
	out := make([]RefusalCount, 0, len(r.byKR))
	for k, c := range r.byKR {
		out = append(out, RefusalCount{Kind: k.kind, Reason: k.reason, Count: c.n.Load()})
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b RefusalCount) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// admit reports whether a refusal may be logged now, and how many were
// held back before it. When it holds back the first of a window, it asks
// the caller to flush: to log what was held back once the window ends,
// so that a flood that stops is still counted in the log.
func (c *refusalCounter) admit(now time.Time) (ok bool, suppressed int64, flush time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.window) >= logWindow {
		c.window, c.logged = now, 0
	}
	if c.logged >= logBurst {
		c.suppressed++
		if !c.flushing {
			c.flushing = true
			flush = c.window.Add(logWindow).Sub(now)
		}
		return false, 0, flush
	}
	c.logged++
	suppressed, c.suppressed = c.suppressed, 0
	return true, suppressed, 0
}

// takeSuppressed returns what was held back and not yet logged, for the
// flush.
func (c *refusalCounter) takeSuppressed() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.suppressed
	c.suppressed, c.flushing = 0, false
	return n
}

// refusal is one refused request, for counting and logging. Client text
// (topic, event, detail) is quoted when logged.
type refusal struct {
	kind, reason string
	remote       string          // the peer's address, for a connection
	socket       engine.SocketID // 0 for a connection
	topic, event string
	detail       string // what else the client sent that was refused: a version, an origin
	err          error  // the cause on the server's side, if any: logged at WARN, the rest at INFO
}

// refuse counts a refusal and logs it, unless its reason has had its
// lines this second; it allocates nothing when it does not log.
func (s *Server) refuse(r refusal) {
	c := s.refusals.counter(r.kind, r.reason)
	c.n.Add(1)
	ok, suppressed, flush := c.admit(time.Now())
	if flush > 0 {
		kind, reason := r.kind, r.reason
		time.AfterFunc(flush, func() {
			if n := c.takeSuppressed(); n > 0 {
				s.log.Info("channel: refusals not logged", "kind", kind, "reason", reason, "suppressed", n)
			}
		})
	}
	if !ok {
		return
	}
	args := []any{"kind", r.kind, "reason", r.reason}
	if r.remote != "" {
		args = append(args, "remote", r.remote)
	}
	if r.socket != 0 {
		args = append(args, "socket", r.socket)
	}
	if r.topic != "" {
		args = append(args, "topic", clientText(r.topic))
	}
	if r.event != "" {
		args = append(args, "event", clientText(r.event))
	}
	if r.detail != "" {
		args = append(args, "detail", clientText(r.detail))
	}
	if r.err != nil {
		args = append(args, "err", quoteCut(r.err.Error(), maxLoggedErr))
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	level := slog.LevelInfo
	if r.err != nil && r.kind != RefusedConnect && r.kind != RefusedUpgrade {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "channel: refused", args...)
}

// clientText returns text a client chose, cut to maxLoggedText bytes and
// quoted, so that it can neither flood a log line nor forge one.
func clientText(s string) string { return quoteCut(s, maxLoggedText) }

// quoteCut quotes s, cut to n bytes on a rune boundary.
func quoteCut(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return strconv.Quote(s[:n]) + "..."
	}
	return strconv.Quote(s)
}

// refuseFrame answers f with an error reply, and counts and logs the
// refusal; err is its cause on the server's side, if any.
func (s *Socket) refuseFrame(f *phx.Frame, kind, reason string, err error) {
	s.srv.refuse(refusal{kind: kind, reason: reason, socket: s.id, topic: f.Topic, event: f.Event, err: err})
	s.replyError(f, reason)
}

// refuseWith answers f with the reason err gives the client (fallback
// for an error of no known kind), as refuseFrame does. The error's text
// is logged only when it was not made for the client: a crash's was
// logged with its stack. A callback that failed because the socket closed
// meanwhile refused nothing: its reply goes nowhere.
func (s *Socket) refuseWith(f *phx.Frame, kind string, err error, fallback string) {
	if errors.Is(err, ErrClosed) {
		return
	}
	reason, forClient := reasonFor(err, fallback)
	if forClient || errors.Is(err, errCrashed) {
		err = nil
	}
	s.refuseFrame(f, kind, reason, err)
}

// logPanic logs a callback's panic with its stack, at most logBurst a
// second, since a client may trigger the same panic again and again.
func (s *Server) logPanic(socket engine.SocketID, value any, stack []byte) {
	ok, suppressed, flush := s.refusals.panics.admit(time.Now())
	if flush > 0 {
		time.AfterFunc(flush, func() {
			if n := s.refusals.panics.takeSuppressed(); n > 0 {
				s.log.Error("channel: callback panics not logged", "suppressed", n)
			}
		})
	}
	if !ok {
		return
	}
	s.log.Error("channel: callback panicked", "socket", socket, "panic", value, "stack", string(stack), "suppressed", suppressed)
}
