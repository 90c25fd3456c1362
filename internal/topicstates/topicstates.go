// Package topicstates rebuilds, from a log of a topic's writes, every list
// of entries the topic went through, so that a test of concurrent reads can
// check that each read was exactly one of them. It is used by tests only.
package topicstates

import (
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/presencekit/presence/jsonwriter"
)

// Kind is what an Op did.
type Kind uint8

const (
	Join   Kind = iota // a new entry at the end
	Update             // entry K got Key and Meta, in place
	Remove             // entry K left
)

// Op is one write to a topic, as its writer logged it.
type Op struct {
	Kind      Kind
	K         int
	Key, Meta string
}

// maxReads bounds the reads AddRead keeps for one topic.
const maxReads = 100000

// AddRead appends the hash of body, the entries a read found as List
// writes them between its brackets, unless it equals the last one kept: a
// run of equal reads, such as those of a topic before its writer starts,
// is kept once.
func AddRead(reads []uint64, body []byte) []uint64 {
	h := xxhash.Sum64(body)
	if len(reads) >= maxReads || len(reads) > 0 && reads[len(reads)-1] == h {
		return reads
	}
	return append(reads, h)
}

// Check replays log from an empty topic and returns an error if one of
// reads (from AddRead) is no state the topic went through, or if none of
// them found the topic with entries.
func Check(log []Op, reads []uint64) error {
	empty := xxhash.Sum64(nil)
	states := map[uint64]bool{empty: true}
	type entry struct{ key, meta string }
	var members []entry
	var b []byte
	for _, o := range log {
		switch o.Kind {
		case Join:
			members = append(members, entry{o.Key, o.Meta})
		case Update:
			members[o.K] = entry{o.Key, o.Meta}
		case Remove:
			members = slices.Delete(members, o.K, o.K+1)
		}
		b = b[:0]
		for i, e := range members {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `{"key":%s,"meta":%s}`, jsonwriter.AppendString(nil, e.key), e.meta)
		}
		states[xxhash.Sum64(b)] = true
	}
	full := 0
	for i, h := range reads {
		if !states[h] {
			return fmt.Errorf("read %d of %d is a state the topic never held", i, len(reads))
		}
		if h != empty {
			full++
		}
	}
	if full == 0 {
		return fmt.Errorf("no read of %d found it with entries; %d ops", len(reads), len(log))
	}
	return nil
}
