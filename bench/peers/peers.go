// Package peers runs the engine's workloads through other presence
// registries, so that `go test -bench` compares them in one run:
//
//   - engine: github.com/presencekit/presence/engine
//   - baseline: sync.RWMutex, maps and encoding/json, written the way a
//     typical service would
//   - syncmap: the same on sync.Map
//   - centrifuge: github.com/centrifugal/centrifuge's MemoryPresenceManager,
//     with presence encoded to JSON as a server must before sending it
//
// It is its own module so that users of the engine never download the
// peers.
package peers

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/centrifugal/centrifuge"
	"github.com/presencekit/presence/bench/registry"
)

// Registry is what every peer offers: the interface that the main module's
// adapters (engine, baseline) implement too.
type Registry = registry.Registry

// Peer names a registry and builds one of a capacity.
type Peer struct {
	Name string
	New  func(capacity int) Registry
}

// Peers lists every registry compared.
var Peers = []Peer{
	{"engine", func(c int) Registry {
		e, err := registry.NewEngine(c)
		if err != nil {
			panic(err)
		}
		return e
	}},
	{"baseline", func(c int) Registry { return registry.NewBaseline(c) }},
	{"syncmap", func(c int) Registry { return newSyncMap(c) }},
	{"centrifuge", func(c int) Registry { return newCentrifuge(c) }},
}

// listed is the engine's List element, for peers that encode with
// encoding/json.
type listed struct {
	Key  string          `json:"key"`
	Meta json.RawMessage `json:"meta"`
}

var (
	errFull    = registry.ErrFull
	errInvalid = errors.New("invalid meta")
)

// syncMap is a registry on sync.Map: topic -> *sync.Map of socket -> entry,
// and socket -> *sync.Map of topics for UntrackAll.
type syncMap struct {
	capacity int64
	n        atomic.Int64
	topics   sync.Map
	sockets  sync.Map
}

type smEntry struct {
	key  string
	meta json.RawMessage
}

func newSyncMap(capacity int) *syncMap { return &syncMap{capacity: int64(capacity)} }

func (m *syncMap) Track(s uint64, topic, key string, meta []byte) error {
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	if !json.Valid(meta) || meta[0] != '{' {
		return errInvalid
	}
	e := &smEntry{key: key, meta: append(json.RawMessage(nil), meta...)}
	members, _ := m.topics.LoadOrStore(topic, &sync.Map{})
	mm := members.(*sync.Map)
	if _, ok := mm.Load(s); !ok {
		if m.n.Add(1) > m.capacity {
			m.n.Add(-1)
			return errFull
		}
		if _, loaded := mm.LoadOrStore(s, e); loaded {
			m.n.Add(-1)
		} else {
			ts, _ := m.sockets.LoadOrStore(s, &sync.Map{})
			ts.(*sync.Map).Store(topic, struct{}{})
			return nil
		}
	}
	mm.Store(s, e)
	return nil
}

func (m *syncMap) Untrack(s uint64, topic string) bool {
	members, ok := m.topics.Load(topic)
	if !ok {
		return false
	}
	if _, ok := members.(*sync.Map).LoadAndDelete(s); !ok {
		return false
	}
	m.n.Add(-1)
	if ts, ok := m.sockets.Load(s); ok {
		ts.(*sync.Map).Delete(topic)
	}
	return true
}

func (m *syncMap) UntrackAll(s uint64) int {
	ts, ok := m.sockets.LoadAndDelete(s)
	if !ok {
		return 0
	}
	n := 0
	ts.(*sync.Map).Range(func(topic, _ any) bool {
		if m.Untrack(s, topic.(string)) {
			n++
		}
		return true
	})
	return n
}

func (m *syncMap) AppendList(dst []byte, topic string) []byte {
	list := []listed{}
	if members, ok := m.topics.Load(topic); ok {
		members.(*sync.Map).Range(func(_, v any) bool {
			e := v.(*smEntry)
			list = append(list, listed{e.key, e.meta})
			return true
		})
	}
	out, _ := json.Marshal(list)
	return append(dst, out...)
}

func (m *syncMap) Count(topic string) int {
	n := 0
	if members, ok := m.topics.Load(topic); ok {
		members.(*sync.Map).Range(func(_, _ any) bool { n++; return true })
	}
	return n
}

// centrifugeReg drives centrifuge's MemoryPresenceManager the way its
// server does: a client id per connection, the user id and channel info
// per subscription, and the channels of each client remembered for
// disconnect. It holds at most capacity entries, as the engine does, and
// refuses more with registry.ErrFull.
type centrifugeReg struct {
	pm       *centrifuge.MemoryPresenceManager
	capacity int
	mu       sync.Mutex
	channels map[uint64]map[string]struct{}
	n        int // entries, under mu
}

func newCentrifuge(capacity int) *centrifugeReg {
	pm, err := centrifuge.NewMemoryPresenceManager(nil, centrifuge.MemoryPresenceManagerConfig{})
	if err != nil {
		panic(err)
	}
	return &centrifugeReg{pm: pm, capacity: capacity, channels: map[uint64]map[string]struct{}{}}
}

func (c *centrifugeReg) Track(s uint64, topic, key string, meta []byte) error {
	// Reserve the entry first, so that concurrent Tracks never pass the
	// capacity.
	c.mu.Lock()
	_, update := c.channels[s][topic]
	if !update {
		if c.n >= c.capacity {
			c.mu.Unlock()
			return registry.ErrFull
		}
		if c.channels[s] == nil {
			c.channels[s] = map[string]struct{}{}
		}
		c.channels[s][topic] = struct{}{}
		c.n++
	}
	c.mu.Unlock()
	id := strconv.FormatUint(s, 10)
	info := &centrifuge.ClientInfo{ClientID: id, UserID: key, ChanInfo: append([]byte(nil), meta...)}
	if err := c.pm.AddPresence(topic, id, info); err != nil {
		if !update {
			c.mu.Lock()
			delete(c.channels[s], topic)
			c.n--
			c.mu.Unlock()
		}
		return err
	}
	return nil
}

func (c *centrifugeReg) Untrack(s uint64, topic string) bool {
	c.mu.Lock()
	_, ok := c.channels[s][topic]
	if ok {
		delete(c.channels[s], topic)
		c.n--
	}
	c.mu.Unlock()
	if ok {
		c.pm.RemovePresence(topic, strconv.FormatUint(s, 10), "")
	}
	return ok
}

func (c *centrifugeReg) UntrackAll(s uint64) int {
	c.mu.Lock()
	chans := c.channels[s]
	delete(c.channels, s)
	c.n -= len(chans)
	c.mu.Unlock()
	id := strconv.FormatUint(s, 10)
	for topic := range chans {
		c.pm.RemovePresence(topic, id, "")
	}
	return len(chans)
}

func (c *centrifugeReg) AppendList(dst []byte, topic string) []byte {
	p, _ := c.pm.Presence(topic)
	list := make([]listed, 0, len(p))
	for _, info := range p {
		list = append(list, listed{info.UserID, info.ChanInfo})
	}
	out, _ := json.Marshal(list)
	return append(dst, out...)
}

func (c *centrifugeReg) Count(topic string) int {
	st, _ := c.pm.PresenceStats(topic)
	return st.NumClients
}
