// Package baseline is a presence registry written the way a typical Go
// service would write one: a sync.RWMutex around maps, and encoding/json for
// validation and output. It gives the same answers as package engine and is
// the yardstick engine's benchmarks are measured against.
//
// All methods may be called concurrently.
package baseline

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
)

// Errors.
var (
	ErrFull    = errors.New("baseline: full")
	ErrInvalid = errors.New("baseline: invalid input")
)

type entry struct {
	Key  string          `json:"key"`
	Meta json.RawMessage `json:"meta"`
	seq  uint64
}

// Registry maps (socket, topic) to an entry.
type Registry struct {
	mu       sync.RWMutex
	capacity int
	n        int
	seq      uint64
	topics   map[string]map[uint64]*entry
	sockets  map[uint64]map[string]struct{}
}

// New returns a Registry that holds up to capacity entries.
func New(capacity int) *Registry {
	return &Registry{
		capacity: capacity,
		topics:   map[string]map[uint64]*entry{},
		sockets:  map[uint64]map[string]struct{}{},
	}
}

// Track stores or updates the entry of (s, topic).
func (r *Registry) Track(s uint64, topic, key string, meta []byte) error {
	if topic == "" || key == "" || len(topic) > 128 || len(key) > 64 || len(meta) > 256 {
		return ErrInvalid
	}
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	if !json.Valid(meta) || meta[0] != '{' {
		return ErrInvalid
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	members := r.topics[topic]
	if e, ok := members[s]; ok {
		e.Key = key
		e.Meta = append(json.RawMessage(nil), meta...) // readers may still hold the old one
		return nil
	}
	if r.n >= r.capacity {
		return ErrFull
	}
	if members == nil {
		members = map[uint64]*entry{}
		r.topics[topic] = members
	}
	r.seq++
	members[s] = &entry{Key: key, Meta: append(json.RawMessage(nil), meta...), seq: r.seq}
	if r.sockets[s] == nil {
		r.sockets[s] = map[string]struct{}{}
	}
	r.sockets[s][topic] = struct{}{}
	r.n++
	return nil
}

// Untrack removes the entry of (s, topic).
func (r *Registry) Untrack(s uint64, topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.untrackLocked(s, topic)
}

func (r *Registry) untrackLocked(s uint64, topic string) bool {
	members := r.topics[topic]
	if _, ok := members[s]; !ok {
		return false
	}
	delete(members, s)
	if len(members) == 0 {
		delete(r.topics, topic)
	}
	delete(r.sockets[s], topic)
	if len(r.sockets[s]) == 0 {
		delete(r.sockets, s)
	}
	r.n--
	return true
}

// UntrackAll removes every entry of s.
func (r *Registry) UntrackAll(s uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for topic := range r.sockets[s] {
		if r.untrackLocked(s, topic) {
			n++
		}
	}
	return n
}

// Capacity returns the most entries the Registry holds.
func (r *Registry) Capacity() int { return r.capacity }

// Count returns the number of entries in topic.
func (r *Registry) Count(topic string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.topics[topic])
}

// Len returns the number of entries.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

func (r *Registry) sorted(topic string) []*entry {
	r.mu.RLock()
	list := make([]*entry, 0, len(r.topics[topic]))
	for _, e := range r.topics[topic] {
		c := *e
		list = append(list, &c)
	}
	r.mu.RUnlock()
	slices.SortFunc(list, func(a, b *entry) int { return int(a.seq - b.seq) })
	return list
}

// AppendList appends the topic's entries as a JSON array, in join order.
func (r *Registry) AppendList(dst []byte, topic string) []byte {
	out, err := json.Marshal(r.sorted(topic))
	if err != nil {
		panic(err)
	}
	return append(dst, out...)
}

// List writes the topic's entries into buf.
func (r *Registry) List(topic string, buf []byte) ([]byte, error) {
	out := r.AppendList(nil, topic)
	if len(out) > len(buf) {
		return nil, io.ErrShortBuffer
	}
	return buf[:copy(buf, out)], nil
}

// AppendDiff appends {"joins":[...],"leaves":[]}.
func (r *Registry) AppendDiff(dst []byte, topic string) []byte {
	out, err := json.Marshal(struct {
		Joins  []*entry `json:"joins"`
		Leaves []*entry `json:"leaves"`
	}{r.sorted(topic), []*entry{}})
	if err != nil {
		panic(err)
	}
	return append(dst, out...)
}
