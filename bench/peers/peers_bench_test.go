package peers

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Every benchmark runs each peer on the same workload, and List also on a
// floor that only copies the engine's finished output, so that ratios come
// from one run:
//
//	go test -run '^$' -bench . -count 6 | benchstat -col /impl -
//
// Each checks that every peer did what the name says: updates are checked
// by reading every member's meta back, Lists by their length.

func meta(i int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"online","joined_at":"2026-11-28T04:00:00Z"}`, i)
}

// metaV is version v of member i's meta; it differs from meta(i) and from
// every other version.
func metaV(i, v int) []byte {
	return fmt.Appendf(nil, `{"name":"user_%d","status":"away_%d","joined_at":"2026-11-28T04:00:00Z"}`, i, v)
}

func key(i int) string { return fmt.Sprint("user_", i) }

func fill(b *testing.B, r Registry, topic string, base, n int) {
	b.Helper()
	for i := 1; i <= n; i++ {
		if err := r.Track(uint64(base+i), topic, key(i), meta(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// members parses a List and returns each key's meta, compacted.
func members(b *testing.B, list []byte) map[string]string {
	b.Helper()
	var got []listed
	if err := json.Unmarshal(list, &got); err != nil {
		b.Fatalf("List is not a JSON array of entries: %v", err)
	}
	m := make(map[string]string, len(got))
	for _, l := range got {
		m[l.Key] = string(l.Meta)
	}
	if len(m) != len(got) {
		b.Fatalf("List repeats a key")
	}
	return m
}

// updates holds n members' keys and two versions of each one's meta, which
// the update benchmarks alternate: call i gives member i%n version i/n%2,
// so that each Track replaces a different meta.
type updates struct {
	keys  []string
	metas [][2][]byte
}

func newUpdates(n int) updates {
	u := updates{keys: make([]string, n), metas: make([][2][]byte, n)}
	for i := range n {
		u.keys[i] = key(i + 1)
		u.metas[i] = [2][]byte{metaV(i+1, 0), metaV(i+1, 1)}
	}
	return u
}

// track makes update number call.
func (u updates) track(b *testing.B, r Registry, call int) {
	n := len(u.keys)
	m := call % n
	if err := r.Track(uint64(m+1), "room", u.keys[m], u.metas[m][call/n&1]); err != nil {
		b.Fatal(err)
	}
}

// check fails unless, after calls updates of a topic filled by fill, every
// member holds the last meta written to it.
func (u updates) check(b *testing.B, r Registry, calls int) {
	n := len(u.keys)
	got := members(b, r.AppendList(nil, "room"))
	if len(got) != n {
		b.Fatalf("List holds %d members, want %d", len(got), n)
	}
	for m := range n {
		want := meta(m + 1) // never written
		if m < calls {
			last := (calls - 1 - m) / n * n // the last call that wrote m
			want = u.metas[m][last/n&1]
		}
		if got[u.keys[m]] != string(want) {
			b.Fatalf("%s holds %s, want %s: an update was lost", u.keys[m], got[u.keys[m]], want)
		}
	}
}

// BenchmarkTrackUpdate changes the meta of one of 128 members on every
// call. Afterwards every member's meta must be the last one written.
func BenchmarkTrackUpdate(b *testing.B) {
	u := newUpdates(128)
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			fill(b, r, "room", 0, len(u.keys))
			b.ReportAllocs()
			calls := 0
			for b.Loop() {
				u.track(b, r, calls)
				calls++
			}
			u.check(b, r, calls)
		})
	}
}

// BenchmarkTrackUntrack adds a new pair to a 128-member topic and removes
// it again.
func BenchmarkTrackUntrack(b *testing.B) {
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			fill(b, r, "room", 0, 128)
			m := meta(1000)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Track(1000, "room", "user_1000", m); err != nil {
					b.Fatal(err)
				}
				if !r.Untrack(1000, "room") {
					b.Fatal("Untrack found nothing")
				}
			}
			if c := r.Count("room"); c != 128 {
				b.Fatalf("Count = %d after the loop, want 128", c)
			}
		})
	}
}

// BenchmarkUntrackAll tracks a socket in 8 topics and disconnects it.
func BenchmarkUntrackAll(b *testing.B) {
	topics := make([]string, 8)
	for i := range topics {
		topics[i] = fmt.Sprint("room:", i)
	}
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			m := meta(1)
			b.ReportAllocs()
			for b.Loop() {
				for _, t := range topics {
					if err := r.Track(1, t, "user_1", m); err != nil {
						b.Fatal(err)
					}
				}
				if n := r.UntrackAll(1); n != len(topics) {
					b.Fatalf("UntrackAll removed %d, want %d", n, len(topics))
				}
			}
		})
	}
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		var want int // the engine's output length; every peer writes as much
		for _, p := range Peers {
			b.Run(fmt.Sprintf("n=%d/impl=%s", n, p.Name), func(b *testing.B) {
				r := p.New(4096)
				fill(b, r, "room", 0, n)
				buf := r.AppendList(nil, "room")
				if got := members(b, buf); len(got) != n {
					b.Fatalf("List holds %d entries, want %d", len(got), n)
				}
				if want == 0 {
					want = len(buf)
				}
				if len(buf) != want {
					b.Fatalf("List wrote %d bytes, the engine %d", len(buf), want)
				}
				b.SetBytes(int64(want))
				b.ReportAllocs()
				for b.Loop() {
					buf = r.AppendList(buf[:0], "room")
					if len(buf) != want {
						b.Fatalf("List wrote %d bytes, want %d", len(buf), want)
					}
				}
			})
		}
		// The floor: copying the finished output, as one memmove.
		b.Run(fmt.Sprintf("n=%d/impl=copy", n), func(b *testing.B) {
			r := Peers[0].New(4096)
			fill(b, r, "room", 0, n)
			out := r.AppendList(nil, "room")
			buf := make([]byte, 0, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], out...)
			}
			if string(buf) != string(out) {
				b.Fatal("copy differs")
			}
		})
		// A floor of the rendered-blocks layout: the finished output cut
		// into 1 KiB pieces, each in an allocation of its own (as blocks
		// are apart in the pool), appended one after another. What a List
		// that copies 1 KiB blocks pays at least, before it finds them.
		b.Run(fmt.Sprintf("n=%d/impl=pieces", n), func(b *testing.B) {
			r := Peers[0].New(4096)
			fill(b, r, "room", 0, n)
			out := r.AppendList(nil, "room")
			var pieces [][]byte
			for rest := out; len(rest) > 0; {
				k := min(len(rest), 1<<10)
				pieces = append(pieces, append(make([]byte, 0, k+512), rest[:k]...))
				rest = rest[k:]
			}
			buf := make([]byte, 0, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for _, p := range pieces {
					buf = append(buf, p...)
				}
			}
			if string(buf) != string(out) {
				b.Fatal("pieces differ from the output")
			}
		})
		// A second floor: the same entries, each already rendered, in
		// slots 384 bytes apart (the engine's slot size with its default
		// limits) linked in join order, and copied by walking the links.
		// What a List that walks linked slots pays before it renders
		// anything.
		b.Run(fmt.Sprintf("n=%d/impl=chain", n), func(b *testing.B) {
			out, slab := renderedSlots(b, n)
			buf := make([]byte, 0, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], '[')
				for idx := uint64(1); idx != 0; {
					slot := slab[(idx-1)*slotBytes : idx*slotBytes]
					idx = binary.LittleEndian.Uint64(slot)
					l := binary.LittleEndian.Uint64(slot[8:])
					if len(buf) > 1 {
						buf = append(buf, ',')
					}
					buf = append(buf, slot[16:16+l]...)
				}
				buf = append(buf, ']')
			}
			if string(buf) != string(out) {
				b.Fatal("chain differs")
			}
		})
		// A third floor: the same rendered slots, reached through an array
		// of slot numbers in join order instead of links, so that no load
		// waits for the one before. What any layout that keeps one entry
		// per slot pays.
		b.Run(fmt.Sprintf("n=%d/impl=index", n), func(b *testing.B) {
			out, slab := renderedSlots(b, n)
			order := make([]uint32, n)
			for i := range order {
				order[i] = uint32(i)
			}
			buf := make([]byte, 0, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], '[')
				for j, i := range order {
					slot := slab[int(i)*slotBytes : int(i+1)*slotBytes]
					l := binary.LittleEndian.Uint64(slot[8:])
					if j > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, slot[16:16+l]...)
				}
				buf = append(buf, ']')
			}
			if string(buf) != string(out) {
				b.Fatal("index differs")
			}
		})
	}
}

// slotBytes is the engine's slot size with its default limits.
const slotBytes = 384

// renderedSlots returns the engine's List of n members and the same
// entries, each rendered, in slots of slotBytes: the next slot's number+1
// (0 for the last), the entry's length and the entry.
func renderedSlots(b *testing.B, n int) (list, slab []byte) {
	b.Helper()
	r := Peers[0].New(4096)
	fill(b, r, "room", 0, n)
	list = r.AppendList(nil, "room")
	var entries []json.RawMessage
	if err := json.Unmarshal(list, &entries); err != nil || len(entries) != n {
		b.Fatalf("List holds %d entries (%v)", len(entries), err)
	}
	slab = make([]byte, n*slotBytes)
	for i, e := range entries {
		slot := slab[i*slotBytes : (i+1)*slotBytes]
		next := uint64(i + 2)
		if i == n-1 {
			next = 0
		}
		binary.LittleEndian.PutUint64(slot, next)
		binary.LittleEndian.PutUint64(slot[8:], uint64(len(e)))
		if copy(slot[16:], e) != len(e) {
			b.Fatal("entry larger than a slot")
		}
	}
	return list, slab
}

// BenchmarkParallelReadHeavy is 90% List and 10% Track update over 16
// rooms of 32 members, from GOMAXPROCS goroutines. Each goroutine owns one
// member of every room and flips its meta, so that every Track is an
// update; afterwards each room must hold the last meta each goroutine wrote.
// BenchmarkListAfterUpdate lists a 512-member topic right after updating
// one of its members, as a server does when it pushes the topic after a
// change: impl=engine does both, impl=update the update alone, so that
// engine minus update is what the List costs when it follows an update
// (compare it with BenchmarkList/n=512/impl=copy). Every List must hold
// every member, and afterwards every member its last meta.
func BenchmarkListAfterUpdate(b *testing.B) {
	u := newUpdates(512)
	for _, list := range []bool{true, false} {
		name := "impl=engine"
		if !list {
			name = "impl=update"
		}
		b.Run(name, func(b *testing.B) {
			r := Peers[0].New(4096)
			fill(b, r, "room", 0, len(u.keys))
			buf := r.AppendList(nil, "room")
			want := len(buf)
			b.ReportAllocs()
			calls := 0
			for b.Loop() {
				u.track(b, r, calls)
				calls++
				if list {
					buf = r.AppendList(buf[:0], "room")
					// Each member's first update adds "away_0" to its
					// meta; the versions that follow keep its length.
					if len(buf) < want {
						b.Fatalf("List wrote %d bytes, want at least %d", len(buf), want)
					}
				}
			}
			u.check(b, r, calls)
		})
	}
}

func BenchmarkParallelReadHeavy(b *testing.B) {
	const rooms, roomSize = 16, 32
	for _, p := range Peers {
		b.Run("impl="+p.Name, func(b *testing.B) {
			r := p.New(4096)
			topics := make([]string, rooms)
			for t := range topics {
				topics[t] = fmt.Sprint("room:", t)
				fill(b, r, topics[t], t*roomSize, roomSize-1)
			}
			type final struct {
				key     string
				metas   [2][]byte
				version [rooms]uint8
			}
			var (
				next    atomic.Uint64
				mu      sync.Mutex
				finals  []*final
				updates atomic.Int64
			)
			b.ReportAllocs()
			b.ResetTimer() // New's up-front allocation is not per operation
			b.RunParallel(func(pb *testing.PB) {
				g := next.Add(1)
				s := 1<<20 + g
				f := &final{key: key(int(s)), metas: [2][]byte{metaV(int(g), 0), metaV(int(g), 1)}}
				for t := range topics {
					if err := r.Track(s, topics[t], f.key, f.metas[0]); err != nil {
						b.Error(err)
						return
					}
				}
				x := g*0x9e3779b97f4a7c15 | 1
				buf := make([]byte, 0, 8192)
				var n int64
				for pb.Next() {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					t := x % rooms
					if x>>32%10 == 0 {
						f.version[t] ^= 1
						if err := r.Track(s, topics[t], f.key, f.metas[f.version[t]]); err != nil {
							b.Error(err)
							return
						}
						n++
					} else {
						buf = r.AppendList(buf[:0], topics[t])
						if len(buf) < roomSize*40 {
							b.Errorf("List wrote %d bytes", len(buf))
							return
						}
					}
				}
				updates.Add(n)
				mu.Lock()
				finals = append(finals, f)
				mu.Unlock()
			})
			b.StopTimer()
			for t, topic := range topics {
				got := members(b, r.AppendList(nil, topic))
				for _, f := range finals {
					var want map[string]any
					json.Unmarshal(f.metas[f.version[t]], &want)
					compact, _ := json.Marshal(want)
					var have map[string]any
					json.Unmarshal([]byte(got[f.key]), &have)
					hc, _ := json.Marshal(have)
					if string(hc) != string(compact) {
						b.Fatalf("%s in %s holds %s, want %s", f.key, topic, got[f.key], f.metas[f.version[t]])
					}
				}
			}
			b.ReportMetric(float64(updates.Load())/float64(b.N), "updates/op")
		})
	}
}
