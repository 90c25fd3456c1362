package channel

import (
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// TestBroadcastEncodesOnce: a broadcast is encoded once, and every
// subscriber's queue holds the same bytes, not a copy.
func TestBroadcastEncodesOnce(t *testing.T) {
	srv, socks := fanoutServer(t, 5)
	if err := srv.Broadcast("room:a", "news", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i, sock := range socks {
		q := queued(sock)
		if len(q) != 1 {
			t.Fatalf("socket %d has %d frames queued, want 1", i, len(q))
		}
		if want := `[null,null,"room:a","news",{"n":1}]`; string(q[0]) != want {
			t.Fatalf("frame %s, want %s", q[0], want)
		}
		if i == 0 {
			first = q[0]
		} else if unsafe.SliceData(q[0]) != unsafe.SliceData(first) {
			t.Fatalf("socket %d got a copy of the frame", i)
		}
	}
}

// fanoutServer returns a Server with n sockets (no connection behind them)
// subscribed to room:a.
func fanoutServer(t testing.TB, n int) (*Server, []*Socket) {
	e, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Presence: e, Channels: []Channel{{Topic: "room:*", Join: func(*Socket, string, json.RawMessage) (any, error) { return nil, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	socks := make([]*Socket, n)
	for i := range socks {
		socks[i] = newSocket(srv, nil, nil, nil)
		srv.subscribe("room:a", socks[i], phx.MakeRef("1"), false, false)
	}
	return srv, socks
}

// drain empties the sockets' queues as their writers would, keeping the
// queues' memory.
func drain(socks []*Socket) {
	for _, s := range socks {
		s.qmu.Lock()
		clear(s.queue)
		s.queue, s.queued = s.queue[:0], 0
		s.qmu.Unlock()
	}
}

// TestBroadcastAllocatesOncePerBroadcast: the cost in allocations of a
// broadcast does not grow with its subscribers: one frame, shared.
func TestBroadcastAllocatesOncePerBroadcast(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	srv, socks := fanoutServer(t, 500)
	var payload any = json.RawMessage(`{"body":"hello"}`) // boxed once, as callers' values are
	n := testing.AllocsPerRun(100, func() {
		if err := srv.Broadcast("room:a", "new_msg", payload); err != nil {
			t.Fatal(err)
		}
		drain(socks)
	})
	if n > 1 {
		t.Fatalf("%v allocations per broadcast to 500 sockets, want 1 (the frame)", n)
	}
}

// BenchmarkBroadcast measures a broadcast to 1,000 sockets' queues (the
// writers' work aside); it fails unless every queue got every frame.
func BenchmarkBroadcast(b *testing.B) {
	srv, socks := fanoutServer(b, 1000)
	var payload any = json.RawMessage(`{"user":"alice","body":"hello there"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := srv.Broadcast("room:a", "new_msg", payload); err != nil {
			b.Fatal(err)
		}
		for _, s := range socks {
			s.qmu.Lock()
			got := len(s.queue)
			s.qmu.Unlock()
			if got != 1 {
				b.Fatal("a socket missed the broadcast")
			}
		}
		drain(socks)
	}
}
