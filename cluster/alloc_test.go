package cluster

import (
	"encoding/binary"
	"io"
	"log/slog"
	"testing"

	"github.com/presencekit/presence/engine"
)

// A remote update applied in steady state, from the message to the
// engine, allocates nothing.
func TestRemoteUpdateAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e, err := engine.New(engine.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	c := newCore("b", 1, 1e9, 5e9, e, slog.New(slog.NewTextHandler(io.Discard, nil)), subjects{"p"}, 1, 1)
	c.emit = func(string, []byte) {}
	c.replicate = All
	c.onMessage(appendHeartbeat(appendHeader(nil, kindHeartbeat, "a", 7), heartbeat{limits: 1, refTag: 2, buckets: c.nbuckets}))
	p := c.peers["a"]
	c.finishSync(p)
	for c.step() {
	}
	k := c.bucketOf("room:1")
	msgs := make([][]byte, 2)
	for v := range msgs {
		m := appendHeader(nil, kindBatch, "a", 7)
		m = binary.AppendUvarint(m, uint64(k))
		m = binary.AppendUvarint(m, 1)
		m = binary.AppendUvarint(m, 1)
		msgs[v] = appendOp(m, &op{kind: opTrack, socket: 1, topic: "room:1", key: "alice", meta: []byte(`{"s":"` + string(rune('a'+v)) + `"}`), ref: uint64(v + 1)})
	}
	c.onMessage(msgs[1])
	clear(c.notify)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		p.logs[k] = 0 // the same sequence again, with the other meta
		c.onMessage(msgs[i&1])
		clear(c.notify)
		i++
	})
	if c.st.deltasApplied < 1000 || e.Count("room:1") != 1 {
		t.Fatalf("applied %d, room:1 holds %d", c.st.deltasApplied, e.Count("room:1"))
	}
	if allocs != 0 {
		t.Fatalf("a remote update allocates %v times", allocs)
	}
}
