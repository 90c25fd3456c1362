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
	e, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Presence: e, Channels: []Channel{{Topic: "room:*", Join: func(*Socket, string, json.RawMessage) (any, error) { return nil, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	socks := make([]*Socket, 5)
	for i := range socks {
		socks[i] = newSocket(srv, nil, nil, nil)
		srv.subscribe("room:a", socks[i], phx.MakeRef("1"), false)
	}
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
