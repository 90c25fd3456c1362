package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// The reconnect grace together with the other edges of a socket's life:
// duplicate joins, the rate limit, Shutdown, stale sockets and Leave
// callbacks.

// dropAndWait closes c with no close frame and waits until the server
// holds its session.
func (ts *testServer) dropAndWait(c *client, held int64) {
	ts.t.Helper()
	c.conn.CloseNow()
	waitFor(ts.t, "the server to hold the session", func() bool { return ts.srv.Stats().HeldSessions == held })
}

// A socket that closed, and whose session another connection resumed
// (which took over its engine id), changes nothing of the resumer's
// presence: an Untrack through the old *Socket is refused.
func TestGraceStaleSocketCannotUntrackTheResumer(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	old := sessionSocket(t, ts, "alice")
	ts.dropAndWait(alice, 1)

	alice = ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	if old.Untrack(graceTestTop) {
		t.Fatal("a closed socket's Untrack removed an entry")
	}
	if n := ts.srv.Presence().Count(graceTestTop); n != 2 {
		t.Fatalf("%d entries, want bob's and alice's", n)
	}
	if err := old.Track(graceTestTop, "alice", []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Track on the closed socket: %v", err)
	}
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
}

// A duplicate phx_join on a connection that resumed a session is a
// Phoenix rejoin as on any other: phx_close to the old join_ref, one
// Leave for it, and no presence frame when the key and meta are the same;
// the grace's end then sends nothing either.
func TestGraceDuplicateJoinOnResumedSession(t *testing.T) {
	const grace = 150 * time.Millisecond
	var leaves atomic.Int64
	ts := newGraceServer(t, grace, func(c *Config) {
		c.Channels[0].Leave = func(*Socket, string) { leaves.Add(1) }
	})
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	ts.dropAndWait(alice, 1)

	alice = ts.dialSession("alice", aliceToken)
	first := alice.join(graceTestTop, `{}`)
	const second = "77"
	alice.sendRaw(`["` + second + `","` + second + `","` + graceTestTop + `","phx_join",{}]`)
	alice.expect("phx_close of the first join", func(f phx.Frame) bool {
		return f.Event == "phx_close" && f.JoinRef.S == first
	})
	if status, _ := alice.reply(second); status != "ok" {
		t.Fatalf("second join: %s", status)
	}
	time.Sleep(2 * grace) // past the grace
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
	if n := leaves.Load(); n != 1 {
		t.Fatalf("%d Leave callbacks, want 1 (the first join's)", n)
	}
	if n := ts.srv.Presence().Count(graceTestTop); n != 3 {
		t.Fatalf("%d entries, want bob's, alice's and carol's", n)
	}
	ref := alice.push(second, graceTestTop, "echo", `{"x":1}`)
	if status, _ := alice.reply(ref); status != "ok" {
		t.Fatalf("event on the second join: %s", status)
	}
}

// A resumed connection that joins its held topic without tracking, then
// joins it again and tracks the same key and meta: presence is steady.
func TestGraceUntrackedJoinThenRejoinOnResumedSession(t *testing.T) {
	ts := newGraceServer(t, 150*time.Millisecond, nil)
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	ts.dropAndWait(alice, 1)

	alice = ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{"no_track":true}`)
	alice.join(graceTestTop, `{}`)
	time.Sleep(300 * time.Millisecond) // past the grace
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
	if n := ts.srv.Presence().Count(graceTestTop); n != 3 {
		t.Fatalf("%d entries, want bob's, alice's and carol's", n)
	}
}

// A socket closed for its rate limit (4429) is closed by the server: it
// leaves at once, and is not held for the grace.
func TestGraceRateLimitedCloseLeavesAtOnce(t *testing.T) {
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.MaxEventsPerSecond, c.MaxEventsBurst = 1, 4 })
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	for range 20 {
		if alice.conn.Write(context.Background(), websocket.MessageText, []byte(`[null,"9","phoenix","heartbeat",{}]`)) != nil {
			break
		}
	}
	if code := alice.closed(); code != StatusRateLimited {
		t.Fatalf("close code %d, want %d", code, StatusRateLimited)
	}
	if _, l := bob.next("alice's leave"); len(l) != 1 {
		t.Fatalf("leaves %v", l)
	}
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldEntries != 0 || st.HeldRefused != 0 {
		t.Fatalf("stats %+v: the rate-limited socket was held", st)
	}
}

// Shutdown while sessions are held, one of them resumed by a live
// connection that has not rejoined all of its topics: every held topic's
// Leave runs once, nothing stays in the engine or the stats, no timer
// fires later, and no goroutine is left.
func TestGraceShutdownWithHeldSessions(t *testing.T) {
	base := runtime.NumGoroutine()
	const grace = 200 * time.Millisecond
	var mu sync.Mutex
	leaves := map[string]int{}
	var ghostPush, ghostBroadcast error
	ts := newGraceServer(t, grace, func(c *Config) {
		c.Channels[0].Leave = func(s *Socket, topic string) {
			user, _ := s.Get("user")
			mu.Lock()
			leaves[user.(string)+" "+topic]++
			ghostPush = s.Push(topic, "bye", nil)
			ghostBroadcast = s.Broadcast(topic, "bye", nil)
			mu.Unlock()
		}
	})
	for _, user := range []string{"alice", "carol"} {
		c := ts.dialSession(user, aliceToken+user)
		c.join("room:a", `{}`)
		c.join("room:b", `{}`)
		ts.dropAndWait(c, map[string]int64{"alice": 1, "carol": 2}[user])
	}
	alice := ts.dialSession("alice", aliceToken+"alice")
	alice.join("room:a", `{}`) // room:b stays held by the resumed session
	if st := ts.srv.Stats(); st.HeldSessions != 1 || st.HeldEntries != 2 || st.Resumes != 1 {
		t.Fatalf("stats %+v before Shutdown", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"alice room:a": 1, "alice room:b": 1, "carol room:a": 1, "carol room:b": 1}
	check := func(when string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(leaves) != len(want) {
			t.Fatalf("%s: Leave callbacks %v, want %v", when, leaves, want)
		}
		for k, n := range want {
			if leaves[k] != n {
				t.Fatalf("%s: Leave callbacks %v, want %v", when, leaves, want)
			}
		}
		if !errors.Is(ghostPush, ErrClosed) || !errors.Is(ghostBroadcast, ErrServerClosed) {
			t.Fatalf("%s: Push %v, Broadcast %v in a Leave after Shutdown", when, ghostPush, ghostBroadcast)
		}
	}
	check("after Shutdown")
	st := ts.srv.Stats()
	if st.HeldSessions != 0 || st.HeldEntries != 0 || st.Sockets != 0 || ts.srv.Presence().Len() != 0 {
		t.Fatalf("stats %+v, %d entries after Shutdown", st, ts.srv.Presence().Len())
	}
	time.Sleep(2 * grace) // past every grace: no timer may run a Leave again
	check("past the grace")
	ts.http.CloseClientConnections()
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= base+2 })
}

// A held session's Leave callbacks run at the end of its grace with a
// closed socket: Push is ErrClosed, and a broadcast reaches the topic.
func TestGraceLeaveCallbackOfHeldSessionBroadcasts(t *testing.T) {
	pushErr := make(chan error, 1)
	ts := newGraceServer(t, 100*time.Millisecond, func(c *Config) {
		c.Channels[0].Leave = func(s *Socket, topic string) {
			pushErr <- s.Push(topic, "bye", nil)
			s.Broadcast(topic, "left", map[string]any{"id": s.ID()})
		}
	})
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	alice.conn.CloseNow()
	bob.expect("the held session's broadcast", isEvent("left"))
	if err := <-pushErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Push in a held session's Leave: %v", err)
	}
}

// Two tabs that share a token come back at once: one resumes, the other
// gets a fresh session; the key never leaves, and when both close, all
// is gone.
func TestGraceTwoTabsResumeAtOnce(t *testing.T) {
	const grace = 150 * time.Millisecond
	ts := newGraceServer(t, grace, nil)
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	ts.dropAndWait(alice, 1)

	tabs := make([]*client, 2)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tabs[i] = ts.dialSession("alice", aliceToken)
		}()
	}
	wg.Wait()
	for _, c := range tabs {
		c.join(graceTestTop, `{}`)
	}
	if st := ts.srv.Stats(); st.Resumes != 1 || st.HeldSessions != 0 {
		t.Fatalf("stats %+v: want exactly one resume", st)
	}
	if joins, leaves := bob.next("the fresh tab's join"); len(joins) != 1 || len(leaves) != 0 {
		t.Fatalf("joins %v leaves %v", joins, leaves)
	}
	time.Sleep(2 * grace)
	ts.dial("carol").join(graceTestTop, `{}`)
	bob.quietUntil("carol")
	if n := ts.srv.Presence().Count(graceTestTop); n != 4 {
		t.Fatalf("%d entries, want bob's, carol's and alice's two", n)
	}
	for _, c := range tabs {
		c.conn.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, "alice's entries to go", func() bool { return ts.srv.Presence().Count(graceTestTop) == 2 })
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldEntries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A resumed connection that joins a topic it did not hold, before it
// rejoins its held ones, is not refused for the entries the grace still
// keeps under its engine id: it is within MaxTopicsPerSocket.
func TestGraceHeldEntriesDoNotCountAgainstTheResumersTopics(t *testing.T) {
	leaves := make(chan string, 10)
	ts := newGraceServer(t, time.Hour, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 4096, MaxPerSocket: 2})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		c.Channels[0].Leave = func(s *Socket, topic string) { leaves <- topic }
	})
	alice := ts.dialSession("alice", aliceToken)
	alice.join("room:a", `{}`)
	alice.join("room:b", `{}`)
	ts.dropAndWait(alice, 1)

	alice = ts.dialSession("alice", aliceToken)
	alice.join("room:c", `{}`) // the user moved on to another room
	alice.join("room:a", `{}`)
	e := ts.srv.Presence()
	if a, b, c := e.Count("room:a"), e.Count("room:b"), e.Count("room:c"); a != 1 || b != 0 || c != 1 {
		t.Fatalf("entries: room:a %d, room:b %d, room:c %d; want alice in a and c", a, b, c)
	}
	// The held topic that made room for room:c may be either: room:b's
	// hold ends then, or when room:a's join needs the room in turn.
	held := map[string]int{}
	for len(held) < 2 && held["room:b"] == 0 {
		held[<-leaves]++
	}
	alice.conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "alice's cleanup", func() bool { return ts.srv.Stats().Sockets == 0 })
	if st := ts.srv.Stats(); e.Len() != 0 || st.HeldSessions != 0 || st.HeldEntries != 0 {
		t.Fatalf("stats %+v, %d entries after a clean close", st, e.Len())
	}
	// A yielded hold's Leave callback runs on a goroutine of its own, so
	// room:a's may come after room:b's; Shutdown waits for every one.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for len(leaves) > 0 { // with the live joins' Leave callbacks
		held[<-leaves]++
	}
	if held["room:b"] != 1 || held["room:c"] != 1 || held["room:a"] < 1 || held["room:a"] > 2 {
		t.Fatalf("Leave callbacks %v: want one of room:b and room:c, one or two of room:a", held)
	}
}

// The closed socket of a held session and the socket its Leave callbacks
// get at the end of the grace do not share state: an app goroutine that
// still uses the old socket races nothing.
func TestGraceStaleSocketAndLeaveCallbackShareNothing(t *testing.T) {
	left := make(chan struct{})
	ts := newGraceServer(t, 30*time.Millisecond, func(c *Config) {
		c.Channels[0].Leave = func(s *Socket, topic string) {
			for i := range 200 {
				s.Assign("n", i)
			}
			close(left)
		}
	})
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	old := sessionSocket(t, ts, "alice")
	alice.conn.CloseNow()
	for i := 0; ; i++ {
		select {
		case <-left:
			if v, _ := old.Get("user"); v != "alice" {
				t.Fatalf("the old socket's user is %v", v)
			}
			return
		default:
			old.Assign("m", i)
			runtime.Gosched()
		}
	}
}

// Shutdown waits for the Leave callbacks of a grace that ended just
// before it: none runs after Shutdown returns.
func TestGraceShutdownWaitsForExpiringLeaves(t *testing.T) {
	entered := make(chan struct{})
	var done atomic.Bool
	ts := newGraceServer(t, 20*time.Millisecond, func(c *Config) {
		c.Channels[0].Leave = func(s *Socket, topic string) {
			close(entered)
			time.Sleep(100 * time.Millisecond) // a slow callback: a database write, say
			done.Store(true)
		}
	})
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	alice.conn.CloseNow()
	<-entered // the grace ended, and its Leave runs
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !done.Load() {
		t.Fatal("Shutdown returned while a held session's Leave callback was running")
	}
}

// The Leave callback of a held topic that made room for a resumed
// connection's join does not run inside the Track that made the room: a
// Join that holds a lock around Track, which Leave takes too, does not
// deadlock.
func TestGraceYieldedLeaveDoesNotRunInsideTrack(t *testing.T) {
	var appMu sync.Mutex
	var deadlocked atomic.Bool
	ts := newGraceServer(t, time.Hour, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 4096, MaxPerSocket: 1})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		join := c.Channels[0].Join
		c.Channels[0].Join = func(s *Socket, topic string, params json.RawMessage) (any, error) {
			appMu.Lock()
			defer appMu.Unlock()
			return join(s, topic, params)
		}
		c.Channels[0].Leave = func(*Socket, string) {
			// A Lock that gives up, so that a regression fails the test
			// rather than hanging it.
			for deadline := time.Now().Add(2 * time.Second); !appMu.TryLock(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					deadlocked.Store(true)
					return
				}
			}
			appMu.Unlock()
		}
	})
	alice := ts.dialSession("alice", aliceToken)
	alice.join("room:a", `{}`)
	ts.dropAndWait(alice, 1)
	alice = ts.dialSession("alice", aliceToken)
	alice.join("room:b", `{}`)
	if ts.srv.Presence().Count("room:a") != 0 || ts.srv.Presence().Count("room:b") != 1 {
		t.Fatal("room:a's held entry did not make room for room:b")
	}
	if deadlocked.Load() {
		t.Fatal("room:a's Leave ran inside room:b's Track, under the Join's lock")
	}
}

// Resumes, duplicate joins, rate-limit closes, clean and abrupt closes
// and the ends of graces, all at once: when every client is gone and
// every grace has passed, nothing is left in the engine or the stats.
func TestGraceMixedEdgesLeaveNothingBehind(t *testing.T) {
	const clients, rounds = 12, 4
	ts := newGraceServer(t, 30*time.Millisecond, func(c *Config) {
		c.MaxEventsPerSecond, c.MaxEventsBurst = 50, 8
		e, err := engine.New(engine.Config{Capacity: 4096, MaxPerSocket: 2})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
	})
	send := func(c *client, frames ...string) {
		for _, f := range frames {
			if c.conn.Write(context.Background(), websocket.MessageText, []byte(f)) != nil {
				return
			}
		}
	}
	run := func(i int) {
		params := map[string][]string{"user": {fmt.Sprint("mixed", i)}, "vsn": {"2.0.0"}, SessionParam: {fmt.Sprintf("mixed-session-%08d", i)}}
		for round := range rounds {
			c, _, err := ts.tryDial(params)
			if err != nil {
				return
			}
			topic := fmt.Sprintf("room:%d", (i+round)%3)
			send(c, `["1","1","`+topic+`","phx_join",{}]`, `["2","2","`+topic+`","phx_join",{}]`, `["3","3","room:x","phx_join",{}]`)
			switch (i + round) % 4 {
			case 0: // flood until 4429
				for range 30 {
					send(c, `[null,"9","phoenix","heartbeat",{}]`)
				}
			case 1:
				c.conn.Close(websocket.StatusNormalClosure, "")
				continue
			}
			time.Sleep(time.Duration(i%3) * 10 * time.Millisecond)
			c.conn.CloseNow()
			time.Sleep(time.Duration(round%3) * 15 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); run(i) }()
	}
	wg.Wait()
	waitFor(t, "every entry to go", func() bool {
		st := ts.srv.Stats()
		return ts.srv.Presence().Len() == 0 && st.HeldSessions == 0 && st.HeldEntries == 0 && st.Sockets == 0
	})
	if st := ts.srv.Stats(); st.Resumes == 0 || st.HeldExpired == 0 || refusalCounts(st)["event/rate_limited_closed"] == 0 {
		t.Fatalf("stats %+v: the test raced nothing", st)
	}
}

// A frame over MaxFrameBytes closes the socket with 1009, a close the
// server chose, as for a binary or a malformed frame: it leaves at once.
func TestGraceOversizeFrameCloseLeavesAtOnce(t *testing.T) {
	ts := newGraceServer(t, time.Hour, func(c *Config) { c.MaxFrameBytes = 1024 })
	bob := ts.watch("bob", "alice")
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	bob.next("alice's join")
	// The server may close before the frame is all written: the write's
	// error is no failure, the close code says what happened.
	alice.conn.Write(context.Background(), websocket.MessageText, []byte(`["1","2","`+graceTestTop+`","echo",{"x":"`+strings.Repeat("a", 4096)+`"}]`))
	if code := alice.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	if _, l := bob.next("alice's leave"); len(l) != 1 {
		t.Fatalf("leaves %v", l)
	}
	if st := ts.srv.Stats(); st.HeldSessions != 0 || st.HeldEntries != 0 {
		t.Fatalf("stats %+v: the socket closed for an oversize frame was held", st)
	}
}

// A heartbeat timeout that fires as the app closes the socket does not
// turn the app's close into a loss that the grace holds.
func TestGraceHeartbeatTimeoutAfterCloseIsNotHeld(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	alice := ts.dialSession("alice", aliceToken)
	alice.join(graceTestTop, `{}`)
	sock := sessionSocket(t, ts, "alice")
	if err := sock.Close(); err != nil {
		t.Fatal(err)
	}
	sock.timeOut() // the idle timer, a moment late
	waitFor(t, "alice's cleanup", func() bool { return ts.srv.Stats().Sockets == 0 })
	if st := ts.srv.Stats(); st.HeldSessions != 0 || ts.srv.Presence().Len() != 0 {
		t.Fatalf("stats %+v, %d entries: the closed socket was held", st, ts.srv.Presence().Len())
	}
}
