package shard

import (
	"fmt"
	"testing"
)

// TestOwnerRecordMovesWithItsAnchor removes the slot that anchors a
// socket's record while the socket keeps another entry, and lets another
// socket take that slot for its first entry: both sockets' counts, entries
// and UntrackAll must stay right.
func TestOwnerRecordMovesWithItsAnchor(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			p := NewPool(Config{Slots: 4, Shards: shards, MaxTopic: 8, MaxKey: 8, MaxMeta: 16, History: 8, Seed: 3})
			track := func(socket uint64, topic string) {
				t.Helper()
				h := p.HashTopic(topic)
				if _, _, err := p.ShardFor(h).Track(socket, topic, h, "k", false, []byte("{}"), 0); err != nil {
					t.Fatal(err)
				}
			}
			track(1, "a") // the first free slot anchors socket 1's record
			track(1, "b")
			track(1, "c")
			h := p.HashTopic("a")
			if !p.ShardFor(h).Untrack(1, "a", h) {
				t.Fatal("Untrack found nothing")
			}
			track(2, "d") // takes the freed slot, and anchors its record there
			if a, b := p.SocketLen(1), p.SocketLen(2); a != 2 || b != 1 {
				t.Fatalf("SocketLen = %d and %d, want 2 and 1", a, b)
			}
			var topics []string
			p.SocketEntries(1, func(topic, _ string, _ []byte, _ uint64) bool {
				topics = append(topics, topic)
				return true
			})
			if fmt.Sprint(topics) != "[c b]" {
				t.Fatalf("socket 1 holds %v, want [c b]", topics)
			}
			h = p.HashTopic("c")
			p.ShardFor(h).Untrack(1, "c", h) // the record moves again
			if n := p.UntrackAll(1); n != 1 {
				t.Fatalf("UntrackAll(1) removed %d, want 1", n)
			}
			if n := p.UntrackAll(2); n != 1 {
				t.Fatalf("UntrackAll(2) removed %d, want 1", n)
			}
			if p.Len() != 0 || p.SocketLen(1) != 0 || p.SocketLen(2) != 0 {
				t.Fatalf("Len %d, SocketLen %d and %d after removing everything", p.Len(), p.SocketLen(1), p.SocketLen(2))
			}
		})
	}
}
