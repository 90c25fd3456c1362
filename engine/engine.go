// Package engine is an in-memory presence registry: it records which
// sockets are present in which topics, under a key (usually a user id) with
// a small JSON object of metadata, and writes a topic's presence as JSON.
//
// # Memory
//
// New allocates everything up front: Capacity slots shared by all topics,
// split into hashed shards, and as much memory again for rendered topics,
// plus a quarter of that in big blocks: each topic's entries are also kept
// as List writes them, in join order, in blocks of 1 KiB (more if an entry
// can be longer), and of about 8 KiB once the topic fills a quarter of
// one, so that List, Diff and a full sync copy a few blocks instead of one
// entry at a time (for 512 entries, about 1.2x the cost of one copy of the
// output instead of 6x). When the blocks run out, a topic is read one
// entry at a time (Stats.RenderFallbacks counts the times,
// Stats.UnrenderedTopics the topics read so now) until blocks are free
// again and it has seen as many writes as it has entries, when it is
// rendered again; Config.NoRenderedTopics turns them off. Each entry also
// reserves a key record for paging (see Paging): 76 bytes (32 read by
// pages, 32 for writers, 8 for the entry's link to its key, 4 in its topic
// record), about 88 with the Go heap's rounding; New reserved 1,122 bytes
// an entry before key records, 1,210 with them, and 1,317 with big blocks
// (TestSizing, 2^20 entries; resident memory grows only as entries use
// it). After New, Track, Untrack, UntrackAll, Count, CountKeys,
// List, ListPage, Diff, Snapshot and the incremental diff allocate
// nothing (AppendList, AppendListPage, AppendDiff and AppendChanges only
// when dst must grow, and ListPage only to grow its Page).
//
// # Concurrency
//
// Every method may be called from any number of goroutines at once.
//
// Writers (Track, Untrack, UntrackAll) lock the one shard that holds the
// topic; writers in different shards do not wait for each other, except
// for a few nanoseconds on one of 256 striped locks that keep the
// per-socket index.
//
// Readers (List, Diff, Count, Snapshot, the incremental diff, ListPage and
// CountKeys) take no lock in the common case: each topic has a sequence
// counter that writers move, and a reader that sees it move retries. A List, Diff or Snapshot
// spoiled only by updates in place of up to 8 entries is instead rebuilt,
// with no lock, as the topic was when the read began, from the entries and
// the old versions the change history still holds (a List only from its
// second window on, as the topic was when that window began: its first
// leaves out the history head, a cache line every write stores to). If
// writers spoil three such read windows in a row, the reader reads once
// more under the lock of the topic's shard (as Linux's
// read_seqbegin_or_lock does), which delays that shard's writers for one
// pass over the topic. So a read costs at most
// four passes over its topic plus one wait for the shard lock, however busy
// the writers are; a read of a quiet topic never locks or delays anyone.
// Stats counts the retries and the locked reads. A full resync (the Full
// case of ChangesSince and AppendChanges) has the same bound.
//
// What a reader returns is an atomic snapshot of one topic: the entries
// present at one instant during the call, never a mix of before and after a
// write. Different topics, and Len, are not read atomically together.
//
// The incremental diff (ChangesSince, ChangesBetween, AppendChanges) holds
// whole operations only: an update's leave and join together, or neither.
// Applied to the entries its since cursor stood for, a diff gives the
// topic's entries at one instant during the call: never a state the topic
// did not go through, never one older than the cursor's, and never one that
// a Track or Untrack that returned before the call began had left behind.
//
// A Track or Untrack is visible to every read that begins after it returns.
// UntrackAll removes the entries the socket held when it began, one by one:
// each removal is atomic, the whole is not. An entry that another goroutine
// only updates while UntrackAll runs (a Track of a pair the socket already
// held) is removed too; only a new pair tracked for the socket meanwhile
// stays.
//
// Len, Stats' Local and Remote, and SocketLen count the entries present at
// one instant during the call, never a Track still under way or one that
// was refused. ErrFull and ErrSocketLimit are linearizable too: a Track gets
// one only if the limit was reached at some instant during the call.
//
// # Clusters
//
// SocketIDs from FirstRemoteSocket up are remote: a cluster stores there
// the entries it mirrors from other nodes, so that every read covers the
// whole cluster. LocalCapacity caps the entries of local sockets, leaving
// Capacity-LocalCapacity for remote ones, and ErrFull is judged per class.
// TrackWithRef stores an entry under the ref its node gave it; RefTag keeps
// the refs each engine generates apart from other nodes' refs; and
// SocketEntries lists what a socket holds, to compare it with a node's
// snapshot.
//
// # Order
//
// Entries are listed in join order: an entry keeps its place when it is
// updated, and goes to the end when it is tracked again after an Untrack.
//
// # Paging
//
// ListPage and AppendListPage read a topic a page of keys at a time, in
// key order: the order in which keys joined the topic. A key joins when
// its first entry arrives and leaves when its last entry goes, so it keeps
// its place while any of its entries stays, and goes to the end when it
// comes back after leaving; an update that changes an entry's key moves the
// entry to the end of its new key's entries. All of a key's entries are in
// one page, in the order they came to the key. Each topic keeps a record
// per key, in key order, chaining the key's entries, so a page costs
// O(its entries) however deep it is (BENCHMARKS.md: a page of 100 from a
// topic of 100,000 entries), and CountKeys, the topic's keys and entries
// at one instant, costs O(1).
//
// A page is a read like List: one instant of the topic, lock-free in the
// common case, with the same bound on retries and the same fallback to the
// shard lock. A PageCursor names the last key of its page and the key that
// followed it, each by its record and the record's generation. The next
// page starts at that second key if it is still in the topic, else after
// the first if that one is (no key can have joined between them, since
// keys join at the end). Only if both have left does the read walk the key
// order from its start to the first key that joined after the page, which
// costs O(keys before the cursor): about 6 ns a key, 0.3 ms for a cursor
// 50,000 keys deep (BenchmarkListPageRescan).
//
// A walk has a horizon: the first page (the zero PageCursor) records in
// its Next the shard's key-join generation at its instant, every key
// record holds the generation of its join, and later pages carry the
// horizon on and stop at the first key that joined after it. Keys join at
// the end, so that is where the walk ends, at no extra cost; Next is zero
// on the page that reaches it, or the topic's end.
//
// The paging guarantee: walking from the zero PageCursor until Next is
// zero, every key present in the topic the whole time appears exactly
// once, with all of its entries as they were at the instant of its page;
// a key that joined or left during the walk appears at most once. A key
// that joined after the first page, or left and came back after it, joined
// past the horizon and is not paged by this walk, so it never appears
// twice. A walker learns of such keys from the topic's diffs or counts
// (TopicKeys, CountKeys), or by starting a new walk.
package engine

import (
	"cmp"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"unicode/utf8"

	"github.com/presencekit/presence/internal/jsonobject"
	"github.com/presencekit/presence/jsonwriter"
	"github.com/presencekit/presence/shard"
)

// SocketID identifies a connection.
type SocketID uint64

// Config sizes an Engine. The zero Config gives the defaults.
type Config struct {
	Capacity    int // total entries over all topics; 0 means 512. Cap() reports exactly this.
	Shards      int // 0 picks a default; otherwise a power of two, at most 1024
	MaxTopicLen int // bytes; 0 means 128
	MaxKeyLen   int // bytes; 0 means 64, at most 1024
	MaxMetaLen  int // bytes; 0 means 256

	// MaxPerSocket caps the entries one socket may hold, so that one
	// connection cannot take the whole capacity; 0 means 64 (or Capacity,
	// if smaller). Set it to Capacity to lift the cap.
	MaxPerSocket int
	// History is the number of change events kept per shard for the
	// incremental diff, a power of two; 0 means 256 (less for small
	// capacities).
	History int

	// LocalCapacity caps the entries of local sockets (below
	// FirstRemoteSocket) together; 0 means Capacity. Remote sockets may use
	// all of Capacity, so Capacity-LocalCapacity is a reserve that local
	// Tracks cannot take.
	LocalCapacity int
	// RefTag, below 2^16, is stored in the top 16 bits of every ref the
	// Engine generates, so that engines with different tags never generate
	// the same ref (give each node of a cluster its own).
	RefTag uint64

	// NoRenderedTopics turns off the second, rendered copy of each topic's
	// entries that List, Diff and full syncs copy a block at a time (see
	// the package doc). They then read one entry at a time, about 3.5x as
	// long for 512 entries, and the engine saves the blocks' memory, as
	// much as the entries' slots take (384 bytes an entry with the default
	// limits). Updates and removals cost a little less.
	NoRenderedTopics bool
}

// FirstRemoteSocket is the first remote SocketID: IDs from 1<<63 up name
// sockets of other nodes, whose entries a cluster mirrors here. They are
// ordinary sockets to every method but count against Capacity only, never
// against LocalCapacity.
const FirstRemoteSocket SocketID = shard.FirstRemote

// Defaults and limits of Config.
const (
	DefaultCapacity     = 512
	DefaultMaxTopicLen  = 128
	DefaultMaxKeyLen    = 64
	DefaultMaxMetaLen   = 256
	DefaultMaxPerSocket = 64
	DefaultHistory      = 256

	maxCapacity = 1 << 28
	maxShards   = 1024
	maxTopicLen = 1 << 16
	maxMetaLen  = 1 << 20
	maxHistory  = 1 << 20
)

// Errors. Each is returned alone or wrapped; check with errors.Is.
var (
	ErrFull          = errors.New("engine: all entries are in use")
	ErrTopicTooLong  = errors.New("engine: topic too long")
	ErrKeyTooLong    = errors.New("engine: key too long")
	ErrMetaTooLong   = errors.New("engine: meta too long")
	ErrInvalidTopic  = errors.New("engine: topic is empty or not valid UTF-8")
	ErrInvalidKey    = errors.New("engine: key is empty or not valid UTF-8")
	ErrInvalidMeta   = errors.New("engine: meta is not one valid JSON object")
	ErrInvalidConfig = errors.New("engine: invalid config")
	ErrSocketLimit   = errors.New("engine: socket holds its maximum number of entries")
	ErrInvalidRef    = errors.New("engine: ref is 0")
	ErrInvalidCursor = errors.New("engine: not a cursor")
)

// Engine is a presence registry. Create it with New: every method of a zero
// Engine, or of a nil *Engine, panics with a message that says so.
type Engine struct {
	cfg  Config
	pool *shard.Pool
}

// errNotNew is the panic of every method of an Engine that New did not make.
const errNotNew = "engine: the Engine was not made by engine.New (a zero or nil Engine holds no slots); create it with engine.New"

// mustBeNew panics with errNotNew for a zero or nil Engine, which would
// otherwise fail in a way that names a symptom, not the cause.
func (e *Engine) mustBeNew() {
	if e == nil || e.pool == nil {
		panic(errNotNew)
	}
}

// New validates cfg, fills in defaults, and allocates an Engine.
func New(cfg Config) (*Engine, error) { return newEngine(cfg, 0) }

// newEngine is New with the number of lock-free read windows a reader tries
// before it takes the shard lock: 0 for the default, negative for no bound.
func newEngine(cfg Config, readAttempts int) (*Engine, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	pool := shard.NewPool(shard.Config{
		Slots:        cfg.Capacity,
		Shards:       cfg.Shards,
		MaxTopic:     cfg.MaxTopicLen,
		MaxKey:       cfg.MaxKeyLen,
		MaxMeta:      cfg.MaxMetaLen,
		History:      cfg.History,
		MaxPerSocket: cfg.MaxPerSocket,
		MaxLocal:     cfg.LocalCapacity,
		RefTag:       cfg.RefTag,
		Seed:         rand.Uint64(),
		ReadAttempts: readAttempts,
		RenderBlocks: renderBlocks(cfg.NoRenderedTopics),
	})
	return &Engine{cfg: cfg, pool: pool}, nil
}

func renderBlocks(off bool) int {
	if off {
		return -1
	}
	return 0 // sized to the slots
}

func (c *Config) fill() error {
	bad := func(what string) error { return &configError{what} }
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case c.Capacity < 0 || c.Capacity > maxCapacity:
		return bad("Capacity must be between 0 and 2^28")
	case c.Shards < 0 || c.Shards > maxShards || c.Shards > 0 && !pow2(c.Shards):
		return bad("Shards must be 0 or a power of two up to 1024")
	case c.MaxTopicLen < 0 || c.MaxTopicLen > maxTopicLen:
		return bad("MaxTopicLen must be between 0 and 65536")
	case c.MaxKeyLen < 0 || c.MaxKeyLen > shard.MaxKeyLimit:
		return bad("MaxKeyLen must be between 0 and 1024")
	case c.MaxMetaLen < 0 || c.MaxMetaLen == 1 || c.MaxMetaLen > maxMetaLen:
		return bad("MaxMetaLen must be 0, or between 2 and 2^20")
	case c.MaxPerSocket < 0:
		return bad("MaxPerSocket must not be negative")
	case c.History < 0 || c.History > maxHistory || c.History > 0 && (!pow2(c.History) || c.History < 2):
		return bad("History must be 0 or a power of two between 2 and 2^20")
	case c.LocalCapacity < 0 || c.LocalCapacity > cmp.Or(c.Capacity, DefaultCapacity):
		return bad("LocalCapacity must be between 0 and Capacity")
	case c.RefTag >= shard.RefTagLimit:
		return bad("RefTag must be below 2^16")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Capacity, DefaultCapacity)
	def(&c.Shards, min(64, 1<<bits.Len(uint(4*runtime.GOMAXPROCS(0)-1))))
	def(&c.MaxTopicLen, DefaultMaxTopicLen)
	def(&c.MaxKeyLen, DefaultMaxKeyLen)
	def(&c.MaxMetaLen, DefaultMaxMetaLen)
	def(&c.MaxPerSocket, min(DefaultMaxPerSocket, c.Capacity))
	c.MaxPerSocket = min(c.MaxPerSocket, c.Capacity)
	def(&c.History, min(DefaultHistory, 1<<bits.Len(uint(2*c.Capacity-1))))
	def(&c.LocalCapacity, c.Capacity)
	return nil
}

// configError is ErrInvalidConfig with the field at fault, in one line.
type configError struct{ what string }

func (c *configError) Error() string        { return ErrInvalidConfig.Error() + ": " + c.what }
func (c *configError) Is(target error) bool { return target == ErrInvalidConfig }

// Config returns the configuration in use, defaults filled in.
func (e *Engine) Config() Config {
	e.mustBeNew()
	return e.cfg
}

// Track records that socket s is present in topic under key, with meta.
//
// Tracking a pair that is already present overwrites its key and meta in
// place, keeping its place in the list; if neither changed, nothing changes.
// Meta must be one JSON object; nil or empty means {}. Surrounding
// whitespace is dropped.
//
// A rejected Track changes nothing. It returns ErrInvalidTopic,
// ErrTopicTooLong, ErrInvalidKey, ErrKeyTooLong, ErrInvalidMeta or
// ErrMetaTooLong for bad input. For a new pair it returns ErrSocketLimit
// when s holds MaxPerSocket entries, and otherwise ErrFull when Capacity
// entries are present or, for a local socket, LocalCapacity entries of
// local sockets are; each only if that was so at some instant during the
// call.
func (e *Engine) Track(s SocketID, topic, key string, meta []byte) error {
	e.mustBeNew()
	_, _, err := e.track(s, topic, key, meta, 0)
	return err
}

// TrackResult reports what a Track did.
type TrackResult = shard.Outcome

// What a Track did.
const (
	Added     = shard.Added     // a new entry
	Updated   = shard.Updated   // new key or meta, and a new ref
	Unchanged = shard.Unchanged // the same key and meta: nothing changed
)

// TrackRef is Track that also reports what changed and the entry's ref.
func (e *Engine) TrackRef(s SocketID, topic, key string, meta []byte) (TrackResult, uint64, error) {
	e.mustBeNew()
	return e.track(s, topic, key, meta, 0)
}

// TrackWithRef is Track with a ref chosen by the caller instead of one the
// Engine generates, so that an entry mirrored from another node keeps the
// same ref everywhere. ref must not be 0 (ErrInvalidRef). If the pair holds
// the same key, meta and ref, nothing changes (Unchanged); otherwise the
// entry takes ref. The caller keeps refs unique: give each node its own
// RefTag and pass on only refs its owner generated.
func (e *Engine) TrackWithRef(s SocketID, topic, key string, meta []byte, ref uint64) (TrackResult, error) {
	e.mustBeNew()
	if ref == 0 {
		return 0, ErrInvalidRef
	}
	out, _, err := e.track(s, topic, key, meta, ref)
	return out, err
}

func (e *Engine) track(s SocketID, topic, key string, meta []byte, ref uint64) (TrackResult, uint64, error) {
	if err := e.checkTopic(topic); err != nil {
		return 0, 0, err
	}
	switch {
	case len(key) == 0:
		return 0, 0, ErrInvalidKey
	case len(key) > e.cfg.MaxKeyLen:
		return 0, 0, ErrKeyTooLong
	}
	// A key that needs no escaping is valid UTF-8 (jsonwriter.NeedsEscape
	// decodes every non-ASCII rune), so only one that does is checked again.
	escape := jsonwriter.NeedsEscape(key)
	if escape && !utf8.ValidString(key) {
		return 0, 0, ErrInvalidKey
	}
	switch {
	case len(meta) == 0:
		meta = emptyMeta
	case len(meta) > e.cfg.MaxMetaLen:
		return 0, 0, ErrMetaTooLong
	default:
		start, end, err := jsonobject.Check(meta)
		if err != nil {
			return 0, 0, metaErr(err)
		}
		meta = meta[start:end]
	}
	hash := e.pool.HashTopic(topic)
	out, ref, err := e.pool.ShardFor(hash).Track(uint64(s), topic, hash, key, escape, meta, ref)
	switch err {
	case nil:
		return out, ref, nil
	case shard.ErrFull:
		return 0, 0, ErrFull
	case shard.ErrSocketLimit:
		return 0, 0, ErrSocketLimit
	}
	return 0, 0, err
}

var emptyMeta = []byte("{}")

func (e *Engine) checkTopic(topic string) error {
	switch {
	case len(topic) == 0:
		return ErrInvalidTopic
	case len(topic) > e.cfg.MaxTopicLen:
		return ErrTopicTooLong
	case !validString(topic):
		return ErrInvalidTopic
	}
	return nil
}

// validString is utf8.ValidString, answered without a call for the short
// ASCII strings most topics are.
func validString(s string) bool {
	if len(s) <= 16 {
		var or byte
		for i := 0; i < len(s); i++ {
			or |= s[i]
		}
		if or < utf8.RuneSelf {
			return true
		}
	}
	return utf8.ValidString(s)
}

// metaError is ErrInvalidMeta with the reason jsonobject gave. One value per
// reason is built once, so a rejected Track allocates nothing either.
type metaError struct{ reason error }

func (m *metaError) Error() string        { return ErrInvalidMeta.Error() + ": " + m.reason.Error() }
func (m *metaError) Unwrap() error        { return m.reason }
func (m *metaError) Is(target error) bool { return target == ErrInvalidMeta }

var metaErrors = func() map[error]*metaError {
	m := map[error]*metaError{}
	for _, r := range []error{jsonobject.ErrNotObject, jsonobject.ErrSyntax, jsonobject.ErrTrailingData,
		jsonobject.ErrUTF8, jsonobject.ErrTooDeep, jsonobject.ErrTooManyKeys, jsonobject.ErrDuplicateKey} {
		m[r] = &metaError{r}
	}
	return m
}()

func metaErr(reason error) error {
	if m, ok := metaErrors[reason]; ok {
		return m
	}
	return ErrInvalidMeta
}

// Untrack removes the entry of socket s in topic and reports whether there
// was one.
func (e *Engine) Untrack(s SocketID, topic string) bool {
	e.mustBeNew()
	if e.checkTopic(topic) != nil {
		return false
	}
	hash := e.pool.HashTopic(topic)
	return e.pool.ShardFor(hash).Untrack(uint64(s), topic, hash)
}

// UntrackAll removes every entry socket s held when the call began, even
// one a concurrent Track has just updated, and returns how many it
// removed; a new pair tracked meanwhile stays. It costs O(entries of s),
// not a scan of the registry.
func (e *Engine) UntrackAll(s SocketID) int {
	e.mustBeNew()
	e.mustBeNew()
	return e.pool.UntrackAll(uint64(s))
}

// SocketEntries calls fn with each entry socket s holds, newest first, until
// fn returns false. Each entry is read whole, at one instant, but the walk is
// not atomic: every entry s holds from the start of the call to its end is
// reported exactly once; one added during the call is not reported; one
// removed or updated during the call may be missed or reported as it was
// at some instant. topic and key are ordinary strings; meta is valid only
// until fn returns. fn runs with no lock held and may call the Engine. It
// costs O(entries of s) and allocates a string per entry.
func (e *Engine) SocketEntries(s SocketID, fn func(topic, key string, meta []byte, ref uint64) bool) {
	e.mustBeNew()
	e.pool.SocketEntries(uint64(s), fn)
}

// Count returns the number of entries in topic. Readers do not validate the
// topic: one that Track would refuse is never stored, so looking it up
// finds nothing.
func (e *Engine) Count(topic string) int {
	e.mustBeNew()
	hash := e.pool.HashTopic(topic)
	return e.pool.ShardFor(hash).Count(topic, hash)
}

// Len returns the number of entries in all topics.
func (e *Engine) Len() int {
	e.mustBeNew()
	e.mustBeNew()
	return e.pool.Len()
}

// Cap returns Config.Capacity.
func (e *Engine) Cap() int {
	e.mustBeNew()
	return e.cfg.Capacity
}

// SocketLen returns the number of entries socket s holds.
func (e *Engine) SocketLen(s SocketID) int {
	e.mustBeNew()
	e.mustBeNew()
	return e.pool.SocketLen(uint64(s))
}

// Stats are counters for monitoring.
type Stats struct {
	Len, Cap      int
	LocalCapacity int
	// Local and Remote are the entries of local sockets and of remote ones
	// (from FirstRemoteSocket up), read at one instant; they add up to Len.
	Local, Remote int
	// FullLocal and FullRemote count Tracks refused with ErrFull, by the
	// class of their socket.
	FullLocal, FullRemote uint64
	ReadRetries           uint64 // read windows retried because a writer moved the topic
	ReadFallbacks         uint64 // reads that stopped retrying and took the shard lock
	// RenderFallbacks counts the times a topic was left without its
	// rendered copy, or gave it back, because the blocks ran out; such a
	// topic is read one entry at a time until blocks are free again.
	RenderFallbacks uint64
	// UnrenderedTopics is the number of topics read one entry at a time
	// now, because the blocks ran out when they needed one. Each renders
	// itself again once blocks are free, after at most twice as many
	// writes to it as it has entries.
	UnrenderedTopics int
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mustBeNew()
	c := e.pool.Counts()
	return Stats{
		Len: c.Local + c.Remote, Cap: e.Cap(), LocalCapacity: e.cfg.LocalCapacity,
		Local: c.Local, Remote: c.Remote,
		FullLocal: c.FullLocal, FullRemote: c.FullRemote,
		ReadRetries: c.Retries, ReadFallbacks: c.Fallbacks,
		RenderFallbacks: c.Unrendered, UnrenderedTopics: c.UnrenderedTopics,
	}
}

// AppendList appends the JSON array of topic's entries to dst, in join
// order: [{"key":"user_42","meta":{"name":"Alice"}},...], or [] when there
// are none. Keys are escaped, U+2028 and U+2029 included; meta is written as
// stored.
func (e *Engine) AppendList(dst []byte, topic string) []byte {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(dst, jsonwriter.Unbounded)
	e.writeList(&w, topic)
	return w.Bytes()
}

// List writes what AppendList would append into buf[:len(buf)] and returns
// it. If it does not fit, List returns io.ErrShortBuffer and no JSON.
func (e *Engine) List(topic string, buf []byte) ([]byte, error) {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(buf[:0], len(buf))
	e.writeList(&w, topic)
	if w.Err() != nil {
		return nil, io.ErrShortBuffer
	}
	return w.Bytes(), nil
}

func (e *Engine) writeList(w *jsonwriter.Writer, topic string) {
	w.Byte('[')
	hash := e.pool.HashTopic(topic)
	e.pool.ShardFor(hash).AppendCurrent(w, shard.JSON, topic, hash)
	w.Byte(']')
}

// writeEntries writes topic's entries and returns the cursor they reflect.
func (e *Engine) writeEntries(w *jsonwriter.Writer, f shard.Form, topic string) Cursor {
	hash := e.pool.HashTopic(topic)
	_, head := e.pool.ShardFor(hash).AppendEntries(w, f, topic, hash)
	return e.makeCursor(hash, head)
}

// AppendDiff appends a full sync for a client that has just joined:
// {"joins":[...every entry, as in AppendList...],"leaves":[]}.
func (e *Engine) AppendDiff(dst []byte, topic string) []byte {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(dst, jsonwriter.Unbounded)
	e.writeFullDiff(&w, topic)
	return w.Bytes()
}

// Diff writes what AppendDiff would append into buf[:len(buf)] and returns
// it. If it does not fit, Diff returns io.ErrShortBuffer and no JSON.
func (e *Engine) Diff(topic string, buf []byte) ([]byte, error) {
	e.mustBeNew()
	var w jsonwriter.Writer
	w.Reset(buf[:0], len(buf))
	e.writeFullDiff(&w, topic)
	if w.Err() != nil {
		return nil, io.ErrShortBuffer
	}
	return w.Bytes(), nil
}

func (e *Engine) writeFullDiff(w *jsonwriter.Writer, topic string) Cursor {
	w.RawString(`{"joins":[`)
	c := e.writeEntries(w, shard.JSON, topic)
	w.RawString(`],"leaves":[]}`)
	return c
}
