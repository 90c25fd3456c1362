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
// Readers (Count, AppendEntries, AppendChanges, Head) take no lock in the
// common case. A topic record carries a sequence number that writers make
// odd while they change the topic's members or their payloads, and the
// shard's topic index has one too: a reader that sees either move retries
// its read window, so what it returns is the topic as it was at one
// instant. After OptimisticReads spoiled windows, Count and AppendEntries
// read once more under the shard's mutex, where no window can be spoiled;
// Pool.Counts reports the retries and these fallbacks. Each change event in
// the ring is validated by its own number, so a reader learns when an event
// was overwritten under it and the caller falls back to a full snapshot.
//
// Reader-visible state is kept in []uint64 words read with atomic loads.
// How writers store them and how payload bytes are copied depends on the
// build; see words_fast.go and words_atomic.go.
package shard
