package channel

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/phx"
)

// subscription returns how topic's state holds sock: whether it is
// subscribed, and in count mode.
func (s *Server) subscription(topic string, sock *Socket) (subscribed, count bool) {
	s.mu.Lock()
	ts := s.topics[topic]
	s.mu.Unlock()
	if ts == nil {
		return false, false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	sub, ok := ts.subs[sock]
	return ok, sub.count
}

// pushStateDuring calls PushPresenceState(topic) on sock from another
// goroutine, over and over, while during runs on the read loop's side.
func pushStateDuring(sock *Socket, topic string, during func()) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10_000 && !stop.Load(); i++ {
			sock.PushPresenceState(topic)
		}
	}()
	during()
	stop.Store(true)
	wg.Wait()
}

// TestPushPresenceStateRacesRejoinAndLeave: PushPresenceState may be
// called from any goroutine. One that races a duplicate phx_join in count
// mode must not turn the new count-mode subscription into a full-mode one
// (the socket would get presence_state and presence_diff), and one that
// races a phx_leave must not subscribe the socket again to the topic it
// left (it would get the topic's broadcasts, and the topic's state would
// hold it forever).
func TestPushPresenceStateRacesRejoinAndLeave(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.MaxEventsPerSecond = -1
		c.MaxQueueBytes = 1 << 30 // the sockets have no connection to drain their queues
	})
	t.Run("rejoin in count mode", func(t *testing.T) {
		var p phx.Parser
		for i := range 300 {
			topic := fmt.Sprint("room:rejoin", i)
			sock := newSocket(ts.srv, nil, nil, map[string]any{"user": "u"})
			sock.dispatch(&p, []byte(`["1","1","`+topic+`","phx_join",{}]`))
			pushStateDuring(sock, topic, func() {
				sock.dispatch(&p, []byte(`["2","2","`+topic+`","phx_join",{"presence":"count"}]`))
			})
			if subscribed, count := ts.srv.subscription(topic, sock); !subscribed || !count {
				t.Fatalf("round %d: after a rejoin in count mode the socket is subscribed %v, in count mode %v", i, subscribed, count)
			}
		}
	})
	t.Run("leave", func(t *testing.T) {
		var p phx.Parser
		for i := range 300 {
			topic := fmt.Sprint("room:leave", i)
			sock := newSocket(ts.srv, nil, nil, map[string]any{"user": "u"})
			sock.dispatch(&p, []byte(`["1","1","`+topic+`","phx_join",{}]`))
			pushStateDuring(sock, topic, func() {
				sock.dispatch(&p, []byte(`["1","2","`+topic+`","phx_leave",{}]`))
			})
			if subscribed, _ := ts.srv.subscription(topic, sock); subscribed {
				t.Fatalf("round %d: a socket that left is subscribed to the topic again", i)
			}
		}
	})
}

// TestQuietRoundKeepsTheWindow: a round of counts that finds no change
// noted since the last (a quiet round) may still see new numbers, from a
// change whose note waits for the topic's lock while the round holds it.
// A socket sent a count less than a window ago, at its join, must then
// wait for the window to pass: at most one count a window, always.
func TestQuietRoundKeepsTheWindow(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.PresenceWindow = time.Hour })
	const topic = "room:quiet"
	sock := newSocket(ts.srv, nil, nil, map[string]any{"user": "u"})
	var p phx.Parser
	sock.dispatch(&p, []byte(`["1","1","`+topic+`","phx_join",{"presence":"count"}]`))
	if c, n := lastCount(t, sock); n != 1 || c != (presenceCount{1, 1}) {
		t.Fatalf("first count %+v after %d counts", c, n)
	}
	// A change in the engine whose note has not come yet, and a quiet
	// round meanwhile.
	trackKeys(t, ts.srv, topic, 0, 1)
	st := ts.srv.lockState(topic)
	st.countBusy = false
	ts.srv.countRoundNow(st)
	due := st.countDue
	st.mu.Unlock()
	if _, n := lastCount(t, sock); n != 1 {
		t.Fatalf("%d counts within a window of the join's", n)
	}
	if !due {
		t.Fatal("no round is due for the socket that waits")
	}
}
