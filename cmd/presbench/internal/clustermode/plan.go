package clustermode

import (
	"math"
	"math/rand/v2"
	"slices"
)

// plan is the population of a scale run: which nodes are in which topics
// and how many entries each node holds in each of its topics.
type plan struct {
	sizes   []int         // entries of each topic, Zipf-like: the r-th largest ∝ 1/r^s
	members [][]int       // the nodes in each topic, ascending
	own     [][]ownership // each node's topics, with its entries in each
}

// ownership is a node's share of one topic.
type ownership struct {
	topic   int
	entries int
}

// newPlan spreads entries over topics, the r-th most popular topic
// holding about 1/r^zipf of what the first holds, and each topic over
// about as many nodes as its size asks for, so that every node is in
// about share of the topics: a big topic is in many nodes, a small one in
// one. A topic's entries are split evenly among its nodes. The same seed
// gives the same plan.
func newPlan(nodes, topics, entries int, share, zipf float64, seed uint64) *plan {
	p := &plan{sizes: make([]int, topics), members: make([][]int, topics), own: make([][]ownership, nodes)}
	weights := make([]float64, topics)
	var sum float64
	for r := range topics {
		weights[r] = 1 / math.Pow(float64(r+1), zipf)
		sum += weights[r]
	}
	// One entry for each topic first, then the rest by weight; what
	// rounding leaves goes to the first topics.
	left := entries - topics
	given := 0
	for r := range topics {
		p.sizes[r] = 1 + int(float64(left)*weights[r]/sum)
		given += p.sizes[r]
	}
	for r := 0; given < entries; r = (r + 1) % topics {
		p.sizes[r]++
		given++
	}
	perNode := max(1, int(math.Round(share*float64(topics))))
	memberships := float64(nodes * perNode)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	load := make([]int, nodes) // topics each node is in so far
	order := make([]int, nodes)
	for t := range topics {
		m := int(math.Round(memberships * float64(p.sizes[t]) / float64(entries)))
		m = max(1, min(m, nodes, p.sizes[t]))
		// The m least loaded nodes, ties broken at random, so that every
		// node ends up in about perNode topics.
		for i := range order {
			order[i] = i
		}
		rng.Shuffle(nodes, func(i, j int) { order[i], order[j] = order[j], order[i] })
		slices.SortStableFunc(order, func(a, b int) int { return load[a] - load[b] })
		in := slices.Clone(order[:m])
		slices.Sort(in)
		p.members[t] = in
		for i, nd := range in {
			load[nd]++
			n := p.sizes[t] / m
			if i < p.sizes[t]%m {
				n++
			}
			p.own[nd] = append(p.own[nd], ownership{topic: t, entries: n})
		}
	}
	return p
}

// ownEntries returns the entries node nd owns.
func (p *plan) ownEntries(nd int) int {
	n := 0
	for _, o := range p.own[nd] {
		n += o.entries
	}
	return n
}

// interestEntries returns the entries of the topics node nd is in, its
// own included.
func (p *plan) interestEntries(nd int) int {
	n := 0
	for _, o := range p.own[nd] {
		n += p.sizes[o.topic]
	}
	return n
}
