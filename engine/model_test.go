package engine

import (
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/presencekit/presence/internal/jsonobject"
)

// model is the sequential reference the engine is tested against: plain
// maps, no concurrency, the documented rules written out directly. Meta
// validity is delegated to jsonobject.Check, which is fuzzed against
// encoding/json in its own package.
type model struct {
	cfg   Config
	seq   uint64
	pairs map[mpair]*mentry
	// keys holds, for each key present in a topic, when it joined the
	// topic's key order: when its first entry arrived.
	keys map[mpair2]uint64
}

// mpair2 is a key of a topic.
type mpair2 struct{ topic, key string }

type mpair struct {
	s     SocketID
	topic string
}

type mentry struct {
	key, meta string
	join      uint64
	toKey     uint64 // when the entry came to its key
}

func newModel(cfg Config) *model {
	if err := cfg.fill(); err != nil {
		panic(err)
	}
	return &model{cfg: cfg, pairs: map[mpair]*mentry{}, keys: map[mpair2]uint64{}}
}

func (m *model) track(s SocketID, topic, key string, meta []byte) error {
	switch {
	case topic == "" || len(topic) <= m.cfg.MaxTopicLen && !utf8.ValidString(topic):
		return ErrInvalidTopic
	case len(topic) > m.cfg.MaxTopicLen:
		return ErrTopicTooLong
	case key == "" || len(key) <= m.cfg.MaxKeyLen && !utf8.ValidString(key):
		return ErrInvalidKey
	case len(key) > m.cfg.MaxKeyLen:
		return ErrKeyTooLong
	case len(meta) > m.cfg.MaxMetaLen:
		return ErrMetaTooLong
	}
	stored := "{}"
	if len(meta) > 0 {
		start, end, err := jsonobject.Check(meta)
		if err != nil {
			return ErrInvalidMeta
		}
		stored = string(meta[start:end])
	}
	p := mpair{s, topic}
	if e, ok := m.pairs[p]; ok {
		if e.key != key {
			m.seq++
			e.toKey = m.seq
		}
		e.key, e.meta = key, stored
		m.fixKeys()
		return nil
	}
	if m.socketLen(s) >= m.cfg.MaxPerSocket {
		return ErrSocketLimit
	}
	if len(m.pairs) >= m.cfg.Capacity || s < FirstRemoteSocket && m.localLen() >= m.cfg.LocalCapacity {
		return ErrFull
	}
	m.seq++
	m.pairs[p] = &mentry{key: key, meta: stored, join: m.seq, toKey: m.seq}
	m.fixKeys()
	return nil
}

// fixKeys brings the key order up to date after one operation: a key
// with entries that is not in it joins at the end, and one without
// entries leaves. An operation adds at most one key.
func (m *model) fixKeys() {
	present := map[mpair2]bool{}
	for p, e := range m.pairs {
		k := mpair2{p.topic, e.key}
		present[k] = true
		if _, ok := m.keys[k]; !ok {
			m.seq++
			m.keys[k] = m.seq
		}
	}
	for k := range m.keys {
		if !present[k] {
			delete(m.keys, k)
		}
	}
}

// mkey is one key of a topic with its entries, as a page holds it.
type mkey struct {
	key     string
	join    uint64
	entries []listed
}

// keyOrder returns the topic's keys in key order, each with its entries in
// the order they came to it.
func (m *model) keyOrder(topic string) []mkey {
	var out []mkey
	for k, join := range m.keys {
		if k.topic != topic {
			continue
		}
		var es []*mentry
		for p, e := range m.pairs {
			if p.topic == topic && e.key == k.key {
				es = append(es, e)
			}
		}
		slices.SortFunc(es, func(a, b *mentry) int { return int(a.toKey) - int(b.toKey) })
		mk := mkey{key: k.key, join: join}
		for _, e := range es {
			mk.entries = append(mk.entries, listed{Key: e.key, Meta: json.RawMessage(e.meta)})
		}
		out = append(out, mk)
	}
	slices.SortFunc(out, func(a, b mkey) int { return int(a.join) - int(b.join) })
	return out
}

func (m *model) socketLen(s SocketID) int {
	n := 0
	for p := range m.pairs {
		if p.s == s {
			n++
		}
	}
	return n
}

func (m *model) localLen() int {
	n := 0
	for p := range m.pairs {
		if p.s < FirstRemoteSocket {
			n++
		}
	}
	return n
}

func (m *model) untrack(s SocketID, topic string) bool {
	p := mpair{s, topic}
	_, ok := m.pairs[p]
	delete(m.pairs, p)
	m.fixKeys()
	return ok
}

func (m *model) untrackAll(s SocketID) int {
	n := 0
	for p := range m.pairs {
		if p.s == s {
			delete(m.pairs, p)
			n++
		}
	}
	m.fixKeys()
	return n
}

func (m *model) count(topic string) int { return len(m.list(topic)) }

// list returns the topic's entries in join order.
func (m *model) list(topic string) []listed {
	var es []*mentry
	for p, e := range m.pairs {
		if p.topic == topic {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *mentry) int { return int(a.join) - int(b.join) })
	out := []listed{}
	for _, e := range es {
		out = append(out, listed{Key: e.key, Meta: json.RawMessage(e.meta)})
	}
	return out
}

// listed is one element of a List output.
type listed struct {
	Key  string          `json:"key"`
	Meta json.RawMessage `json:"meta"`
}

// parseList decodes a List output; it fails on anything but a JSON array of
// {"key","meta"} objects.
func parseList(b []byte) ([]listed, error) {
	out := []listed{}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errTrailing
	}
	return out, nil
}

func equalListed(a, b []listed) bool {
	return slices.EqualFunc(a, b, func(x, y listed) bool { return x.Key == y.Key && string(x.Meta) == string(y.Meta) })
}
