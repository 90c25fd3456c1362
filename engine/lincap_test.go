package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The capacity check records histories in which the engine is full much of
// the time and checks them against a sequential model of the whole engine,
// not of one topic: ErrFull, ErrSocketLimit and Len depend on every topic.
// A Track may fail with ErrSocketLimit only if its socket held MaxPerSocket
// entries at its linearization point, and with ErrFull only if Capacity
// entries (or, for a local socket, localCap of local sockets) were present
// then; Len and SocketLen must equal the entries present at theirs.

// capLimits are the limits the capacity model enforces.
type capLimits struct {
	capacity, localCap, perSocket int
	firstRemote                   SocketID // sockets from here up are remote; 0: none
}

func (l capLimits) remote(s SocketID) bool { return l.firstRemote != 0 && s >= l.firstRemote }

const (
	capLen linKind = iota + 100
	capSocketLen
)

// capEntry is one entry of the capacity model's state.
type capEntry struct {
	topic     string
	socket    SocketID
	key, meta string
}

func parseCapState(s string) []capEntry {
	var es []capEntry
	for _, part := range strings.Split(s, ";") {
		if part == "" {
			continue
		}
		var e capEntry
		f := strings.SplitN(part, "|", 4)
		e.topic, e.key, e.meta = f[0], f[2], f[3]
		fmt.Sscan(f[1], &e.socket)
		es = append(es, e)
	}
	return es
}

func formatCapState(es []capEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s|%d|%s|%s;", e.topic, e.socket, e.key, e.meta)
	}
	return b.String()
}

func capModel(l capLimits) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			es := parseCapState(state.(string))
			in, out := input.(linInput), output.(linOutput)
			at, socketLen, localLen := -1, 0, 0
			for i, e := range es {
				if e.socket == in.socket {
					socketLen++
					if e.topic == in.topic {
						at = i
					}
				}
				if !l.remote(e.socket) {
					localLen++
				}
			}
			switch in.kind {
			case linTrack:
				var want error
				switch {
				case at >= 0:
				case socketLen >= l.perSocket:
					want = ErrSocketLimit
				case len(es) >= l.capacity || !l.remote(in.socket) && localLen >= l.localCap:
					want = ErrFull
				}
				if !errors.Is(out.err, want) || (want == nil) != (out.err == nil) {
					return false, state
				}
				switch {
				case want != nil:
					return true, state
				case at >= 0:
					es[at].key, es[at].meta = in.key, in.meta
				default:
					es = append(es, capEntry{in.topic, in.socket, in.key, in.meta})
				}
			case linUntrack:
				if out.ok != (at >= 0) {
					return false, state
				}
				if at < 0 {
					return true, state
				}
				es = append(es[:at], es[at+1:]...)
			case linUntrackAll:
				if at < 0 {
					return true, state
				}
				es = append(es[:at], es[at+1:]...)
			case linCount, linList:
				var listed []string
				for _, e := range es {
					if e.topic == in.topic {
						listed = append(listed, e.key+"="+e.meta)
					}
				}
				if in.kind == linCount {
					return out.count == len(listed), state
				}
				return out.list == strings.Join(listed, "|"), state
			case capLen:
				return out.count == len(es), state
			case capSocketLen:
				return out.count == socketLen, state
			}
			return true, formatCapState(es)
		},
		Hash: func(state any) uint64 {
			h := fnv.New64a()
			h.Write([]byte(state.(string)))
			return h.Sum64()
		},
		DescribeOperation: describeLinOp,
	}
}

// recordCapHistory runs goroutines of random operations over few sockets
// and topics near the limits, and returns what each saw.
func recordCapHistory(t *testing.T, e *Engine, sockets []SocketID, goroutines, ops int, seed uint64) []porcupine.Operation {
	return recordOps(t, e, workload{
		sockets: sockets,
		key:     func(s SocketID, _ *rand.Rand) string { return fmt.Sprint("k", s%8) },
		metas:   []string{`{"v":1}`, `{"v":2}`},
		ops: []weightedOp{{linTrack, 9}, {linUntrack, 5}, {linUntrackAll, 1}, {capLen, 1}, {capSocketLen, 1},
			{linCount, 1}, {linList, 2}},
		trackErrs: []error{ErrFull, ErrSocketLimit},
	}, goroutines, ops, seed)
}

// TestLinearizableAtCapacity checks Track's refusals, Len and SocketLen
// against the whole-engine model in an engine that is full most of the time.
func TestLinearizableAtCapacity(t *testing.T) {
	l := capLimits{capacity: 3, localCap: 3, perSocket: 2}
	sockets := []SocketID{1, 2, 3, 4}
	for _, shards := range []int{1, 4} {
		for round := range 4 {
			t.Run(fmt.Sprintf("shards=%d/round=%d", shards, round), func(t *testing.T) {
				e := mustNew(t, Config{Capacity: l.capacity, MaxPerSocket: l.perSocket, Shards: shards, History: 16})
				history := recordCapHistory(t, e, sockets, 4, *linOps/2, uint64(round*10+shards))
				if res := checkLinearizable(t, capModel(l), history); res != porcupine.Ok {
					t.Fatalf("history of %d operations: %s", len(history), res)
				}
			})
		}
	}
}

// TestCapacityCheckRejectsWrongHistories makes sure the check can fail: an
// ErrFull while two of three entries are present, a Len that counts a
// refused Track, and an ErrSocketLimit below the limit must be rejected.
func TestCapacityCheckRejectsWrongHistories(t *testing.T) {
	m := capModel(capLimits{capacity: 3, localCap: 3, perSocket: 1})
	track := func(s SocketID, topic string, err error, at int64) porcupine.Operation {
		return porcupine.Operation{ClientId: int(s), Input: linInput{kind: linTrack, socket: s, topic: topic, key: "k", meta: "{}"},
			Output: linOutput{err: err}, Call: at, Return: at + 1}
	}
	two := []porcupine.Operation{track(1, "a", nil, 0), track(3, "b", nil, 2)}
	for name, h := range map[string][]porcupine.Operation{
		"spurious ErrFull": append(two[:2:2], track(2, "c", ErrFull, 4)),
		"Len counts a refused Track": append(two[:2:2], track(1, "x", ErrSocketLimit, 4),
			porcupine.Operation{ClientId: 9, Input: linInput{kind: capLen}, Output: linOutput{count: 3}, Call: 6, Return: 7}),
		"spurious ErrSocketLimit": {track(1, "a", ErrSocketLimit, 0)},
		"missed ErrSocketLimit":   append(two[:2:2], track(1, "x", nil, 4)),
		"missed ErrFull":          append(two[:2:2], track(2, "c", nil, 4), track(4, "d", nil, 6)),
	} {
		if porcupine.CheckOperations(m, h) {
			t.Errorf("%s: history passed", name)
		}
	}
	ok := append(two[:2:2], track(1, "x", ErrSocketLimit, 4), track(2, "c", nil, 6), track(4, "d", ErrFull, 8))
	if !porcupine.CheckOperations(m, ok) {
		t.Error("a correct history failed")
	}
}

// recordRefusalHistory records the race of a socket at its limit against a
// socket that has room: with Capacity 3 and MaxPerSocket 1, sockets 1 and 3
// hold an entry; one goroutine keeps tracking new pairs for socket 1, which
// must be refused with ErrSocketLimit, one tracks and untracks a pair of
// socket 2, which always fits, and one reads Len, SocketLen and the topic.
func recordRefusalHistory(t *testing.T, e *Engine, ops int) []porcupine.Operation {
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var history []porcupine.Operation
	for _, s := range []SocketID{1, 3} {
		in := linInput{kind: linTrack, socket: s, topic: fmt.Sprint("t", s), key: "k", meta: "{}"}
		call := now()
		err := e.Track(in.socket, in.topic, in.key, []byte(in.meta))
		history = append(history, porcupine.Operation{ClientId: 0, Input: in, Call: call, Output: linOutput{err: err}, Return: now()})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []porcupine.Operation
			for i := range ops {
				var in linInput
				var out linOutput
				call := now()
				switch {
				case g == 0:
					in = linInput{kind: linTrack, socket: 1, topic: fmt.Sprint("x", i%3), key: "k", meta: "{}"}
					out.err = e.Track(in.socket, in.topic, in.key, []byte(in.meta))
				case g == 1 && i%2 == 0:
					in = linInput{kind: linTrack, socket: 2, topic: "t2", key: "k", meta: "{}"}
					out.err = e.Track(in.socket, in.topic, in.key, []byte(in.meta))
				case g == 1:
					in = linInput{kind: linUntrack, socket: 2, topic: "t2"}
					out.ok = e.Untrack(in.socket, in.topic)
				case i%3 == 0:
					in = linInput{kind: capLen}
					out.count = e.Len()
				case i%3 == 1:
					in = linInput{kind: capSocketLen, socket: 1}
					out.count = e.SocketLen(1)
				default:
					in = linInput{kind: linCount, topic: "t2"}
					out.count = e.Count("t2")
				}
				local = append(local, porcupine.Operation{ClientId: g + 1, Input: in, Call: call, Output: out, Return: now()})
			}
			mu.Lock()
			history = append(history, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return history
}

// TestLinearizableRefusals checks recordRefusalHistory's histories: a
// spurious ErrFull for socket 2, or a Len or SocketLen that counts socket
// 1's refused Tracks, fails the check.
func TestLinearizableRefusals(t *testing.T) {
	l := capLimits{capacity: 3, localCap: 3, perSocket: 1}
	for _, shards := range []int{1, 4} {
		for round := range 5 {
			t.Run(fmt.Sprintf("shards=%d/round=%d", shards, round), func(t *testing.T) {
				e := mustNew(t, Config{Capacity: 3, MaxPerSocket: 1, Shards: shards})
				history := recordRefusalHistory(t, e, *linOps*8)
				if res := checkLinearizable(t, capModel(l), history); res != porcupine.Ok {
					t.Fatalf("history of %d operations: %s", len(history), res)
				}
			})
		}
	}
}
