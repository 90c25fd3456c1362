package peers

import (
	"encoding/json"
	"io"

	"github.com/presencekit/presence/bench/registry"
	"github.com/presencekit/presence/engine"
)

// Centrifuge is centrifuge's MemoryPresenceManager as a registry that
// presbench's workloads (bench/stress) drive: its reads encode to JSON as
// a server must before sending presence, and a diff is a full one, as
// the manager keeps no history. It holds at most capacity entries.
type Centrifuge struct{ *centrifugeReg }

// NewCentrifuge returns an empty Centrifuge of capacity entries.
func NewCentrifuge(capacity int) Centrifuge { return Centrifuge{newCentrifuge(capacity)} }

var _ registry.Stressed = Centrifuge{}

// List implements registry.Stressed.
func (c Centrifuge) List(topic string, buf []byte) ([]byte, error) {
	return fit(c.AppendList(buf[:0], topic), buf)
}

// Diff implements registry.Stressed: every member joins.
func (c Centrifuge) Diff(topic string, buf []byte) ([]byte, error) {
	return fit(c.appendDiff(buf[:0], topic), buf)
}

// Changes implements registry.Stressed: a full diff every time.
func (c Centrifuge) Changes(dst []byte, topic string, _ engine.Cursor) ([]byte, engine.Cursor) {
	return c.appendDiff(dst, topic), engine.Cursor{}
}

// appendDiff appends {"joins":[...],"leaves":[]}, as the baseline does.
func (c Centrifuge) appendDiff(dst []byte, topic string) []byte {
	p, _ := c.pm.Presence(topic)
	d := struct {
		Joins  []listed `json:"joins"`
		Leaves []listed `json:"leaves"`
	}{make([]listed, 0, len(p)), []listed{}}
	for _, info := range p {
		d.Joins = append(d.Joins, listed{info.UserID, info.ChanInfo})
	}
	out, _ := json.Marshal(d)
	return append(dst, out...)
}

// Len implements registry.Stressed.
func (c Centrifuge) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Cap implements registry.Stressed.
func (c Centrifuge) Cap() int { return c.capacity }

// ReadRetries implements registry.Stressed: the manager locks.
func (c Centrifuge) ReadRetries() uint64 { return 0 }

// fit returns out if it is still in buf's array, or io.ErrShortBuffer.
func fit(out, buf []byte) ([]byte, error) {
	if len(out) > len(buf) || len(out) > 0 && &out[0] != &buf[0] {
		return nil, io.ErrShortBuffer
	}
	return out, nil
}
