package engine

import (
	"errors"

	"github.com/presencekit/presence/jsonwriter"
	"github.com/presencekit/presence/shard"
)

// MaxPageLimit is the largest limit ListPage accepts.
const MaxPageLimit = 1000

// ErrInvalidPageLimit is returned for a page limit below 1 or above
// MaxPageLimit.
var ErrInvalidPageLimit = errors.New("engine: page limit must be between 1 and 1000")

// PageCursor marks a place in a walk of a topic's key order: where the
// next page starts, and where the walk ends (the horizon its first page
// set; see Paging in the package doc). The zero PageCursor asks for the
// first page of a new walk. It names its topic by the topic's hash, as
// Cursor does, so a cursor of another topic is refused with
// ErrInvalidCursor. PageCursors are comparable with ==, and copying one
// allocates nothing.
//
// Its text form (MarshalText, AppendText, String) is 80 hex digits, or
// the empty string for the zero PageCursor (encoding/json writes that as
// ""; a protocol that wants null there checks IsZero); it is what a client
// carries between pages and gives back unchanged.
type PageCursor struct {
	topic uint64 // the topic's hash
	pos   shard.PagePos
}

// IsZero reports whether c is the zero PageCursor, the first page.
func (c PageCursor) IsZero() bool { return c == PageCursor{} }

// pageCursorLen is the length of a non-zero PageCursor's text form: the
// topic's hash, two key marks and the horizon.
const pageCursorLen = 16 + 2*(8+16) + 16

// AppendText appends c's text form to b.
func (c PageCursor) AppendText(b []byte) ([]byte, error) {
	if c.IsZero() {
		return b, nil
	}
	const digits = "0123456789abcdef"
	hex := func(v uint64, n int) {
		for shift := 4 * (n - 1); shift >= 0; shift -= 4 {
			b = append(b, digits[v>>shift&15])
		}
	}
	hex(c.topic, 16)
	for _, m := range [2]shard.KeyMark{c.pos.Last, c.pos.First} {
		hex(uint64(m.Key), 8)
		hex(m.Gen, 16)
	}
	hex(c.pos.Horizon, 16)
	return b, nil
}

// MarshalText returns c's text form.
func (c PageCursor) MarshalText() ([]byte, error) {
	return c.AppendText(make([]byte, 0, pageCursorLen))
}

// String returns c's text form.
func (c PageCursor) String() string {
	b, _ := c.AppendText(make([]byte, 0, pageCursorLen))
	return string(b)
}

// UnmarshalText decodes a PageCursor's text form. Anything that is not
// one, save the empty string (the zero PageCursor), is ErrInvalidCursor,
// and leaves c as it was.
func (c *PageCursor) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*c = PageCursor{}
		return nil
	}
	if len(b) != pageCursorLen {
		return ErrInvalidCursor
	}
	var v [6]uint64
	widths := [6]int{16, 8, 16, 8, 16, 16}
	for i, at := 0, 0; i < len(widths); at, i = at+widths[i], i+1 {
		for _, ch := range b[at : at+widths[i]] {
			d, ok := hexDigit(ch)
			if !ok {
				return ErrInvalidCursor
			}
			v[i] = v[i]<<4 | uint64(d)
		}
	}
	n := PageCursor{topic: v[0], pos: shard.PagePos{
		Last:    shard.KeyMark{Key: uint32(v[1]), Gen: v[2]},
		First:   shard.KeyMark{Key: uint32(v[3]), Gen: v[4]},
		Horizon: v[5],
	}}
	if n.pos.IsZero() {
		return ErrInvalidCursor
	}
	*c = n
	return nil
}

// Page is one page of a topic, read at one instant. Reuse a Page across
// calls: ListPage allocates only to grow it.
type Page struct {
	// Entries holds every entry of the page's keys: a key's entries
	// adjacent, in the order they came to the key, and keys in key order.
	// Key and Meta point into the Page's buffer and stay valid until the
	// Page is passed to the Engine again.
	Entries []Entry
	// Keys is the number of keys in this page, at most the limit.
	Keys int
	// Next is where the next page starts; zero when this page ends the
	// walk: it holds the last key the walk pages, or the topic's last.
	Next PageCursor
	// TopicKeys and TopicEntries count the whole topic, at the page's
	// instant.
	TopicKeys, TopicEntries int
	buf                     []byte
}

// pageArgs checks a page request and returns the topic's hash and the
// shard position the cursor stands for.
func (e *Engine) pageArgs(topic string, after PageCursor, limit int) (uint64, *shard.Shard, error) {
	if limit < 1 || limit > MaxPageLimit {
		return 0, nil, ErrInvalidPageLimit
	}
	hash := e.pool.HashTopic(topic)
	sh := e.pool.ShardFor(hash)
	if !after.IsZero() && (after.topic != hash || !sh.ValidPos(after.pos)) {
		return 0, nil, ErrInvalidCursor
	}
	return hash, sh, nil
}

// ListPage reads into dst up to limit keys of topic after the place
// after marks, in key order: the order in which keys joined the topic (a
// key joins when its first entry arrives and leaves when its last entry
// goes; a key that leaves and comes back goes to the end). All of a key's
// entries are in the same page, and the page is one instant of the topic,
// as List is. A walk pages only the keys present at its first page: it
// ends before the first key that joined after that page.
//
// Paging guarantee: walking from the zero cursor until Next is zero,
// every key present in the topic the whole time appears exactly once; a
// key that joined or left meanwhile appears at most once (a key that
// joined, or left and came back, after the first page: not at all).
//
// A limit below 1 or above MaxPageLimit is ErrInvalidPageLimit, and a
// cursor of another topic ErrInvalidCursor; then dst is left as it was.
// A page costs O(its entries), not O(the topic), unless both keys the
// cursor names have left the topic since: then the read walks the key
// order from its start to the cursor's place, O(keys before it).
func (e *Engine) ListPage(dst *Page, topic string, after PageCursor, limit int) error {
	e.mustBeNew()
	hash, sh, err := e.pageArgs(topic, after, limit)
	if err != nil {
		return err
	}
	var w jsonwriter.Writer
	w.Reset(dst.buf[:0], jsonwriter.Unbounded)
	r := sh.AppendPage(&w, shard.Records, topic, hash, after.pos, limit)
	dst.buf = w.Bytes()
	dst.Entries = parseRecords(dst.Entries[:0], nil, dst.buf)
	dst.Keys, dst.TopicKeys, dst.TopicEntries = r.Keys, r.TopicKeys, r.TopicEntries
	dst.Next = e.pageCursor(hash, r.Next)
	return nil
}

func (e *Engine) pageCursor(hash uint64, pos shard.PagePos) PageCursor {
	if pos.IsZero() {
		return PageCursor{}
	}
	return PageCursor{topic: hash, pos: pos}
}

// AppendListPage appends the page ListPage would read as AppendList
// writes entries, [{"key":..,"meta":..},...], and returns the cursor of
// the next page, zero after the last. On an error it returns dst as it
// was.
func (e *Engine) AppendListPage(dst []byte, topic string, after PageCursor, limit int) (out []byte, next PageCursor, err error) {
	e.mustBeNew()
	hash, sh, err := e.pageArgs(topic, after, limit)
	if err != nil {
		return dst, PageCursor{}, err
	}
	var w jsonwriter.Writer
	w.Reset(dst, jsonwriter.Unbounded)
	w.Byte('[')
	r := sh.AppendPage(&w, shard.JSON, topic, hash, after.pos, limit)
	w.Byte(']')
	return w.Bytes(), e.pageCursor(hash, r.Next), nil
}

// CountKeys returns the topic's distinct keys and its entries, both at
// one instant, in O(1).
func (e *Engine) CountKeys(topic string) (keys, entries int) {
	e.mustBeNew()
	hash := e.pool.HashTopic(topic)
	return e.pool.ShardFor(hash).CountKeys(topic, hash)
}
