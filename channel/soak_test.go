package channel

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
	"go.uber.org/goleak"
)

var (
	soakClients  = flag.Int("soak.clients", 2000, "concurrent WebSocket clients in TestSoak")
	soakDuration = flag.Duration("soak.duration", 3*time.Second, "how long TestSoak churns")
	soakRooms    = flag.Int("soak.rooms", 64, "topics the TestSoak clients spread over")
	soakPause    = flag.Duration("soak.pause", 225*time.Millisecond, "mean pause between a TestSoak client's actions")
)

// phxState is a client's presence for one topic, kept the way the
// official client keeps it: key -> metas, each meta with its phx_ref.
type phxState map[string][]map[string]any

func ref(m map[string]any) string { s, _ := m["phx_ref"].(string); return s }

// decodeState reads Phoenix's {"key":{"metas":[...]}} into a phxState.
func decodeState(raw json.RawMessage) (phxState, error) {
	var wire map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, err
	}
	st := phxState{}
	for k, v := range wire {
		st[k] = v.Metas
	}
	return st, nil
}

// syncDiff applies a presence_diff as phoenix.js's Presence.syncDiff does.
func (st phxState) syncDiff(joins, leaves phxState) {
	for key, metas := range joins {
		joined := map[string]bool{}
		for _, m := range metas {
			joined[ref(m)] = true
		}
		merged := []map[string]any{}
		for _, m := range st[key] {
			if !joined[ref(m)] {
				merged = append(merged, m)
			}
		}
		st[key] = append(merged, metas...)
	}
	for key, metas := range leaves {
		gone := map[string]bool{}
		for _, m := range metas {
			gone[ref(m)] = true
		}
		kept := st[key][:0]
		for _, m := range st[key] {
			if !gone[ref(m)] {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			delete(st, key)
		} else {
			st[key] = kept
		}
	}
}

// canonical renders a state so that two states compare as strings: keys
// sorted, metas sorted by ref, phx_ref_prev dropped.
func (st phxState) canonical() string {
	var keys []string
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		var metas []string
		for _, m := range st[k] {
			c := map[string]any{}
			for f, v := range m {
				if f != "phx_ref_prev" {
					c[f] = v
				}
			}
			j, _ := json.Marshal(c)
			metas = append(metas, string(j))
		}
		sort.Strings(metas)
		fmt.Fprintf(&b, "%s=%v;", k, metas)
	}
	return b.String()
}

// soakClient is one connection of the soak: it follows presence in the
// topics it joined.
type soakClient struct {
	conn *websocket.Conn
	mu   sync.Mutex
	// state and the join_ref it belongs to, per topic; final is the
	// presence_state that answered "sync".
	state     map[string]phxState
	joinRefs  map[string]string
	final     map[string]phxState
	fullSyncs int
	replies   map[string]bool // refs of heartbeat replies seen
	ref       atomic.Int64
	errs      chan error
	done      chan struct{}
}

// gone reports whether the connection has ended.
func (c *soakClient) gone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *soakClient) send(joinRef, topic, event, payload string) error {
	r := c.ref.Add(1)
	jr := "null"
	if joinRef != "" {
		jr = `"` + joinRef + `"`
	}
	return c.conn.Write(context.Background(), websocket.MessageText,
		fmt.Appendf(nil, `[%s,"%d",%q,%q,%s]`, jr, r, topic, event, payload))
}

func (c *soakClient) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		f, err := phx.ParseFrame(data)
		if err != nil {
			c.errs <- fmt.Errorf("bad frame from server: %q", data)
			return
		}
		c.mu.Lock()
		if f.Topic == "phoenix" && f.Event == "phx_reply" {
			c.replies[f.Ref.S] = true
		}
		switch f.Event {
		case "presence_state":
			st, err := decodeState(f.Payload)
			if err != nil {
				c.errs <- fmt.Errorf("bad presence_state %s: %v", f.Payload, err)
			}
			if _, sync := c.final[f.Topic]; sync {
				c.final[f.Topic] = st
			} else if !f.JoinRef.Valid || f.JoinRef.S == c.joinRefs[f.Topic] {
				// What phoenix.js does: take the new state. A null join_ref
				// is a resync broadcast to every subscriber.
				c.fullSyncs++
				c.state[f.Topic] = st
			}
		case "presence_diff":
			if _, ok := c.state[f.Topic]; ok {
				var d struct{ Joins, Leaves json.RawMessage }
				json.Unmarshal(f.Payload, &d)
				joins, err1 := decodeState(d.Joins)
				leaves, err2 := decodeState(d.Leaves)
				if err1 != nil || err2 != nil {
					c.errs <- fmt.Errorf("bad presence_diff %s", f.Payload)
				}
				c.state[f.Topic].syncDiff(joins, leaves)
			}
		}
		c.mu.Unlock()
	}
}

// soakScale returns TestSoak's clients, churn time and topics: the flags'
// but under the race detector, which makes each client some ten times
// dearer, those not set on the command line are 300 clients churning
// 1 s over 16 topics, as many clients to a topic as the defaults put;
// the run without the detector has the full counts. The clients stay
// within the detector's 8128 goroutines (four per client) however set.
func soakScale() (clients int, churn time.Duration, rooms int) {
	clients, churn, rooms = *soakClients, *soakDuration, *soakRooms
	if !raceEnabled {
		return clients, churn, rooms
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["soak.clients"] {
		clients = 300
	}
	if !set["soak.duration"] {
		churn = time.Second
	}
	if !set["soak.rooms"] {
		rooms = 16
	}
	return min(clients, 1000), churn, rooms
}

// TestSoak runs thousands of concurrent clients on loopback that join,
// update, leave, rejoin, read presence and drop without a close frame, and
// then checks that every closed socket's presence is gone, that no
// goroutine leaked, and that each remaining client's presence, rebuilt from
// the diffs it received in order, equals a final presence_state.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak skipped in -short mode")
	}
	defer goleak.VerifyNone(t)
	n, dur, rooms := soakScale()
	ts := newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 4 * n})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		c.PresenceWindow = 30 * time.Millisecond
		c.Channels[0].Handlers["sync"] = func(s *Socket, topic string, _ json.RawMessage) (any, error) {
			return NoReply, s.PushPresenceState(topic)
		}
		c.Channels[0].Handlers["get_presence"] = func(s *Socket, topic string, _ json.RawMessage) (any, error) {
			return json.RawMessage(s.Server().Presence().AppendList(nil, topic)), nil
		}
	})
	e := ts.srv.Presence()
	start := time.Now()

	clients := make([]*soakClient, n)
	var dials sync.WaitGroup
	sem := make(chan struct{}, 64)
	var dialErr atomic.Value
	for i := range n {
		dials.Add(1)
		sem <- struct{}{}
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			// Users repeat, so some keys are held by two sockets.
			q := url.Values{"user": {fmt.Sprint("u", i%(n*3/4))}, "vsn": {"2.0.0"}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, ts.url+"?"+q.Encode(), nil)
			if err != nil {
				dialErr.Store(err)
				return
			}
			conn.SetReadLimit(1 << 24)
			c := &soakClient{conn: conn, state: map[string]phxState{}, joinRefs: map[string]string{},
				final: map[string]phxState{}, replies: map[string]bool{}, errs: make(chan error, 4), done: make(chan struct{})}
			go c.read()
			clients[i] = c
		}()
	}
	dials.Wait()
	if err := dialErr.Load(); err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Logf("%d clients connected in %s", n, time.Since(start).Round(time.Millisecond))

	join := func(c *soakClient, topic string) {
		r := fmt.Sprint(c.ref.Add(1))
		c.mu.Lock()
		c.joinRefs[topic] = r
		c.state[topic] = phxState{}
		c.mu.Unlock()
		c.conn.Write(context.Background(), websocket.MessageText,
			fmt.Appendf(nil, `[%q,%q,%q,"phx_join",{"meta":"{\"v\":0}"}]`, r, r, topic))
	}

	// Churn: each client acts at random until the deadline; about 30% of
	// them drop without a close frame along the way.
	meanPause := *soakPause
	dropChance := 0.3 * float64(meanPause) / float64(dur)
	var dropped, leaves, updates, reads atomic.Int64
	deadline := time.Now().Add(dur)
	var churn sync.WaitGroup
	for i, c := range clients {
		churn.Add(1)
		go func() {
			defer churn.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			topics := []string{fmt.Sprint("room:", rng.IntN(rooms)), fmt.Sprint("room:", rng.IntN(rooms))}
			for _, tp := range topics {
				join(c, tp)
			}
			for v := 1; time.Now().Before(deadline); v++ {
				time.Sleep(meanPause/4 + time.Duration(rng.Int64N(int64(meanPause)*3/2)))
				tp := topics[rng.IntN(len(topics))]
				c.mu.Lock()
				jr := c.joinRefs[tp]
				c.mu.Unlock()
				if rng.Float64() < dropChance {
					dropped.Add(1)
					c.conn.CloseNow() // no close frame
					return
				}
				switch r := rng.IntN(100); {
				case r < 20:
					leaves.Add(1)
					c.send(jr, tp, "phx_leave", "{}")
					join(c, tp)
				case r < 70:
					updates.Add(1)
					c.send(jr, tp, "update", fmt.Sprintf(`{"v":%d}`, v))
				case r < 85:
					reads.Add(1)
					c.send(jr, tp, "get_presence", "{}")
				}
			}
		}()
	}
	churn.Wait()
	t.Logf("churned for %s: %d updates, %d leave+rejoins, %d reads, %d abrupt drops",
		dur, updates.Load(), leaves.Load(), reads.Load(), dropped.Load())

	// Let the last diffs go out, then ask every live client's topics for
	// a final presence_state, and compare.
	// Clients still reading are live; the server's count must come down
	// to them once the dropped ones are cleaned up.
	liveCount := func() int64 {
		k := int64(0)
		for _, c := range clients {
			if !c.gone() {
				k++
			}
		}
		return k
	}
	waitWithin(t, time.Minute, "dropped sockets cleaned up", func() bool { return ts.srv.Stats().Sockets == liveCount() })
	// A heartbeat round trip from every live client: once answered, the
	// server has handled everything the client sent, and the client has
	// read every frame queued for it before the reply.
	roundTrip := func(what string) {
		var barrier []*soakClient
		for _, c := range clients {
			if c.gone() {
				continue
			}
			c.send("", "phoenix", "heartbeat", "{}")
			barrier = append(barrier, c)
		}
		waitWithin(t, time.Minute, what, func() bool {
			for _, c := range barrier {
				if c.gone() {
					continue
				}
				c.mu.Lock()
				ok := c.replies[fmt.Sprint(c.ref.Load())]
				c.mu.Unlock()
				if !ok {
					return false
				}
			}
			return true
		})
	}
	roundTrip("every client's frames handled")
	// Then the last presence windows close, and every client reads what
	// they sent before it asks for its final presence_state.
	waitWithin(t, time.Minute, "no presence_diff or presence_state due", ts.srv.presenceSettled)
	roundTrip("every presence frame read")
	if ts.srv.Stats().Sockets != liveCount() {
		t.Fatalf("server holds %d sockets, %d clients live", ts.srv.Stats().Sockets, liveCount())
	}
	var live []*soakClient
	for _, c := range clients {
		if c.gone() {
			continue
		}
		live = append(live, c)
		c.mu.Lock()
		for tp, jr := range c.joinRefs {
			c.final[tp] = nil
			c.mu.Unlock()
			c.send(jr, tp, "sync", "{}")
			c.mu.Lock()
		}
		c.mu.Unlock()
	}
	waitWithin(t, time.Minute, "final presence_state everywhere", func() bool {
		for _, c := range live {
			if c.gone() {
				continue // dropped by the server as slow while draining
			}
			c.mu.Lock()
			for _, st := range c.final {
				if st == nil {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
		return true
	})
	checked := 0
	for _, c := range live {
		if c.gone() {
			continue
		}
		c.mu.Lock()
		for tp, final := range c.final {
			if got, want := c.state[tp].canonical(), final.canonical(); got != want {
				c.mu.Unlock()
				t.Fatalf("%s: presence rebuilt from diffs differs from presence_state:\n%s", tp, stateDiff(c.state[tp], final))
			}
			checked++
		}
		c.mu.Unlock()
		select {
		case err := <-c.errs:
			t.Fatal(err)
		default:
		}
	}
	syncs := 0
	for _, c := range live {
		syncs += c.fullSyncs
	}
	t.Logf("%d live clients (%d dropped by the server as slow), %d topic views equal to the final presence_state; %d presence_state messages applied",
		len(live), ts.srv.Stats().Drops, checked, syncs)

	var closing sync.WaitGroup
	for _, c := range live {
		closing.Add(1)
		go func() {
			defer closing.Done()
			c.conn.Close(websocket.StatusNormalClosure, "")
		}()
	}
	closing.Wait()
	waitWithin(t, time.Minute, "every socket closed", func() bool { return ts.srv.Stats().Sockets == 0 })
	if e.Len() != 0 {
		t.Fatalf("Len() = %d after every socket closed", e.Len())
	}
	for _, c := range clients {
		<-c.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
	ts.http.Close()
	time.Sleep(100 * time.Millisecond) // presence timers of the last windows
	st := ts.srv.Stats()
	t.Logf("stats: %+v; total %s", st, time.Since(start).Round(time.Millisecond))
}

// stateDiff describes the keys on which two states differ.
func stateDiff(got, want phxState) string {
	var b strings.Builder
	for k := range want {
		if g, w := (phxState{k: got[k]}).canonical(), (phxState{k: want[k]}).canonical(); g != w {
			fmt.Fprintf(&b, "  %s: rebuilt %v, state %v\n", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "  %s: rebuilt %v, absent from state\n", k, got[k])
		}
	}
	return b.String()
}

// presenceSettled reports whether no topic has a presence_diff due or a
// socket waiting for its presence_state.
func (s *Server) presenceSettled() bool {
	s.mu.Lock()
	topics := make([]*topicState, 0, len(s.topics))
	for _, ts := range s.topics {
		topics = append(topics, ts)
	}
	s.mu.Unlock()
	for _, ts := range topics { // ts.mu is taken before s.mu, never after
		ts.mu.Lock()
		busy := ts.pending || ts.waiting > 0
		ts.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}
