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
}

type mpair struct {
	s     SocketID
	topic string
}

type mentry struct {
	key, meta string
	join      uint64
}

func newModel(cfg Config) *model {
	if err := cfg.fill(); err != nil {
		panic(err)
	}
	return &model{cfg: cfg, pairs: map[mpair]*mentry{}}
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
		e.key, e.meta = key, stored
		return nil
	}
	if m.socketLen(s) >= m.cfg.MaxPerSocket {
		return ErrSocketLimit
	}
	if len(m.pairs) >= m.cfg.Capacity || s < FirstRemoteSocket && m.localLen() >= m.cfg.LocalCapacity {
		return ErrFull
	}
	m.seq++
	m.pairs[p] = &mentry{key: key, meta: stored, join: m.seq}
	return nil
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
