package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/presencekit/presence/engine"
)

// settle delivers everything in flight, in order.
func (s *sim) settle() {
	for len(s.net) > 0 {
		s.deliver(0)
	}
}

func (s *sim) track(i int, sock engine.SocketID, topic, key, meta string) {
	if err := s.nodes[i].e.Track(sock, topic, key, []byte(meta)); err != nil {
		s.t.Fatal(err)
	}
	s.nodes[i].dirty[topic] = true
	s.flush(i)
}

func TestResyncDoesNotFlapUnchangedEntries(t *testing.T) {
	s := newSim(t, 2)
	s.settle()
	s.track(0, 1, "room:a", "alice", `{}`)
	s.track(0, 2, "room:a", "bob", `{}`)
	s.settle()
	var snap engine.Snapshot
	b := s.nodes[1].e
	b.Snapshot(&snap, "room:a")
	if len(snap.Entries) != 2 {
		t.Fatalf("b lists %d entries", len(snap.Entries))
	}
	cursor := snap.Cursor
	// Lose a batch that changes bob only, then let the heartbeats reveal
	// the gap (a batch is missing once the next heartbeat came too): b
	// resyncs.
	s.track(0, 2, "room:a", "bob", `{"s":"away"}`)
	s.net = s.net[:0]
	s.advance(simH)
	s.settle()
	s.advance(simH)
	s.settle()
	if st := s.nodes[1].c.st; st.gaps == 0 {
		t.Fatal("no gap was seen")
	}
	var ch engine.Changes
	b.ChangesSince(&ch, "room:a", cursor)
	if ch.Full || len(ch.Joins) != 1 || len(ch.Leaves) != 1 || string(ch.Joins[0].Key) != "bob" || string(ch.Leaves[0].Key) != "bob" {
		t.Fatalf("the resync changed joins %v leaves %v (full %v): want bob's update only", entryKeys(ch.Joins), entryKeys(ch.Leaves), ch.Full)
	}
	s.checkConverged()
}

func entryKeys(es []engine.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Key))
	}
	return out
}

func TestRemoteFullIsCountedLoggedAndRetried(t *testing.T) {
	s := newSim(t, 2)
	var logs bytes.Buffer
	b := s.nodes[1]
	small, err := engine.New(engine.Config{Capacity: 2, MaxPerSocket: 2, LocalCapacity: 1, RefTag: b.tag})
	if err != nil {
		t.Fatal(err)
	}
	b.e, b.c.e = small, small
	b.c.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.settle()
	if err := small.Track(1, "room", "local", nil); err != nil {
		t.Fatal(err)
	}
	s.track(0, 1, "room", "r1", `{}`)
	s.track(0, 2, "room", "r2", `{}`) // the reserve holds one remote entry only
	s.settle()
	if got := small.Count("room"); got != 2 {
		t.Fatalf("b holds %d entries, want 2", got)
	}
	if st := b.c.st; st.remoteFull == 0 || b.c.pending() != 1 {
		t.Fatalf("remoteFull %d, pending %d: want the refused entry counted and pending", st.remoteFull, b.c.pending())
	}
	if !strings.Contains(logs.String(), "cannot be stored") {
		t.Fatalf("nothing logged: %q", logs.String())
	}
	small.Untrack(1, "room") // space frees: the next tick stores it
	s.advance(simH / 4)
	if b.c.pending() != 0 || small.Count("room") != 2 {
		t.Fatalf("pending %d, count %d after space freed", b.c.pending(), small.Count("room"))
	}
}

func TestDifferingLimitsAreReported(t *testing.T) {
	s := newSim(t, 2)
	s.nodes[1].c.limits = 8
	s.advance(simH)
	s.settle()
	s.advance(simH)
	s.settle()
	a := s.nodes[0].c
	if a.st.limitMismatches == 0 || !a.info(a.peers["b"]).LimitsDiffer {
		t.Fatalf("a did not report b's limits: %+v", a.info(a.peers["b"]))
	}
}

func TestBadMessagesAreCountedAndChangeNothing(t *testing.T) {
	s := newSim(t, 2)
	s.track(0, 1, "room", "alice", `{}`)
	s.settle()
	b := s.nodes[1]
	before := s.entries(1, "room", false)
	good := appendHeader(nil, kindBatch, "a", s.nodes[0].inc)
	inputs := [][]byte{nil, {1}, {9, 1}, good, append(good, 0xff), []byte(strings.Repeat("\xff", 40))}
	for i := range 200 {
		inputs = append(inputs, []byte(fmt.Sprint(i)))
	}
	for _, in := range inputs {
		b.c.onMessage(in)
	}
	if got := b.c.st.badMessages; got != uint64(len(inputs)) {
		t.Fatalf("%d bad messages counted, want %d", got, len(inputs))
	}
	if after := s.entries(1, "room", false); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("entries changed: %v -> %v", before, after)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(appendBatchForFuzz())
	f.Add(appendHeartbeat(appendHeader(nil, kindHeartbeat, "a", 1), heartbeat{seqs: []bseq{{0, 3}, {7, 1}}, limits: 1, refTag: 2, buckets: numBuckets}))
	f.Add(appendHeartbeat(appendHeader(nil, kindGoodbye, "a", 1), heartbeat{seqs: []bseq{{1, 3}}, buckets: numBuckets}))
	f.Add(appendSyncReq(appendHeader(nil, kindSyncReq, "a", 1), syncReq{req: 1, nbuckets: numBuckets}))
	f.Add(appendSyncReq(appendHeader(nil, kindSyncReq, "a", 1), syncReq{req: 1, buckets: []uint32{3, 9}, nbuckets: numBuckets}))
	pg := syncPage{req: 1, snap: 1, seqs: []bseq{{2, 1}}}
	f.Add(appendOp(appendSyncPageHead(appendHeader(nil, kindSyncPage, "a", 1), &pg, 1), &op{kind: opTrack, socket: 1, topic: "t", key: "k", meta: []byte("{}"), ref: 1}))
	f.Add(appendBroadcast(appendHeader(nil, kindBroadcast, "a", 1), broadcastMsg{topic: "t", event: "e", payload: []byte("{}")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _ := engine.New(engine.Config{Capacity: 16})
		c := newCore("x", 1, 10, 30, e, slog.New(slog.NewTextHandler(io.Discard, nil)), subjects{"p"}, 1, 1)
		c.emit = func(string, []byte) {}
		c.onMessage(data) // must not panic
	})
}

func appendBatchForFuzz() []byte {
	b := appendHeader(nil, kindBatch, "a", 1)
	b = append(b, 5, 1, 1)
	return appendOp(b, &op{kind: opTrack, socket: 1, topic: "t", key: "k", meta: []byte("{}"), ref: 1})
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{}, {Node: "a b"}, {Node: strings.Repeat("x", 65)}, {Node: "a", Prefix: "a..b"}, {Node: "a", Prefix: "a.*"},
		{Node: "a", Heartbeat: -1}, {Node: "a", Heartbeat: 1e9, DownAfter: 1e9}, {Node: "a", PendingMsgs: -1},
	} {
		if err := c.fill(); !errors.Is(err, ErrInvalidConfig) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: got %v, want one line matching ErrInvalidConfig", c, err)
		}
	}
	c := Config{Node: "a"}
	if err := c.fill(); err != nil || c.Heartbeat != DefaultHeartbeat || c.DownAfter != DefaultDownAfter || c.Prefix != DefaultPrefix {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}
