package engine

import (
	"encoding/json"
	"flag"
	"fmt"
	"sync/atomic"
	"testing"
)

// Engine-only benchmarks. Each checks that it did what its name says (a
// Track update counts Updated outcomes, a List checks its output), so that
// a figure never measures a path the name does not. Comparisons with the
// baseline, centrifuge and the copy floor are in bench/peers.
//
//	go test -run '^$' -bench . -count 6 ./engine

// benchMeta is the meta of member i, about 70 bytes like a typical client's.
func benchMeta(i int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"online","joined_at":"2026-11-28T04:00:00Z"}`, i)
}

// benchMetaV is version v of member i's meta; versions differ from each
// other and from benchMeta(i), so that writing one over another is an update.
func benchMetaV(i, v int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"away_%d","joined_at":"2026-11-28T04:00:00Z"}`, i, v)
}

func benchKey(i int) string { return fmt.Sprint("user_", i) }

// benchNoRender benchmarks engines without rendered topics, to measure what
// the rendered copy costs writers and saves readers:
//
//	go test -run '^$' -bench . ./engine -args -bench.norender
var benchNoRender = flag.Bool("bench.norender", false, "benchmark engines with Config.NoRenderedTopics")

func benchEngine(b *testing.B) *Engine {
	b.Helper()
	e, err := New(Config{Capacity: 4096, MaxPerSocket: 4096, NoRenderedTopics: *benchNoRender})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// fill tracks n members in topic, sockets base+1..base+n, and checks that
// each was added.
func fill(b *testing.B, e *Engine, topic string, base, n int) {
	b.Helper()
	for i := 1; i <= n; i++ {
		out, _, err := e.TrackRef(SocketID(base+i), topic, benchKey(i), benchMeta(i))
		if err != nil || out != Added {
			b.Fatalf("fill: Track = %v, %v", out, err)
		}
	}
}

// listLen checks that out is a JSON array of n entries and returns its
// length, which every later List of the unchanged topic must match.
func listLen(b *testing.B, out []byte, n int) int {
	b.Helper()
	var entries []struct {
		Key  string          `json:"key"`
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(out, &entries); err != nil || len(entries) != n {
		b.Fatalf("List holds %d entries (%v), want %d", len(entries), err, n)
	}
	return len(out)
}

// BenchmarkTrackUpdate changes the meta of one of 128 members on every
// call: member i%128 gets version i/128 of its meta, so that each Track
// finds a different meta stored and updates it.
func BenchmarkTrackUpdate(b *testing.B) {
	benchUpdates(b, 128, func(i int) [2][]byte {
		return [2][]byte{benchMetaV(i, 0), benchMetaV(i, 1)}
	}, func(call, n int) int { return call % n })
}

// benchUpdates fills a topic of n members and then, on every call, tracks
// member pick(call, n) again with the next of its two versions, from
// versions(its number); every Track must be an update.
func benchUpdates(b *testing.B, n int, versions func(i int) [2][]byte, pick func(call, n int) int) {
	e := benchEngine(b)
	fill(b, e, "room", 0, n)
	keys := make([]string, n)
	metas := make([][2][]byte, n)
	for i := range n {
		keys[i], metas[i] = benchKey(i+1), versions(i+1)
	}
	b.ReportAllocs()
	calls, updated := 0, 0
	for b.Loop() {
		m := pick(calls, n)
		out, _, err := e.TrackRef(SocketID(m+1), "room", keys[m], metas[m][calls/n&1])
		if err != nil {
			b.Fatal(err)
		}
		if out == Updated {
			updated++
		}
		calls++
	}
	if updated != calls {
		b.Fatalf("%d of %d Tracks updated", updated, calls)
	}
}

// BenchmarkTrackUnchanged tracks a pair again with the key and meta it
// already holds: the no-op path.
func BenchmarkTrackUnchanged(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	key, meta := benchKey(1), benchMeta(1)
	b.ReportAllocs()
	calls, unchanged := 0, 0
	for b.Loop() {
		out, _, err := e.TrackRef(1, "room", key, meta)
		if err != nil {
			b.Fatal(err)
		}
		if out == Unchanged {
			unchanged++
		}
		calls++
	}
	if unchanged != calls {
		b.Fatalf("%d of %d Tracks left the entry unchanged", unchanged, calls)
	}
}

// BenchmarkTrackUntrack adds a new pair to a 128-member topic and removes
// it again.
func BenchmarkTrackUntrack(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	meta := benchMeta(1000)
	b.ReportAllocs()
	for b.Loop() {
		out, _, err := e.TrackRef(1000, "room", "user_1000", meta)
		if err != nil || out != Added {
			b.Fatalf("Track = %v, %v; want Added", out, err)
		}
		if !e.Untrack(1000, "room") {
			b.Fatal("Untrack found nothing")
		}
	}
}

// BenchmarkTrackResize changes the meta of one of 512 members on every
// call between a short and a long version, so that each update in place
// moves the entries after it within their block.
func BenchmarkTrackResize(b *testing.B) {
	benchUpdates(b, 512, func(i int) [2][]byte {
		return [2][]byte{benchMetaV(i, 0), fmt.Appendf(nil, `{"name":"user_%d","status":"away for a longer while","joined_at":"2026-11-28T04:00:00Z"}`, i)}
	}, func(call, n int) int { return call * 7 % n })
}

// BenchmarkChurnMiddle untracks one of 512 members, from anywhere in the
// topic, and tracks it again, at the end.
func BenchmarkChurnMiddle(b *testing.B) {
	const n = 512
	e := benchEngine(b)
	fill(b, e, "room", 0, n)
	keys := make([]string, n)
	metas := make([][]byte, n)
	for i := range n {
		keys[i], metas[i] = benchKey(i+1), benchMeta(i+1)
	}
	b.ReportAllocs()
	calls := 0
	for b.Loop() {
		m := calls * 7 % n
		if !e.Untrack(SocketID(m+1), "room") {
			b.Fatal("Untrack found nothing")
		}
		out, _, err := e.TrackRef(SocketID(m+1), "room", keys[m], metas[m])
		if err != nil || out != Added {
			b.Fatalf("Track = %v, %v; want Added", out, err)
		}
		calls++
	}
	if c := e.Count("room"); c != n {
		b.Fatalf("Count = %d after the loop, want %d", c, n)
	}
}

// BenchmarkUntrackAll tracks a socket in 8 topics and disconnects it.
func BenchmarkUntrackAll(b *testing.B) {
	topics := make([]string, 8)
	for i := range topics {
		topics[i] = fmt.Sprint("room:", i)
	}
	e := benchEngine(b)
	meta := benchMeta(1)
	b.ReportAllocs()
	for b.Loop() {
		for _, t := range topics {
			if err := e.Track(1, t, "user_1", meta); err != nil {
				b.Fatal(err)
			}
		}
		if n := e.UntrackAll(1); n != len(topics) {
			b.Fatalf("UntrackAll removed %d, want %d", n, len(topics))
		}
	}
}

func BenchmarkCount(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		if e.Count("room") != 128 {
			b.Fatal("wrong count")
		}
	}
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{1, 16, 128, 512} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			e := benchEngine(b)
			fill(b, e, "room", 0, n)
			buf := e.AppendList(nil, "room")
			want := listLen(b, buf, n)
			b.SetBytes(int64(want))
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendList(buf[:0], "room")
				if len(buf) != want {
					b.Fatalf("List wrote %d bytes, want %d", len(buf), want)
				}
			}
		})
	}
}

func BenchmarkDiff(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	buf := e.AppendDiff(nil, "room")
	var d struct{ Joins, Leaves []json.RawMessage }
	if err := json.Unmarshal(buf, &d); err != nil || len(d.Joins) != 128 || len(d.Leaves) != 0 {
		b.Fatalf("Diff holds %d joins, %d leaves (%v)", len(d.Joins), len(d.Leaves), err)
	}
	want := len(buf)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendDiff(buf[:0], "room")
		if len(buf) != want {
			b.Fatalf("Diff wrote %d bytes, want %d", len(buf), want)
		}
	}
}

// BenchmarkChanges reads the incremental diff of a 128-member room after
// one update, as a broadcaster does once per window.
func BenchmarkChanges(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	var snap Snapshot
	e.Snapshot(&snap, "room")
	if out, _, err := e.TrackRef(1, "room", "user_1", benchMeta(7)); err != nil || out != Updated {
		b.Fatalf("Track = %v, %v; want Updated", out, err)
	}
	b.Run("form=json", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		var full bool
		buf, _, full = e.AppendChanges(buf, "room", snap.Cursor)
		var d struct{ Joins, Leaves []json.RawMessage }
		if err := json.Unmarshal(buf, &d); err != nil || full || len(d.Joins) != 1 || len(d.Leaves) != 1 {
			b.Fatalf("changes: %d joins, %d leaves, full %v (%v)", len(d.Joins), len(d.Leaves), full, err)
		}
		want := len(buf)
		b.ReportAllocs()
		for b.Loop() {
			buf, _, full = e.AppendChanges(buf[:0], "room", snap.Cursor)
			if full || len(buf) != want {
				b.Fatalf("changes: %d bytes, full %v; want %d bytes", len(buf), full, want)
			}
		}
	})
	b.Run("form=struct", func(b *testing.B) {
		var c Changes
		b.ReportAllocs()
		for b.Loop() {
			e.ChangesSince(&c, "room", snap.Cursor)
			if c.Full || len(c.Joins) != 1 || len(c.Leaves) != 1 {
				b.Fatalf("changes: %d joins, %d leaves, full %v", len(c.Joins), len(c.Leaves), c.Full)
			}
		}
	})
	b.Run("form=snapshot", func(b *testing.B) {
		var s Snapshot
		b.ReportAllocs()
		for b.Loop() {
			e.Snapshot(&s, "room")
			if len(s.Entries) != 128 {
				b.Fatalf("snapshot holds %d entries, want 128", len(s.Entries))
			}
		}
	})
}

// BenchmarkParallelTrackUpdate updates entries in random rooms of 64 from
// GOMAXPROCS goroutines. Each goroutine owns one entry per room and flips
// its meta between two versions, so that every Track is an update.
func BenchmarkParallelTrackUpdate(b *testing.B) {
	const rooms = 64
	e := benchEngine(b)
	topics := make([]string, rooms)
	for t := range topics {
		topics[t] = fmt.Sprint("room:", t)
		fill(b, e, topics[t], t*8, 8)
	}
	var next, calls, updated atomic.Int64
	b.ReportAllocs()
	b.ResetTimer() // New's up-front allocation is not per operation
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1))
		s := SocketID(1<<20 + g) // this goroutine's socket, one entry per room
		key := benchKey(1<<20 + g)
		metas := [2][]byte{benchMetaV(g, 0), benchMetaV(g, 1)}
		var version [rooms]uint8
		for t := range topics {
			if err := e.Track(s, topics[t], key, metas[0]); err != nil {
				b.Error(err)
				return
			}
		}
		// A fixed-seed xorshift picks rooms: walking the same sequence
		// would lock-step goroutines onto one shard.
		x := uint64(g)*0x9e3779b97f4a7c15 | 1
		var n, u int64
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			t := x % rooms
			version[t] ^= 1
			out, _, err := e.TrackRef(s, topics[t], key, metas[version[t]])
			if err != nil {
				b.Error(err)
				return
			}
			n++
			if out == Updated {
				u++
			}
		}
		calls.Add(n)
		updated.Add(u)
	})
	if updated.Load() != calls.Load() {
		b.Fatalf("%d of %d Tracks updated", updated.Load(), calls.Load())
	}
}

func BenchmarkParallelList128(b *testing.B) {
	e := benchEngine(b)
	fill(b, e, "room", 0, 128)
	want := listLen(b, e.AppendList(nil, "room"), 128)
	b.ReportAllocs()
	b.ResetTimer() // New's up-front allocation is not per operation
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, want)
		for pb.Next() {
			buf = e.AppendList(buf[:0], "room")
			if len(buf) != want {
				b.Errorf("List wrote %d bytes, want %d", len(buf), want)
				return
			}
		}
	})
}

// BenchmarkParallelReadHeavy is 90% List and 10% Track update over 16
// rooms of 32 members. Each goroutine owns one of the 32 members of every
// room and flips its meta, so that every Track is an update.
func BenchmarkParallelReadHeavy(b *testing.B) {
	const rooms, members = 16, 32
	e := benchEngine(b)
	topics := make([]string, rooms)
	for t := range topics {
		topics[t] = fmt.Sprint("room:", t)
		fill(b, e, topics[t], t*members, members-1)
	}
	var next, updates, updated, lists atomic.Int64
	b.ReportAllocs()
	b.ResetTimer() // New's up-front allocation is not per operation
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1))
		s := SocketID(1<<20 + g)
		key := benchKey(1<<20 + g)
		metas := [2][]byte{benchMetaV(g, 0), benchMetaV(g, 1)}
		var version [rooms]uint8
		for t := range topics {
			if err := e.Track(s, topics[t], key, metas[0]); err != nil {
				b.Error(err)
				return
			}
		}
		x := uint64(g)*0x9e3779b97f4a7c15 | 1
		buf := make([]byte, 0, 8192)
		var n, u, l int64
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			t := x % rooms
			if x>>32%10 == 0 {
				version[t] ^= 1
				out, _, err := e.TrackRef(s, topics[t], key, metas[version[t]])
				if err != nil {
					b.Error(err)
					return
				}
				n++
				if out == Updated {
					u++
				}
			} else {
				buf = e.AppendList(buf[:0], topics[t])
				if len(buf) < 2 {
					b.Error("List wrote nothing")
					return
				}
				l++
			}
		}
		updates.Add(n)
		updated.Add(u)
		lists.Add(l)
	})
	if updated.Load() != updates.Load() {
		b.Fatalf("%d of %d Tracks updated", updated.Load(), updates.Load())
	}
}
