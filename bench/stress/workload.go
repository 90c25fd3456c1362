package stress

import (
	"math/rand/v2"
	"strconv"
)

// step is one operation to perform. Steps depend only on the seed, the
// worker and the steps before them, never on what the target answered, so
// the same flags and seed replay the same sequence.
type step struct {
	op      Op
	socket  uint64
	topic   int
	version uint64 // meta version, for track and update
}

type pair struct {
	socket uint64
	topic  int
}

// generator produces one worker's steps.
type generator struct {
	cfg    *Config
	rng    *rand.Rand
	zipf   *rand.Zipf
	sockLo uint64 // first socket of this worker
	sockN  int    // sockets of this worker
	// tracked holds the pairs this worker has tracked and not untracked,
	// assuming every Track succeeded; at[p] is p's index in tracked.
	tracked []pair
	at      map[pair]int
	cumul   [numOps]int
	version uint64
}

func newGenerator(cfg *Config, worker int) *generator {
	g := &generator{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, uint64(worker)+1)),
		at:  map[pair]int{},
	}
	per := cfg.Sockets / cfg.Workers
	g.sockLo = uint64(worker*per) + 1
	g.sockN = per
	if worker == cfg.Workers-1 {
		g.sockN = cfg.Sockets - worker*per
	}
	if cfg.Dist == "zipf" {
		g.zipf = rand.NewZipf(g.rng, cfg.ZipfS, 1, uint64(cfg.Topics-1))
	}
	sum := 0
	for op, p := range cfg.Mix {
		sum += p
		g.cumul[op] = sum
	}
	return g
}

func (g *generator) topic() int {
	if g.zipf != nil {
		return int(g.zipf.Uint64())
	}
	return g.rng.IntN(g.cfg.Topics)
}

func (g *generator) socket() uint64 { return g.sockLo + uint64(g.rng.IntN(g.sockN)) }

func (g *generator) add(p pair) {
	if _, ok := g.at[p]; !ok {
		g.at[p] = len(g.tracked)
		g.tracked = append(g.tracked, p)
	}
}

func (g *generator) remove(p pair) {
	i, ok := g.at[p]
	if !ok {
		return
	}
	last := g.tracked[len(g.tracked)-1]
	g.tracked[i] = last
	g.at[last] = i
	g.tracked = g.tracked[:len(g.tracked)-1]
	delete(g.at, p)
}

func (g *generator) next() step {
	r := g.rng.IntN(100)
	op := OpTrack
	for op < numOps-1 && r >= g.cumul[op] {
		op++
	}
	return g.step(op)
}

func (g *generator) step(op Op) step {
	switch op {
	case OpTrack:
		p := pair{g.socket(), g.topic()}
		for try := 0; try < 4; try++ {
			if _, ok := g.at[p]; !ok {
				break
			}
			p = pair{g.socket(), g.topic()}
		}
		g.add(p)
		g.version++
		return step{op: op, socket: p.socket, topic: p.topic, version: g.version}
	case OpUpdate:
		if len(g.tracked) == 0 {
			p := pair{g.socket(), g.topic()}
			g.add(p)
			g.version++
			return step{op: OpTrack, socket: p.socket, topic: p.topic, version: g.version}
		}
		p := g.tracked[g.rng.IntN(len(g.tracked))]
		g.version++
		return step{op: op, socket: p.socket, topic: p.topic, version: g.version}
	case OpUntrack:
		if len(g.tracked) == 0 {
			return step{op: op, socket: g.socket(), topic: g.topic()}
		}
		p := g.tracked[g.rng.IntN(len(g.tracked))]
		g.remove(p)
		return step{op: op, socket: p.socket, topic: p.topic}
	case OpUntrackAll:
		s := g.socket()
		if len(g.tracked) > 0 && g.rng.IntN(2) == 0 {
			s = g.tracked[g.rng.IntN(len(g.tracked))].socket // a socket that has entries
		}
		for i := 0; i < len(g.tracked); {
			if p := g.tracked[i]; p.socket == s {
				g.remove(p)
				continue
			}
			i++
		}
		return step{op: op, socket: s}
	default:
		return step{op: op, topic: g.topic()}
	}
}

// appendKey writes the key of socket s, padded to size bytes.
func appendKey(dst []byte, s uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, 's')
	dst = strconv.AppendUint(dst, s, 10)
	dst = append(dst, '_')
	for len(dst)-start < size {
		dst = append(dst, 'k')
	}
	return dst
}

// appendMeta writes {"s":S,"v":V,"pad":"..."}, padded to size bytes when
// size allows. A checker can tell a torn copy from the padding, which is
// derived from V.
func appendMeta(dst []byte, s, v uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendUint(dst, s, 10)
	dst = append(dst, `,"v":`...)
	dst = strconv.AppendUint(dst, v, 10)
	dst = append(dst, `,"pad":"`...)
	c := byte('a' + v%26)
	for len(dst)-start < size-2 {
		dst = append(dst, c)
	}
	return append(dst, `"}`...)
}
