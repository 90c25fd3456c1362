package shard_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/presencekit/presence/jsonwriter"
	"github.com/presencekit/presence/shard"
)

func newPool(slots, shards, history int) *shard.Pool {
	return shard.NewPool(shard.Config{Slots: slots, Shards: shards, MaxTopic: 32, MaxKey: 16, MaxMeta: 64, History: history, MaxPerSocket: slots, Seed: 7})
}

func track(t *testing.T, p *shard.Pool, socket uint64, topic, key, meta string) {
	t.Helper()
	h := p.HashTopic(topic)
	if _, _, err := p.ShardFor(h).Track(socket, topic, h, key, false, []byte(meta), 0); err != nil {
		t.Fatal(err)
	}
}

func untrack(p *shard.Pool, socket uint64, topic string) bool {
	h := p.HashTopic(topic)
	return p.ShardFor(h).Untrack(socket, topic, h)
}

// changes returns the events of topic in (since, upto] as "+key=meta" and
// "-key=meta", and whether the ring still held them.
func changes(p *shard.Pool, topic string, since, upto uint64) ([]string, bool) {
	h := p.HashTopic(topic)
	var w jsonwriter.Writer
	w.Reset(nil, jsonwriter.Unbounded)
	_, ok := p.ShardFor(h).AppendChanges(&w, shard.Records, topic, h, since, upto, shard.KindJoin|shard.KindLeave)
	var out []string
	for b := w.Bytes(); ; {
		r, rest, more := shard.ParseRecord(b)
		if !more {
			break
		}
		sign := "+"
		if r.Kind == shard.KindLeave {
			sign = "-"
		}
		out = append(out, sign+string(r.Key)+"="+string(r.Meta))
		b = rest
	}
	return out, ok
}

func TestHistoryRing(t *testing.T) {
	p := newPool(8, 1, 4)
	sh := p.ShardFor(0)
	if p.HistorySize() != 4 {
		t.Fatalf("ring of %d events, want 4", p.HistorySize())
	}
	track(t, p, 1, "a", "k1", "{}")      // 1: +k1
	track(t, p, 2, "b", "other", "{}")   // 2: another topic
	track(t, p, 1, "a", "k1", `{"v":2}`) // 3, 4: -k1={} +k1={"v":2}
	if got, ok := changes(p, "a", 0, 4); !ok || !slices.Equal(got, []string{`+k1={"v":2}`}) {
		// The first join and its leave both fall in the range: they cancel.
		t.Fatalf("changes(0, 4) = %q, %v", got, ok)
	}
	if got, ok := changes(p, "a", 1, 4); !ok || !slices.Equal(got, []string{`-k1={}`, `+k1={"v":2}`}) {
		t.Fatalf("changes(1, 4) = %q, %v", got, ok)
	}
	if got, ok := changes(p, "a", 3, 3); !ok || len(got) != 0 {
		t.Fatalf("empty range = %q, %v", got, ok)
	}
	if _, ok := changes(p, "a", 0, 5); ok {
		t.Fatal("a range past the head was answered")
	}
	untrack(p, 1, "a") // 5: the ring now holds 2..5
	if sh.Head() != 5 {
		t.Fatalf("Head = %d, want 5", sh.Head())
	}
	if _, ok := changes(p, "a", 0, 5); ok {
		t.Fatal("a range older than the ring was answered")
	}
	if got, ok := changes(p, "a", 1, 5); !ok || !slices.Equal(got, []string{`-k1={}`}) {
		// +k1={"v":2} (4) and its leave (5) cancel; the leave of the first
		// join, which is before the range, stays.
		t.Fatalf("changes(1, 5) = %q, %v", got, ok)
	}
	if got, ok := changes(p, "b", 1, 5); !ok || !slices.Equal(got, []string{"+other={}"}) {
		t.Fatalf("changes of b = %q, %v", got, ok)
	}
}

// TestReadsAreNeverTorn runs writers on a topic of one shard while readers
// copy it: every copy is whole (each meta one version, padded to its
// letter's length), its count matches the entries copied, and the reader never
// sees an entry twice.
func TestReadsAreNeverTorn(t *testing.T) {
	p := newPool(64, 1, 64)
	h := p.HashTopic("t")
	sh := p.ShardFor(h)
	meta := func(v int) string {
		return fmt.Sprintf(`{"v":"%s"}`, strings.Repeat(string(rune('a'+v%20)), 10+2*(v%20)))
	}
	for s := uint64(1); s <= 8; s++ {
		track(t, p, s, "t", fmt.Sprint("k", s), meta(0))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for wr := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				s := uint64(1 + wr*4 + v%4)
				if v%5 == 0 {
					untrack(p, s, "t")
				}
				track(t, p, s, "t", fmt.Sprint("k", s), meta(v))
			}
		}()
	}
	var w jsonwriter.Writer
	for range 3000 {
		w.Reset(nil, jsonwriter.Unbounded)
		n, _ := sh.AppendEntries(&w, shard.Records, "t", h)
		seen := map[uint64]bool{}
		got := 0
		for b := w.Bytes(); ; got++ {
			r, rest, ok := shard.ParseRecord(b)
			if !ok {
				break
			}
			b = rest
			if seen[r.Socket] || string(r.Key) != fmt.Sprint("k", r.Socket) {
				t.Fatalf("entry %d (%s) twice or under the wrong key", r.Socket, r.Key)
			}
			seen[r.Socket] = true
			m := string(r.Meta)
			body := strings.TrimSuffix(strings.TrimPrefix(m, `{"v":"`), `"}`)
			// A version's letter fixes its length.
			if len(body) < 10 || strings.Count(body, body[:1]) != len(body) || len(body) != 10+2*int(body[0]-'a') {
				t.Fatalf("torn meta %s", m)
			}
		}
		if got != n || n < 6 || n > 8 {
			t.Fatalf("read %d entries, AppendEntries said %d", got, n)
		}
	}
	close(stop)
	wg.Wait()
}
