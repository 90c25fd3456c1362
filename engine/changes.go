package engine

import (
	"strconv"

	"github.com/presencekit/presence/jsonwriter"
	"github.com/presencekit/presence/shard"
)

// Cursor is a position in a topic's change history, as returned by Snapshot,
// ChangesSince and AppendChanges. It names its topic too, by the topic's
// whole 64-bit hash: a cursor of another topic gives a full sync, unless
// the two topics' hashes are equal, about 1 in 2^64 for a pair of topics.
// The zero Cursor is the start of history, for every topic. Cursors are
// comparable with ==, and copying one allocates nothing.
//
// A Cursor's text form (MarshalText, and strings in JSON) is 32 hex
// digits. UnmarshalText and UnmarshalJSON also take the decimal number that
// cursors were written as before they held the whole hash: "0" is the zero
// Cursor, and any other number a cursor that gives a full sync.
type Cursor struct {
	topic uint64 // the topic's hash
	head  uint64 // the number of the shard's history event it follows
}

// legacyHead is the head of a cursor decoded from the old numeric form:
// ahead of every shard's head, so position rejects it.
const legacyHead = 1 << 63

func (e *Engine) makeCursor(hash, head uint64) Cursor {
	return Cursor{topic: hash, head: head}
}

// position returns the history number c stands for in the topic with this
// hash, whose shard's head is head. ok is false for a cursor of another
// topic, for one ahead of head, and for one older than the history kept,
// which only a full sync can answer anyway.
func (e *Engine) position(c Cursor, hash, head uint64) (n uint64, ok bool) {
	if c == (Cursor{}) {
		return 0, true
	}
	if c.topic != hash || c.head > head || head-c.head > uint64(e.cfg.History) {
		return 0, false
	}
	return c.head, true
}

// AppendText appends c's text form, 32 hex digits, to b.
func (c Cursor) AppendText(b []byte) ([]byte, error) {
	const digits = "0123456789abcdef"
	for _, v := range [2]uint64{c.topic, c.head} {
		for shift := 60; shift >= 0; shift -= 4 {
			b = append(b, digits[v>>shift&15])
		}
	}
	return b, nil
}

// MarshalText returns c's text form, 32 hex digits.
func (c Cursor) MarshalText() ([]byte, error) { return c.AppendText(make([]byte, 0, 32)) }

// String returns c's text form.
func (c Cursor) String() string {
	b, _ := c.AppendText(make([]byte, 0, 32))
	return string(b)
}

// UnmarshalText decodes a cursor's text form, or the old decimal form.
func (c *Cursor) UnmarshalText(b []byte) error {
	if len(b) == 32 {
		var v [2]uint64
		for i, ch := range b {
			d, ok := hexDigit(ch)
			if !ok {
				return ErrInvalidCursor
			}
			v[i/16] = v[i/16]<<4 | uint64(d)
		}
		*c = Cursor{topic: v[0], head: v[1]}
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return ErrInvalidCursor
	}
	*c = Cursor{}
	if n != 0 {
		*c = Cursor{head: legacyHead | n}
	}
	return nil
}

// UnmarshalJSON decodes a JSON string holding a cursor's text form, or a
// JSON number in the old decimal form.
func (c *Cursor) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return c.UnmarshalText(b[1 : len(b)-1])
	}
	return c.UnmarshalText(b)
}

func hexDigit(ch byte) (byte, bool) {
	switch {
	case '0' <= ch && ch <= '9':
		return ch - '0', true
	case 'a' <= ch && ch <= 'f':
		return ch - 'a' + 10, true
	case 'A' <= ch && ch <= 'F':
		return ch - 'A' + 10, true
	}
	return 0, false
}

// Entry is one presence entry as a reader copied it. Key and Meta point into
// the buffer of the Snapshot or Changes that holds the Entry, and stay valid
// until that value is passed to the Engine again.
type Entry struct {
	Socket SocketID
	// Ref names this version of the entry: it is unique in the Engine and
	// changes on every update (Phoenix's phx_ref).
	Ref  uint64
	Key  []byte // as tracked, unescaped
	Meta []byte // a JSON object
}

// Snapshot is a topic's entries at one instant, with the Cursor of that
// instant. Reuse a Snapshot across calls: it allocates only to grow.
type Snapshot struct {
	Entries []Entry
	Cursor  Cursor
	buf     []byte
}

// Snapshot fills dst with topic's entries in join order and the Cursor from
// which ChangesSince continues.
func (e *Engine) Snapshot(dst *Snapshot, topic string) {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(dst.buf[:0], jsonwriter.Unbounded)
	dst.Cursor = e.writeEntries(&w, shard.Records, topic)
	dst.buf = w.Bytes()
	dst.Entries = parseRecords(dst.Entries[:0], nil, dst.buf)
}

// Changes is what changed in a topic between two cursors. Reuse a Changes
// across calls: it allocates only to grow.
type Changes struct {
	// Joins and Leaves are in the order they happened. An update is a leave
	// of the old entry and a join of the new one; a join and a leave of the
	// same entry between the two cursors cancel out.
	Joins, Leaves []Entry
	// Next is the cursor to pass next time.
	Next Cursor
	// Full is set when the cursor was older than the history kept, or not
	// a cursor of this topic of this engine: then Joins hold every current
	// entry, Leaves is empty, and the caller must replace its state instead
	// of applying a diff.
	Full bool
	buf  []byte
}

// ChangesSince fills dst with topic's joins and leaves after cursor since.
func (e *Engine) ChangesSince(dst *Changes, topic string, since Cursor) {
	e.mustBeNew()
	e.changesBetween(dst, topic, since, Cursor{}, false)
}

// ChangesBetween is ChangesSince that stops at cursor until (or at the
// latest change, if until is later), so that a caller can bring a diff up
// to exactly the cursor of a Snapshot it took. dst.Next is the cursor the
// changes end at; with dst.Full it is the full sync's cursor instead.
func (e *Engine) ChangesBetween(dst *Changes, topic string, since, until Cursor) {
	e.mustBeNew()
	e.changesBetween(dst, topic, since, until, true)
}

func (e *Engine) changesBetween(dst *Changes, topic string, since, until Cursor, bounded bool) {
	var w jsonwriter.Writer
	w.Reset(dst.buf[:0], jsonwriter.Unbounded)
	dst.Joins, dst.Leaves, dst.Full = dst.Joins[:0], dst.Leaves[:0], false
	hash := e.pool.HashTopic(topic)
	sh := e.pool.ShardFor(hash)
	upto := sh.Head()
	if u, ok := e.position(until, hash, upto); ok && bounded {
		upto = u
	}
	upto = sh.Committed(topic, hash, upto)
	if from, ok := e.position(since, hash, upto); ok && from <= upto {
		if _, ok := sh.AppendChanges(&w, shard.Records, topic, hash, from, upto, shard.KindJoin|shard.KindLeave); ok {
			dst.Next = e.makeCursor(hash, upto)
			dst.buf = w.Bytes()
			dst.Joins = parseRecords(dst.Joins, &dst.Leaves, dst.buf)
			return
		}
		w.Reset(dst.buf[:0], jsonwriter.Unbounded)
	}
	_, head := sh.AppendEntries(&w, shard.Records, topic, hash)
	dst.Next, dst.Full = e.makeCursor(hash, head), true
	dst.buf = w.Bytes()
	dst.Joins = parseRecords(dst.Joins, &dst.Leaves, dst.buf)
}

// parseRecords appends the records in b to joins (entries and joins) and
// leaves.
func parseRecords(joins []Entry, leaves *[]Entry, b []byte) []Entry {
	for {
		r, rest, ok := shard.ParseRecord(b)
		if !ok {
			return joins
		}
		b = rest
		ent := Entry{Socket: SocketID(r.Socket), Ref: r.Ref, Key: r.Key, Meta: r.Meta}
		if r.Kind == shard.KindLeave {
			*leaves = append(*leaves, ent)
		} else {
			joins = append(joins, ent)
		}
	}
}

// AppendChanges appends topic's changes after cursor since as JSON,
// {"joins":[...],"leaves":[...]} with entries as in AppendList, and returns
// the next cursor. full is set when since was too old to answer: the output
// then holds every current entry as a join, as AppendDiff does, and the
// client must replace its state.
func (e *Engine) AppendChanges(dst []byte, topic string, since Cursor) (out []byte, next Cursor, full bool) {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(dst, jsonwriter.Unbounded)
	hash := e.pool.HashTopic(topic)
	sh := e.pool.ShardFor(hash)
	upto := sh.Committed(topic, hash, sh.Head())
	mark := w.Mark()
	from, ok := e.position(since, hash, upto)
	if ok {
		w.RawString(`{"joins":[`)
		_, ok = sh.AppendChanges(&w, shard.JSON, topic, hash, from, upto, shard.KindJoin)
		w.RawString(`],"leaves":[`)
		if ok {
			_, ok = sh.AppendChanges(&w, shard.JSON, topic, hash, from, upto, shard.KindLeave)
		}
		w.RawString(`]}`)
		if ok {
			return w.Bytes(), e.makeCursor(hash, upto), false
		}
	}
	w.Rewind(mark)
	c := e.writeFullDiff(&w, topic)
	return w.Bytes(), c, true
}
