package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stressMeta builds a meta whose padding is derived from its version, so a
// meta torn between two writes is detected.
func stressMeta(s SocketID, v uint64) []byte {
	pad := strings.Repeat(string(rune('a'+v%26)), int(v%40))
	return []byte(fmt.Sprintf(`{"s":%d,"v":%d,"pad":"%s"}`, s, v, pad))
}

func checkStressMeta(raw json.RawMessage, key string) error {
	var m struct {
		S   uint64 `json:"s"`
		V   uint64 `json:"v"`
		Pad string `json:"pad"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	if string(stressMeta(SocketID(m.S), m.V)) != string(raw) {
		return fmt.Errorf("torn meta %s", raw)
	}
	if !strings.HasPrefix(key, "s"+strconv.FormatUint(m.S, 10)+"/") {
		return fmt.Errorf("key %q holds meta of socket %d", key, m.S)
	}
	return nil
}

// TestConcurrentStress runs writers that own disjoint sockets against shared
// topics while readers List. Every List must parse, hold no pair twice and
// no torn meta, and never show an entry whose Untrack returned before the
// List began. The final state must equal the writers' sequential models.
func TestConcurrentStress(t *testing.T) {
	const (
		writers          = 4
		socketsPerWriter = 6
		readers          = 2
	)
	topics := []string{"t0", "t1", "t2", "t3", "t4"}
	dur := 300 * time.Millisecond
	if testing.Short() {
		dur = 100 * time.Millisecond
	}
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			e := mustNew(t, Config{Capacity: 64, Shards: shards, History: 16})
			// state[pair] is even when the pair is known absent (its Untrack
			// returned) and odd from the moment a Track of it may begin.
			nPairs := writers * socketsPerWriter * len(topics)
			state := make([]atomic.Uint64, nPairs)
			pairIndex := func(s SocketID, ti int) int { return (int(s)-1)*len(topics) + ti }

			stop := make(chan struct{})
			var wg sync.WaitGroup
			models := make([]*model, writers)
			errs := make(chan error, 16)
			var lists atomic.Int64

			for w := range writers {
				models[w] = newModel(Config{Capacity: 64, Shards: shards})
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					m := models[w]
					var version uint64
					for {
						select {
						case <-stop:
							return
						default:
						}
						s := SocketID(w*socketsPerWriter + rng.IntN(socketsPerWriter) + 1)
						ti := rng.IntN(len(topics))
						st := &state[pairIndex(s, ti)]
						key := fmt.Sprintf("s%d/%d", s, rng.IntN(3))
						switch op := rng.IntN(10); {
						case op < 6:
							version++
							if st.Load()%2 == 0 {
								st.Add(1)
							}
							meta := stressMeta(s, version)
							err := e.Track(s, topics[ti], key, meta)
							// Other writers share the capacity, so ErrFull
							// may come where the local model has room.
							if err == ErrFull {
								break
							}
							if werr := m.track(s, topics[ti], key, meta); werr != err {
								errs <- fmt.Errorf("Track = %v, model %v", err, werr)
								return
							}
						case op < 9:
							got := e.Untrack(s, topics[ti])
							if want := m.untrack(s, topics[ti]); got != want {
								errs <- fmt.Errorf("Untrack = %v, model %v", got, want)
								return
							}
							if st.Load()%2 == 1 {
								st.Add(1)
							}
						default:
							got := e.UntrackAll(s)
							if want := m.untrackAll(s); got != want {
								errs <- fmt.Errorf("UntrackAll = %d, model %d", got, want)
								return
							}
							for i := range topics {
								if p := &state[pairIndex(s, i)]; p.Load()%2 == 1 {
									p.Add(1)
								}
							}
						}
					}
				}()
			}
			for r := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 0, 16<<10)
					before := make([]uint64, nPairs)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						ti := (i + r) % len(topics)
						for s := SocketID(1); s <= writers*socketsPerWriter; s++ {
							before[pairIndex(s, ti)] = state[pairIndex(s, ti)].Load()
						}
						buf = e.AppendList(buf[:0], topics[ti])
						lists.Add(1)
						l, err := parseList(buf)
						if err != nil {
							errs <- fmt.Errorf("List %s: %v", buf, err)
							return
						}
						if len(l) > 64 {
							errs <- fmt.Errorf("List holds %d entries, capacity 64", len(l))
							return
						}
						seen := map[SocketID]bool{}
						for _, ent := range l {
							if err := checkStressMeta(ent.Meta, ent.Key); err != nil {
								errs <- err
								return
							}
							var s SocketID
							fmt.Sscanf(ent.Key, "s%d/", &s)
							if seen[s] {
								errs <- fmt.Errorf("socket %d listed twice in %s: %s", s, topics[ti], buf)
								return
							}
							seen[s] = true
							p := pairIndex(s, ti)
							if b := before[p]; b%2 == 0 && state[p].Load() == b {
								errs <- fmt.Errorf("socket %d listed in %s after its Untrack returned", s, topics[ti])
								return
							}
						}
						if c := e.Count(topics[ti]); c < 0 || c > 64 {
							errs <- fmt.Errorf("Count = %d", c)
							return
						}
						if n := e.Len(); n < 0 || n > e.Cap() {
							errs <- fmt.Errorf("Len = %d, Cap %d", n, e.Cap())
							return
						}
					}
				}()
			}
			time.Sleep(dur)
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// The final state is the union of the writers' models.
			total := 0
			for _, topic := range topics {
				var want []listed
				for _, m := range models {
					want = append(want, m.list(topic)...)
				}
				got := list(t, e, topic)
				if len(got) != len(want) || e.Count(topic) != len(want) {
					t.Fatalf("%s: %d entries, models hold %d", topic, len(got), len(want))
				}
				wantSet := map[string]bool{}
				for _, l := range want {
					wantSet[l.Key+string(l.Meta)] = true
				}
				for _, l := range got {
					if !wantSet[l.Key+string(l.Meta)] {
						t.Fatalf("%s: unexpected entry %v", topic, l)
					}
				}
				total += len(want)
			}
			if e.Len() != total {
				t.Fatalf("Len = %d, models hold %d", e.Len(), total)
			}
			for s := SocketID(1); s <= writers*socketsPerWriter; s++ {
				e.UntrackAll(s)
			}
			if e.Len() != 0 {
				t.Fatalf("Len = %d after UntrackAll of every socket", e.Len())
			}
			t.Logf("%d Lists checked, %d read retries", lists.Load(), e.Stats().ReadRetries)
		})
	}
}

// TestNoSpuriousErrFull is the race of a socket at its limit against a
// socket that has room: Capacity 3, MaxPerSocket 1, two entries present.
// Socket 1 keeps trying a new pair and is refused with ErrSocketLimit;
// meanwhile socket 2 tracks a pair and untracks it. There is always room for
// socket 2's entry, so every one of its Tracks must succeed, and Len, read
// after its Untrack returned, must be 2: a refused Track is never counted.
func TestNoSpuriousErrFull(t *testing.T) {
	dur := 300 * time.Millisecond
	if testing.Short() {
		dur = 100 * time.Millisecond
	}
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			e := mustNew(t, Config{Capacity: 3, MaxPerSocket: 1, Shards: shards})
			mustTrack(t, e, 1, "a", "one", "")
			mustTrack(t, e, 3, "b", "three", "")
			stop := make(chan struct{})
			var refused, wrongErr atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					switch err := e.Track(1, fmt.Sprint("x", i%4), "one", nil); err {
					case ErrSocketLimit:
					case ErrFull:
						// The quota is checked first: wrong, but keep racing.
						wrongErr.Add(1)
					default:
						t.Errorf("socket 1 past its limit: %v, want ErrSocketLimit", err)
						return
					}
					refused.Add(1)
				}
			}()
			var tries, spurious, overCounted int
			for deadline := time.Now().Add(dur); time.Now().Before(deadline); {
				tries++
				if err := e.Track(2, "c", "two", nil); err != nil {
					if err != ErrFull {
						t.Fatal(err)
					}
					spurious++
					continue
				}
				e.Untrack(2, "c")
				if n := e.Len(); n != 2 {
					overCounted++
				}
			}
			close(stop)
			wg.Wait()
			t.Logf("socket 2: %d tries, %d spurious ErrFull, %d wrong Len; socket 1: %d refusals, %d of them ErrFull",
				tries, spurious, overCounted, refused.Load(), wrongErr.Load())
			if spurious != 0 || overCounted != 0 || wrongErr.Load() != 0 {
				t.Fatalf("%d of %d Tracks got a spurious ErrFull; Len was not 2 after %d Untracks; %d refusals of socket 1 said ErrFull",
					spurious, tries, overCounted, wrongErr.Load())
			}
			if refused.Load() == 0 {
				t.Fatal("socket 1 never raced socket 2")
			}
		})
	}
}

// TestLargeMetaIsNeverTorn updates a 1 MiB meta, the largest allowed,
// between two versions while a reader Lists it: every List must show one
// version whole. Payload copies this large are where a plain memmove would
// switch to non-temporal stores; under the race detector, which copies
// with atomic words (and a List takes a second there), two Lists do.
func TestLargeMetaIsNeverTorn(t *testing.T) {
	minLists := 5
	if raceEnabled {
		minLists = 2
	}
	const size = 1 << 20
	meta := func(c byte) []byte {
		m := []byte(`{"p":"` + strings.Repeat(string(c), size-len(`{"p":""}`)) + `"}`)
		if len(m) != size {
			t.Fatalf("meta is %d bytes", len(m))
		}
		return m
	}
	metas := [][]byte{meta('a'), meta('b')}
	e := mustNew(t, Config{Capacity: 2, MaxMetaLen: size, Shards: 1})
	mustTrack(t, e, 1, "big", "k", string(metas[0]))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 1; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.Track(1, "big", "k", metas[k&1]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 0, size+64)
	lists := 0
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline) || lists < minLists; lists++ {
		buf = e.AppendList(buf[:0], "big")
		body, ok := strings.CutPrefix(string(buf), `[{"key":"k","meta":{"p":"`)
		if !ok || len(body) != size-len(`{"p":""}`)+len(`"}}]`) {
			t.Fatalf("List of %d bytes: %.60q", len(buf), buf)
		}
		c := body[0]
		if strings.Count(body[:len(body)-len(`"}}]`)], string(c)) != size-len(`{"p":""}`) {
			t.Fatal("a List mixed two versions of the meta")
		}
	}
	close(stop)
	wg.Wait()
}
