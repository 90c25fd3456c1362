package channel

import "github.com/presencekit/presence/engine"

// roster is what a topic's subscribers were last told of its presence, by
// ref. When the engine's history no longer reaches back to the topic's
// cursor (a storm of changes in one window), the subscribers catch up with
// the difference between the roster and a full state, as one
// presence_diff, instead of the whole state each.
type roster map[uint64]rosterEntry

type rosterEntry struct {
	socket    engine.SocketID
	key, meta string
}

// set makes the roster entries.
func (r roster) set(entries []engine.Entry) {
	clear(r)
	for i := range entries {
		e := &entries[i]
		r[e.Ref] = rosterEntry{socket: e.Socket, key: string(e.Key), meta: string(e.Meta)}
	}
}

// apply records a presence_diff, joins first as the JavaScript client
// applies them.
func (r roster) apply(joins, leaves []engine.Entry) {
	for i := range joins {
		e := &joins[i]
		r[e.Ref] = rosterEntry{socket: e.Socket, key: string(e.Key), meta: string(e.Meta)}
	}
	for i := range leaves {
		delete(r, leaves[i].Ref)
	}
}

// diffTo returns the joins and leaves that take the roster to entries, and
// makes the roster entries. The joins are entries' own.
func (r roster) diffTo(entries []engine.Entry) (joins, leaves []engine.Entry) {
	now := make(map[uint64]bool, len(entries))
	for i := range entries {
		now[entries[i].Ref] = true
		if _, ok := r[entries[i].Ref]; !ok {
			joins = append(joins, entries[i])
		}
	}
	for ref, e := range r {
		if !now[ref] {
			leaves = append(leaves, engine.Entry{Socket: e.socket, Ref: ref, Key: []byte(e.key), Meta: []byte(e.meta)})
		}
	}
	r.set(entries)
	return joins, leaves
}
