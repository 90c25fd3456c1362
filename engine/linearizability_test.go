package engine

import (
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var linOps = flag.Int("lin.ops", defaultLinOps, "operations per goroutine in each linearizability history (fewer by default under the race detector)")

// The linearizability check records concurrent histories of Track,
// Untrack, UntrackAll, Count, List and a follower's incremental diff, and
// checks them with porcupine against a sequential model of one topic, per
// topic. That is exactly what the package doc promises: each operation on a
// topic takes effect at one instant, List and Count are atomic snapshots of
// one topic, and a diff applied to what the follower held gives the topic
// at one instant, never half of an update. UntrackAll
// is not atomic across topics, so it enters each topic's history as its
// own removal, at some instant within the call, with no result checked.

type linKind uint8

const (
	linTrack linKind = iota
	linUntrack
	linUntrackAll // one topic's share of an UntrackAll
	linCount
	linList
	// linDiff is a follower's incremental diff: the goroutine applies
	// ChangesSince from its cursor onto the entries it holds for the topic,
	// and the result must be the topic's entries at one instant.
	linDiff
	// linPage is a first page (ListPage from the zero cursor) of a limit
	// drawn from linPageLimits, and linCountKeys a CountKeys; only
	// pageLinModel knows them (pages_lin_test.go).
	linPage
	linCountKeys
)

type linInput struct {
	kind   linKind
	socket SocketID
	topic  string
	key    string
	meta   string
}

type linOutput struct {
	err   error
	ok    bool
	count int
	list  string // entries as key=meta|key=meta, in order
	keys  int    // linPage and linCountKeys: the topic's keys
	limit int    // linPage: the limit asked for
	more  bool   // linPage: Next was not zero
}

// linState is a topic's entries in join order: socket:key=meta;...
type linState string

type linEntry struct {
	socket    SocketID
	key, meta string
}

func parseLinState(s linState) []linEntry {
	var es []linEntry
	for _, part := range strings.Split(string(s), ";") {
		if part == "" {
			continue
		}
		var e linEntry
		sock, rest, _ := strings.Cut(part, ":")
		fmt.Sscan(sock, &e.socket)
		e.key, e.meta, _ = strings.Cut(rest, "=")
		es = append(es, e)
	}
	return es
}

func formatLinState(es []linEntry) linState {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%d:%s=%s;", e.socket, e.key, e.meta)
	}
	return linState(b.String())
}

func renderLinList(es []linEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.key + "=" + e.meta
	}
	return strings.Join(parts, "|")
}

// renderLinSet writes entries as a diff follower holds them: with their
// sockets, in no particular order (sorted).
func renderLinSet(es []linEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%d:%s=%s", e.socket, e.key, e.meta)
	}
	slices.Sort(parts)
	return strings.Join(parts, "|")
}

// linFollower is one goroutine's copy of a topic, kept by the incremental
// diff.
type linFollower struct {
	cursor Cursor
	held   map[uint64]string // ref -> socket:key=meta
}

// follow applies the changes since f's cursor and returns what f then holds,
// or an error for a leave of an entry f does not hold.
func (f *linFollower) follow(e *Engine, ch *Changes, topic string) (string, error) {
	e.ChangesSince(ch, topic, f.cursor)
	if ch.Full {
		clear(f.held)
	}
	for _, l := range ch.Leaves {
		if _, ok := f.held[l.Ref]; !ok {
			return "", fmt.Errorf("ChangesSince(%s): leave of ref %d that the follower does not hold", topic, l.Ref)
		}
		delete(f.held, l.Ref)
	}
	for _, j := range ch.Joins {
		f.held[j.Ref] = fmt.Sprintf("%d:%s=%s", j.Socket, j.Key, j.Meta)
	}
	f.cursor = ch.Next
	parts := make([]string, 0, len(f.held))
	for _, p := range f.held {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	return strings.Join(parts, "|"), nil
}

var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byTopic := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			t := op.Input.(linInput).topic
			if _, ok := byTopic[t]; !ok {
				order = append(order, t)
			}
			byTopic[t] = append(byTopic[t], op)
		}
		var out [][]porcupine.Operation
		for _, t := range order {
			out = append(out, byTopic[t])
		}
		return out
	},
	Init: func() any { return linState("") },
	Step: func(state, input, output any) (bool, any) {
		es := parseLinState(state.(linState))
		in, out := input.(linInput), output.(linOutput)
		at := -1
		for i, e := range es {
			if e.socket == in.socket {
				at = i
			}
		}
		switch in.kind {
		case linTrack:
			if out.err != nil {
				return false, state
			}
			if at >= 0 {
				es[at].key, es[at].meta = in.key, in.meta
			} else {
				es = append(es, linEntry{in.socket, in.key, in.meta})
			}
		case linUntrack:
			if out.ok != (at >= 0) {
				return false, state
			}
			if at >= 0 {
				es = append(es[:at], es[at+1:]...)
			}
		case linUntrackAll:
			if at >= 0 {
				es = append(es[:at], es[at+1:]...)
			}
		case linCount:
			return out.count == len(es), state
		case linList:
			return out.list == renderLinList(es), state
		case linDiff:
			return out.list == renderLinSet(es), state
		}
		return true, formatLinState(es)
	},
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(linState)))
		return h.Sum64()
	},
	DescribeOperation: describeLinOp,
}

// describeLinOp names an operation in porcupine's visualizations.
func describeLinOp(input, output any) string {
	in, out := input.(linInput), output.(linOutput)
	switch in.kind {
	case linTrack:
		return fmt.Sprintf("Track(%d, %s, %s=%s) -> %v", in.socket, in.topic, in.key, in.meta, out.err)
	case linUntrack:
		return fmt.Sprintf("Untrack(%d, %s) -> %v", in.socket, in.topic, out.ok)
	case linUntrackAll:
		return fmt.Sprintf("UntrackAll(%d) in %s", in.socket, in.topic)
	case linCount:
		return fmt.Sprintf("Count(%s) -> %d", in.topic, out.count)
	case capLen:
		return fmt.Sprintf("Len -> %d", out.count)
	case capSocketLen:
		return fmt.Sprintf("SocketLen(%d) -> %d", in.socket, out.count)
	case linDiff:
		return fmt.Sprintf("ChangesSince(%s) applied -> %s", in.topic, out.list)
	}
	return fmt.Sprintf("List(%s) -> %s", in.topic, out.list)
}

// recordHistory runs goroutines of random operations over a few sockets
// and topics, so that they collide, and returns what each saw.
func recordHistory(t *testing.T, e *Engine, goroutines, ops int, seed uint64) []porcupine.Operation {
	keys := []string{"a", "b"}
	return recordOps(t, e, workload{
		sockets: []SocketID{1, 2, 3, 4},
		key:     func(s SocketID, rng *rand.Rand) string { return fmt.Sprintf("s%d%s", s, keys[rng.IntN(len(keys))]) },
		metas:   []string{`{"v":1}`, `{"v":2}`, `{"v":"three"}`},
		ops:     []weightedOp{{linTrack, 8}, {linUntrack, 3}, {linUntrackAll, 1}, {linCount, 1}, {linList, 4}, {linDiff, 3}},
	}, goroutines, ops, seed)
}

// workload is what recordOps draws from: sockets, keys and metas for
// Track, and each operation's weight.
type workload struct {
	sockets []SocketID
	key     func(s SocketID, rng *rand.Rand) string
	metas   []string
	ops     []weightedOp // weights add up to 20
	// trackErrs are the errors a Track may return; any other fails the
	// test. With none, Track's errors go to the model unchecked.
	trackErrs []error
}

type weightedOp struct {
	kind   linKind
	weight int
}

// recordOps runs goroutines of operations drawn from w over topics t0, t1
// and t2, and returns what each saw. UntrackAll is recorded as one
// removal per topic, all with the call's times.
func recordOps(t *testing.T, e *Engine, w workload, goroutines, ops int, seed uint64) []porcupine.Operation {
	topics := []string{"t0", "t1", "t2"}
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			buf := make([]byte, 0, 4096)
			var ch Changes
			var page Page
			followers := map[string]*linFollower{}
			for _, tp := range topics {
				followers[tp] = &linFollower{held: map[uint64]string{}}
			}
			var local []porcupine.Operation
			for range ops {
				s := w.sockets[rng.IntN(len(w.sockets))]
				topic := topics[rng.IntN(len(topics))]
				in := linInput{socket: s, topic: topic, kind: pickOp(w.ops, rng.IntN(20))}
				var out linOutput
				var call, ret int64
				switch in.kind {
				case linTrack:
					in.key = w.key(s, rng)
					in.meta = w.metas[rng.IntN(len(w.metas))]
					call = now()
					out.err = e.Track(s, topic, in.key, []byte(in.meta))
					ret = now()
					if out.err != nil && len(w.trackErrs) > 0 && !isOneOf(out.err, w.trackErrs) {
						t.Errorf("Track: %v", out.err)
						return
					}
				case linUntrack:
					call = now()
					out.ok = e.Untrack(s, topic)
					ret = now()
				case linUntrackAll:
					call = now()
					e.UntrackAll(s)
					ret = now()
					for _, tp := range topics {
						local = append(local, porcupine.Operation{ClientId: g, Input: linInput{kind: linUntrackAll, socket: s, topic: tp},
							Call: call, Output: linOutput{}, Return: ret})
					}
					continue
				case capLen:
					call = now()
					out.count = e.Len()
					ret = now()
				case capSocketLen:
					call = now()
					out.count = e.SocketLen(s)
					ret = now()
				case linCount:
					call = now()
					out.count = e.Count(topic)
					ret = now()
				case linList:
					call = now()
					buf = e.AppendList(buf[:0], topic)
					ret = now()
					l, err := parseList(buf)
					if err != nil {
						t.Errorf("List = %s: %v", buf, err)
						return
					}
					parts := make([]string, len(l))
					for i, x := range l {
						parts[i] = x.Key + "=" + string(x.Meta)
					}
					out.list = strings.Join(parts, "|")
				case linPage:
					out.limit = linPageLimits[rng.IntN(len(linPageLimits))]
					call = now()
					err := e.ListPage(&page, topic, PageCursor{}, out.limit)
					ret = now()
					if err != nil {
						t.Errorf("ListPage: %v", err)
						return
					}
					out.list = renderPage(&page)
					out.count, out.keys, out.more = page.TopicEntries, page.TopicKeys, !page.Next.IsZero()
				case linCountKeys:
					call = now()
					out.keys, out.count = e.CountKeys(topic)
					ret = now()
				case linDiff:
					var err error
					call = now()
					out.list, err = followers[topic].follow(e, &ch, topic)
					ret = now()
					if err != nil {
						t.Error(err)
						return
					}
				}
				local = append(local, porcupine.Operation{ClientId: g, Input: in, Call: call, Output: out, Return: ret})
			}
			mu.Lock()
			history = append(history, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return history
}

// pickOp returns the operation whose share of [0, 20) holds r.
func pickOp(ops []weightedOp, r int) linKind {
	for _, op := range ops {
		if r < op.weight {
			return op.kind
		}
		r -= op.weight
	}
	return ops[len(ops)-1].kind
}

func isOneOf(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// checkLinearizable checks history against m and, when it is illegal,
// writes a visualization of it.
func checkLinearizable(t *testing.T, m porcupine.Model, history []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(m, history, 60*time.Second)
	if res == porcupine.Illegal {
		path := t.TempDir() + "/history.html"
		porcupine.VisualizePath(m, info, path)
		t.Logf("visualization of the failing history: %s", path)
	}
	return res
}

func TestLinearizable(t *testing.T) {
	for _, shards := range []int{1, 2} {
		for round := range 3 {
			t.Run(fmt.Sprintf("shards=%d/round=%d", shards, round), func(t *testing.T) {
				e := mustNew(t, Config{Capacity: 64, MaxPerSocket: 64, Shards: shards, History: 16})
				history := recordHistory(t, e, 6, *linOps, uint64(round*10+shards))
				res := checkLinearizable(t, linModel, history)
				if res != porcupine.Ok {
					t.Fatalf("history of %d operations: %s", len(history), res)
				}
				t.Logf("%d operations linearizable", len(history))
			})
		}
	}
}

// TestLinearizabilityCheckRejectsWrongHistories makes sure the check can
// fail: a real history with one List answer altered, and a ghost entry
// listed after its Untrack returned, must be rejected.
func TestLinearizabilityCheckRejectsWrongHistories(t *testing.T) {
	e := mustNew(t, Config{Capacity: 64, MaxPerSocket: 64, Shards: 1})
	history := recordHistory(t, e, 1, 200, 99)
	for i, op := range history {
		if in := op.Input.(linInput); in.kind == linList {
			out := op.Output.(linOutput)
			out.list += "|ghost={}"
			history[i].Output = out
			break
		}
	}
	if res := checkLinearizable(t, linModel, history); res != porcupine.Illegal {
		t.Fatalf("altered history: %s, want Illegal", res)
	}

	ghost := []porcupine.Operation{
		{ClientId: 0, Input: linInput{kind: linTrack, socket: 1, topic: "t", key: "k", meta: "{}"}, Output: linOutput{}, Call: 0, Return: 1},
		{ClientId: 0, Input: linInput{kind: linUntrack, socket: 1, topic: "t"}, Output: linOutput{ok: true}, Call: 2, Return: 3},
		{ClientId: 1, Input: linInput{kind: linList, topic: "t"}, Output: linOutput{list: "k={}"}, Call: 4, Return: 5},
	}
	if porcupine.CheckOperations(linModel, ghost) {
		t.Fatal("a List showing an entry after its Untrack returned passed")
	}
}
