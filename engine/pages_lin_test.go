package engine

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The paging check records concurrent histories of Track, Untrack,
// UntrackAll, first pages (ListPage) and CountKeys, and checks them with
// porcupine against a sequential model of one topic's key order: a page
// and a count are each one instant of the topic, never a mix of before
// and after a write.

var linPageLimits = []int{1, 2, MaxPageLimit}

// pageState is a topic in key order: key=socket:meta,socket:meta;...
type pageState string

type pageKey struct {
	key     string
	entries []linEntry // in the order they came to the key
}

func parsePageState(s pageState) []pageKey {
	var ks []pageKey
	for _, part := range strings.Split(string(s), ";") {
		if part == "" {
			continue
		}
		key, rest, _ := strings.Cut(part, "=")
		k := pageKey{key: key}
		for _, en := range strings.Split(rest, ",") {
			var e linEntry
			sock, meta, _ := strings.Cut(en, ":")
			fmt.Sscan(sock, &e.socket)
			e.key, e.meta = key, meta
			k.entries = append(k.entries, e)
		}
		ks = append(ks, k)
	}
	return ks
}

func formatPageState(ks []pageKey) pageState {
	var b strings.Builder
	for _, k := range ks {
		b.WriteString(k.key + "=")
		for i, e := range k.entries {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d:%s", e.socket, e.meta)
		}
		b.WriteByte(';')
	}
	return pageState(b.String())
}

// renderPage writes a page's entries as socket:key=meta|...
func renderPage(p *Page) string {
	parts := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		parts[i] = fmt.Sprintf("%d:%s=%s", e.Socket, e.Key, e.Meta)
	}
	return strings.Join(parts, "|")
}

// removeSocket takes socket's entry out of ks, and its key too if that
// was the key's last entry.
func removeSocket(ks []pageKey, s SocketID) ([]pageKey, bool) {
	for i := range ks {
		for j, e := range ks[i].entries {
			if e.socket == s {
				ks[i].entries = append(ks[i].entries[:j:j], ks[i].entries[j+1:]...)
				if len(ks[i].entries) == 0 {
					ks = append(ks[:i:i], ks[i+1:]...)
				}
				return ks, true
			}
		}
	}
	return ks, false
}

var pageLinModel = porcupine.Model{
	Partition: linModel.Partition,
	Init:      func() any { return pageState("") },
	Step: func(state, input, output any) (bool, any) {
		ks := parsePageState(state.(pageState))
		in, out := input.(linInput), output.(linOutput)
		switch in.kind {
		case linTrack:
			if out.err != nil {
				return false, state
			}
			// An update that keeps the key keeps the entry's place.
			for i := range ks {
				for j, e := range ks[i].entries {
					if e.socket == in.socket && ks[i].key == in.key {
						ks[i].entries[j].meta = in.meta
						return true, formatPageState(ks)
					}
				}
			}
			ks, _ = removeSocket(ks, in.socket)
			e := linEntry{in.socket, in.key, in.meta}
			found := false
			for i := range ks {
				if ks[i].key == in.key {
					ks[i].entries = append(ks[i].entries, e)
					found = true
				}
			}
			if !found {
				ks = append(ks, pageKey{key: in.key, entries: []linEntry{e}})
			}
		case linUntrack:
			var ok bool
			ks, ok = removeSocket(ks, in.socket)
			if ok != out.ok {
				return false, state
			}
		case linUntrackAll:
			ks, _ = removeSocket(ks, in.socket)
		case linCountKeys, linPage:
			entries := 0
			var page []string
			for i, k := range ks {
				entries += len(k.entries)
				if in.kind == linPage && i < out.limit {
					for _, e := range k.entries {
						page = append(page, fmt.Sprintf("%d:%s=%s", e.socket, e.key, e.meta))
					}
				}
			}
			ok := out.keys == len(ks) && out.count == entries
			if in.kind == linPage {
				ok = ok && out.list == strings.Join(page, "|") && out.more == (len(ks) > out.limit)
			}
			return ok, state
		default:
			return false, state
		}
		return true, formatPageState(ks)
	},
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(pageState)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.kind {
		case linPage:
			return fmt.Sprintf("ListPage(%s, %d) -> %s (%d keys, %d entries, more %v)", in.topic, out.limit, out.list, out.keys, out.count, out.more)
		case linCountKeys:
			return fmt.Sprintf("CountKeys(%s) -> %d, %d", in.topic, out.keys, out.count)
		}
		return describeLinOp(input, output)
	},
}

// recordPageHistory runs goroutines whose sockets share keys, so that a
// key gains and loses entries, and whose updates move entries between
// keys.
func recordPageHistory(t *testing.T, e *Engine, goroutines, ops int, seed uint64) []porcupine.Operation {
	keys := []string{"a", "b", "c"}
	return recordOps(t, e, workload{
		sockets: []SocketID{1, 2, 3, 4, FirstRemoteSocket + 5},
		key:     func(_ SocketID, rng *rand.Rand) string { return keys[rng.IntN(len(keys))] },
		metas:   []string{`{"v":1}`, `{"v":2}`},
		ops:     []weightedOp{{linTrack, 9}, {linUntrack, 4}, {linUntrackAll, 1}, {linPage, 4}, {linCountKeys, 2}},
	}, goroutines, ops, seed)
}

// TestListPageLinearizable checks that a page and CountKeys are each one
// instant of the topic, in its key order.
func TestListPageLinearizable(t *testing.T) {
	for _, shards := range []int{1, 2} {
		for round := range 3 {
			t.Run(fmt.Sprintf("shards=%d/round=%d", shards, round), func(t *testing.T) {
				e := mustNew(t, Config{Capacity: 64, MaxPerSocket: 64, Shards: shards, History: 16})
				history := recordPageHistory(t, e, 6, *linOps, uint64(round*10+shards))
				if res := checkLinearizable(t, pageLinModel, history); res != porcupine.Ok {
					t.Fatalf("history of %d operations: %s", len(history), res)
				}
			})
		}
	}
}

// TestPageLinearizabilityCheckRejectsWrongHistories makes sure the check
// can fail: a page in join order instead of key order, and a count that
// mixes two instants.
func TestPageLinearizabilityCheckRejectsWrongHistories(t *testing.T) {
	op := func(c int, in linInput, out linOutput, at int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: in, Output: out, Call: at, Return: at + 1}
	}
	track := func(s SocketID, key string) linInput {
		return linInput{kind: linTrack, socket: s, topic: "t", key: key, meta: "{}"}
	}
	base := []porcupine.Operation{
		op(0, track(1, "a"), linOutput{}, 0),
		op(0, track(2, "b"), linOutput{}, 2),
		op(0, track(3, "a"), linOutput{}, 4),
	}
	page := linInput{kind: linPage, topic: "t"}
	right := append(base[:3:3], op(1, page, linOutput{list: "1:a={}|3:a={}|2:b={}", keys: 2, count: 3, limit: MaxPageLimit}, 6))
	if !porcupine.CheckOperations(pageLinModel, right) {
		t.Fatal("a right page failed")
	}
	joinOrder := append(base[:3:3], op(1, page, linOutput{list: "1:a={}|2:b={}|3:a={}", keys: 2, count: 3, limit: MaxPageLimit}, 6))
	if porcupine.CheckOperations(pageLinModel, joinOrder) {
		t.Fatal("a page in join order passed")
	}
	torn := append(base[:3:3], op(1, linInput{kind: linCountKeys, topic: "t"}, linOutput{keys: 1, count: 3}, 6))
	if porcupine.CheckOperations(pageLinModel, torn) {
		t.Fatal("a count of 1 key and 3 entries passed")
	}
}
