package cluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/presencekit/presence/engine"
)

// BenchmarkApplyRemoteUpdate decodes and applies batches of 1,000 remote
// updates (each changes meta and ref) into an engine: the receiving side
// of replication, without the network. It reports updates/s and checks
// that every update was applied as one.
func BenchmarkApplyRemoteUpdate(b *testing.B) {
	const n = 1000
	e, err := engine.New(engine.Config{Capacity: 2 * n, MaxPerSocket: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	c := newCore("b", 1, 1e9, 5e9, e, slog.New(slog.NewTextHandler(io.Discard, nil)), subjects{"p"}, 1, 1)
	c.emit = func(string, []byte) {}
	c.replicate, c.nbuckets = All, 1 // one bucket holds the batch's 50 topics
	msgs := make([][]byte, 2)
	for v := range msgs {
		m := appendHeader(nil, kindBatch, "a", 7)
		m = binary.AppendUvarint(m, 0) // bucket
		m = binary.AppendUvarint(m, 1)
		m = binary.AppendUvarint(m, n)
		for i := range n {
			m = appendOp(m, &op{kind: opTrack, socket: uint64(i + 1), topic: fmt.Sprintf("room:%d", i%50),
				key: fmt.Sprintf("user%d", i), meta: []byte(fmt.Sprintf(`{"status":"s%d"}`, v)), ref: uint64(v*n + i + 1)})
		}
		msgs[v] = m
	}
	// Make a known and up, as after a sync.
	c.onMessage(appendHeartbeat(appendHeader(nil, kindHeartbeat, "a", 7), heartbeat{limits: 1, refTag: 2, buckets: c.nbuckets}))
	p := c.peers["a"]
	c.finishSync(p)
	for c.step() {
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.logs[0] = 0 // the same sequence numbers again, with the other metas
		c.onMessage(msgs[i&1])
	}
	b.StopTimer()
	if c.st.deltasApplied != uint64(b.N)*n || p.state != StateUp || c.pending() != 0 {
		b.Fatalf("applied %d of %d (state %v, pending %d)", c.st.deltasApplied, b.N*n, p.state, c.pending())
	}
	var snap engine.Snapshot
	e.Snapshot(&snap, "room:0")
	last := uint64((b.N-1)&1) * n
	if len(snap.Entries) != n/50 || snap.Entries[0].Ref != last+1 {
		b.Fatalf("room:0 holds %d entries, first ref %d: want %d, ref %d", len(snap.Entries), snap.Entries[0].Ref, n/50, last+1)
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkPublishOneChange publishes one changed entry of a topic of n
// local entries, reading the topic whole or from the change history: what
// smallTopic chooses between.
func BenchmarkPublishOneChange(b *testing.B) {
	for _, n := range []int{16, 256, 4096} {
		for _, read := range []string{"whole", "history"} {
			b.Run(fmt.Sprintf("entries=%d/read=%s", n, read), func(b *testing.B) {
				e, err := engine.New(engine.Config{Capacity: 2 * n, MaxPerSocket: 2 * n, History: 1024})
				if err != nil {
					b.Fatal(err)
				}
				c := newCore("a", 1, 1e9, 5e9, e, slog.New(slog.NewTextHandler(io.Discard, nil)), subjects{"p"}, 1, 1)
				c.emit = func(string, []byte) {}
				c.small = n
				if read == "history" {
					c.small = -1
				}
				for i := range n {
					if err := e.Track(engine.SocketID(i+1), "room", fmt.Sprintf("u%d", i), nil); err != nil {
						b.Fatal(err)
					}
				}
				c.flushLocal([]string{"room"})
				metas := [][]byte{[]byte(`{"s":1}`), []byte(`{"s":2}`)}
				sent := c.st.deltasSent
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if res, _, err := e.TrackRef(engine.SocketID(i%n+1), "room", fmt.Sprintf("u%d", i%n), metas[(i/n)&1]); err != nil || res != engine.Updated {
						b.Fatalf("%v %v", res, err)
					}
					c.flushLocal([]string{"room"})
				}
				b.StopTimer()
				if got := c.st.deltasSent - sent; got != uint64(b.N) {
					b.Fatalf("published %d deltas for %d updates", got, b.N)
				}
			})
		}
	}
}

// BenchmarkPublishManyTopics publishes one change in each of 100 topics of
// 20 entries at once, as a busy flush does: reading each topic whole
// against scanning the change history that the topics of a shard share.
func BenchmarkPublishManyTopics(b *testing.B) {
	const topics, per = 100, 20
	for _, read := range []string{"whole", "history"} {
		b.Run("read="+read, func(b *testing.B) {
			e, err := engine.New(engine.Config{Capacity: 2 * topics * per, MaxPerSocket: 2 * topics, History: 4096})
			if err != nil {
				b.Fatal(err)
			}
			c := newCore("a", 1, 1e9, 5e9, e, slog.New(slog.NewTextHandler(io.Discard, nil)), subjects{"p"}, 1, 1)
			c.emit = func(string, []byte) {}
			c.small = 1 << 20
			if read == "history" {
				c.small = -1
			}
			names := make([]string, topics)
			for t := range names {
				names[t] = fmt.Sprintf("room:%d", t)
				for i := range per {
					if err := e.Track(engine.SocketID(i+1), names[t], "u", nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			c.flushLocal(names)
			metas := [][]byte{[]byte(`{"s":1}`), []byte(`{"s":2}`)}
			sent := c.st.deltasSent
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for _, t := range names {
					if err := e.Track(engine.SocketID(i%per+1), t, "u", metas[(i/per)&1]); err != nil {
						b.Fatal(err)
					}
				}
				c.flushLocal(names)
			}
			b.StopTimer()
			if got := c.st.deltasSent - sent; got != uint64(b.N*topics) {
				b.Fatalf("published %d deltas for %d updates", got, b.N*topics)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*topics), "ns/change")
		})
	}
}
