// Package shard is the storage under package engine: a fixed pool of entry
// slots shared by all shards, and the shards themselves, each holding the
// topics whose hash selects it, with their member lists, indexes and a ring
// of recent change events.
//
// # Concurrency
//
// A shard's writers (Track, Untrack, and the removals of Pool.UntrackAll)
// hold the shard's mutex; slots and topic records are claimed from
// lock-free stacks, and the socket index is guarded by 256 striped locks
// taken briefly under a shard's mutex. A new entry is counted (against its
// socket's quota, then against the pool or the local sockets' share of it)
// and uncounted under its socket's stripe lock and inside its topic's read
// window, so readers, Len, SocketLen and a refused Track agree on the
// instant it appears and goes.
//
// Writers also keep each topic's entries rendered as JSON, in blocks from a
// lock-free stack (render.go), inside the same read window as the slots;
// AppendEntries copies a rendered topic's blocks instead of walking its
// slots when it writes JSON.
//
// Writers also keep, per topic, a record for each key in key order (the
// order keys joined the topic), chaining the key's entries (keys.go), in
// the same read window; AppendPage reads a page of keys from them, and
// CountKeys the topic's keys and entries, which share one word.
//
// Readers (Count, CountKeys, AppendEntries, AppendPage, AppendChanges,
// Head) take no lock in the common case. A topic record carries a
// sequence number that writers make odd while they change the topic's
// members or their payloads, and the shard's topic index has one too: a
// reader that sees either move retries its read window, so what it returns
// is the topic as it was at one instant. A page's cursor names key records
// by index and generation, and a reader checks both, and the record's
// topic, inside its window, so a record freed or reused since is detected.
// Key generations grow with each key join in the shard; a walk's first
// page loads the shard's latest one inside its window as the walk's
// horizon, and later pages stop at a key whose generation is above it.
// AppendEntries rebuilds a window that writers spoiled only by updating up
// to 8 entries in place as the topic was when it began, from the slots and
// the leave events that hold the old versions; AppendCurrent does so from
// its second window on (or in its only one), since its first leaves out
// the history head that a rebuild starts from. After OptimisticReads
// spoiled windows, Count, CountKeys, AppendEntries and AppendPage read
// once more under the shard's mutex, where no window can be spoiled; Pool.Counts reports the retries, the
// rebuilt reads and the fallbacks. Each change event in the ring is
// validated by its own number, so a reader learns when an event was
// overwritten under it and the caller falls back to a full snapshot.
//
// # Build variants
//
// Reader-visible state is kept in []uint64 words, and readers load single
// words atomically, always. How writers store words and how payload bytes
// are copied depends on the build. With the gc compiler on amd64
// (words_fast.go) stores become visible in program order and loads are not
// reordered with other loads, so writers store plainly, with a compiler
// barrier around the sequence words, and payloads are copied with memmove
// in chunks below 1 MiB (larger copies use non-temporal stores, which are
// not ordered with earlier stores); a reader sees a torn copy only when the
// sequence moved, and then retries. Locked instructions for every word
// would cost Track about a third of its time; even storing only the
// sequence words atomically, the other way to order them with non-temporal
// stores, cost an update about 30 ns of 115 (BenchmarkTrackUpdate, AMD
// EPYC), where the chunked copy costs nothing measurable. Race builds (the race
// detector flags a seqlock whose bytes move with plain loads and stores),
// other compilers and architectures, and the presence_atomic tag
// (words_atomic.go) move every word atomically instead. CI runs the stress
// tests in both variants.
//
// # Why this package is public
//
// Package engine is the only intended user of shard: it validates inputs
// and states the guarantees users rely on. shard is a package of its own so
// that the storage (slots, seqlocks, free stacks, the change ring) can be
// read, tested and benchmarked apart from the API, not as an API for
// anyone else; its exported names may change with engine.
package shard
