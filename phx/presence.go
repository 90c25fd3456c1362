package phx

import (
	"strconv"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/jsonwriter"
)

// Presence goes out in Phoenix's format, grouped by key, so that the
// official client's Presence object works:
//
//	presence_state: {"user_42":{"metas":[{"name":"Alice","phx_ref":"1a"}]}}
//	presence_diff:  {"joins":{...same shape...},"leaves":{...}}
//
// One key tracked from two sockets is one key with two metas. An update is a
// leave of the old meta and a join of the new one, whose meta names the old
// ref in phx_ref_prev.

// PhxRef formats an engine ref as a phx_ref.
func PhxRef(ref uint64) string { return strconv.FormatUint(ref, 36) }

func appendPhxRef(dst []byte, ref uint64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendUint(dst, ref, 36)
	return append(dst, '"')
}

// appendMeta appends meta with phx_ref (and phx_ref_prev) added.
func appendMeta(dst []byte, e *engine.Entry, prev uint64) []byte {
	meta := e.Meta
	dst = append(dst, meta[:len(meta)-1]...) // meta is an object: drop its '}'
	if len(meta) > 2 {
		dst = append(dst, ',')
	}
	dst = append(dst, `"phx_ref":`...)
	dst = appendPhxRef(dst, e.Ref)
	if prev != 0 {
		dst = append(dst, `,"phx_ref_prev":`...)
		dst = appendPhxRef(dst, prev)
	}
	return append(dst, '}')
}

// appendGrouped appends {"key":{"metas":[...]},...} for entries, keys in
// order of first appearance. prevRef gives the phx_ref_prev of an entry, or
// 0.
func appendGrouped(dst []byte, entries []engine.Entry, prevRef func(*engine.Entry) uint64) []byte {
	// next[i] is the index of the next entry with entries[i]'s key, or 0.
	next := make([]int, len(entries))
	last := make(map[string]int, len(entries))
	for i := range entries {
		if j, ok := last[string(entries[i].Key)]; ok {
			next[j] = i
		}
		last[string(entries[i].Key)] = i
	}
	seen := make([]bool, len(entries))
	dst = append(dst, '{')
	for i := range entries {
		if seen[i] {
			continue
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonwriter.AppendStringBytes(dst, entries[i].Key)
		dst = append(dst, `:{"metas":[`...)
		for j := i; ; j = next[j] {
			if j != i {
				dst = append(dst, ',')
			}
			seen[j] = true
			var prev uint64
			if prevRef != nil {
				prev = prevRef(&entries[j])
			}
			dst = appendMeta(dst, &entries[j], prev)
			if next[j] == 0 {
				break
			}
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}

// AppendPresenceState appends a presence_state payload.
func AppendPresenceState(dst []byte, entries []engine.Entry) []byte {
	return appendGrouped(dst, entries, nil)
}

// AppendPresenceDiff appends a presence_diff payload. A join whose socket
// also left in the same diff is an update, and names the left ref.
func AppendPresenceDiff(dst []byte, joins, leaves []engine.Entry) []byte {
	dst = append(dst, `{"joins":`...)
	dst = appendGrouped(dst, joins, func(j *engine.Entry) uint64 {
		for i := range leaves {
			if leaves[i].Socket == j.Socket {
				return leaves[i].Ref
			}
		}
		return 0
	})
	dst = append(dst, `,"leaves":`...)
	dst = appendGrouped(dst, leaves, nil)
	return append(dst, '}')
}

// AppendPresenceRun appends a presence_state payload for entries in which
// each key's entries are adjacent, as a page of engine.ListPage holds
// them: the same JSON as AppendPresenceState, written without allocating.
// A key that comes back after another key would appear twice.
func AppendPresenceRun(dst []byte, entries []engine.Entry) []byte {
	dst = append(dst, '{')
	for i := range entries {
		e := &entries[i]
		switch {
		case i == 0:
		case string(e.Key) == string(entries[i-1].Key):
			dst = append(dst, ',')
			dst = appendMeta(dst, e, 0)
			continue
		default:
			dst = append(dst, "]},"...)
		}
		dst = jsonwriter.AppendStringBytes(dst, e.Key)
		dst = append(dst, `:{"metas":[`...)
		dst = appendMeta(dst, e, 0)
	}
	if len(entries) > 0 {
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}

// AppendPresenceCount appends a presence_count payload:
// {"count":keys,"entries":entries}.
func AppendPresenceCount(dst []byte, keys, entries int) []byte {
	dst = append(dst, `{"count":`...)
	dst = strconv.AppendInt(dst, int64(keys), 10)
	dst = append(dst, `,"entries":`...)
	dst = strconv.AppendInt(dst, int64(entries), 10)
	return append(dst, '}')
}
