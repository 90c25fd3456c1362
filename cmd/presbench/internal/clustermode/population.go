package clustermode

import (
	"fmt"

	"github.com/presencekit/presence/engine"
)

// population is what each node owns now: it starts as the plan, and the
// churn's moves change it. Only the goroutine that writes the entries
// uses it.
type population struct {
	owned  [][]simEntry  // each node's entries
	global []entryRef    // every entry, for the churn to pick from
	counts []map[int]int // each node's own entries by topic, the topics it is in
	// left counts, for each node, the topics it left (unsubscribed from)
	// and did not join again: each must be dropped after the linger.
	left []int
}

// simEntry is one entry a node owns: one socket in one topic.
type simEntry struct {
	socket engine.SocketID
	topic  int
	key    string
	gen    int
}

// entryRef names an entry by its node and its index among the node's.
type entryRef struct{ node, idx int32 }

func newPopulation(p *plan) *population {
	pp := &population{owned: make([][]simEntry, len(p.own)), counts: make([]map[int]int, len(p.own)), left: make([]int, len(p.own))}
	for nd, ows := range p.own {
		pp.counts[nd] = map[int]int{}
		sock := engine.SocketID(1)
		for _, ow := range ows {
			for range ow.entries {
				pp.global = append(pp.global, entryRef{node: int32(nd), idx: int32(len(pp.owned[nd]))})
				pp.owned[nd] = append(pp.owned[nd], simEntry{socket: sock, topic: ow.topic, key: fmt.Sprintf("u%d", len(pp.global))})
				sock++
			}
			pp.counts[nd][ow.topic] += ow.entries
		}
	}
	return pp
}

// members returns the nodes in each of topics topics now, ascending.
func (pp *population) members(topics int) [][]int {
	m := make([][]int, topics)
	for nd, c := range pp.counts {
		for t := range topics {
			if c[t] > 0 {
				m[t] = append(m[t], nd)
			}
		}
	}
	return m
}

// remoteWanted returns, for each node, the remote entries of the topics
// it is in now: what it must mirror.
func (pp *population) remoteWanted(topics int) []int {
	sizes := make([]int, topics)
	for _, c := range pp.counts {
		for t, n := range c {
			sizes[t] += n
		}
	}
	want := make([]int, len(pp.counts))
	for nd, c := range pp.counts {
		for t, n := range c {
			if n > 0 {
				want[nd] += sizes[t] - n
			}
		}
	}
	return want
}
