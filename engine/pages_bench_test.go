package engine

import (
	"fmt"
	"sync"
	"testing"
)

// bigTopic is a topic of 100,000 entries, one key each, shared by the page
// benchmarks, with the cursors of its pages of 100 at the start, the middle
// and the end.
var bigTopic struct {
	once sync.Once
	e    *Engine
	// at[i] is the cursor of the page that starts at key 100*i.
	at  []PageCursor
	err error
}

const (
	bigTopicEntries = 100_000
	bigPage         = 100
)

func loadBigTopic(b *testing.B) *Engine {
	b.Helper()
	bigTopic.once.Do(func() { bigTopic.e, bigTopic.at, bigTopic.err = newBigTopic() })
	if bigTopic.err != nil {
		b.Fatal(bigTopic.err)
	}
	return bigTopic.e
}

// newBigTopic makes an engine holding topic "big" of bigTopicEntries
// entries, one key each, and the cursors of its pages of bigPage.
func newBigTopic() (*Engine, []PageCursor, error) {
	e, err := New(Config{Capacity: bigTopicEntries, MaxPerSocket: 1})
	if err != nil {
		return nil, nil, err
	}
	for i := range bigTopicEntries {
		if err := e.Track(SocketID(i+1), "big", benchKey(i), benchMeta(i)); err != nil {
			return nil, nil, err
		}
	}
	var at []PageCursor
	var p Page
	var after PageCursor
	for {
		at = append(at, after)
		if err := e.ListPage(&p, "big", after, bigPage); err != nil {
			return nil, nil, err
		}
		if p.Next.IsZero() {
			break
		}
		after = p.Next
	}
	if len(at) != bigTopicEntries/bigPage {
		return nil, nil, fmt.Errorf("%d pages of %d, want %d", len(at), bigPage, bigTopicEntries/bigPage)
	}
	return e, at, nil
}

// bigPages are where the page benchmarks read: the first page, the one
// in the middle and the last.
var bigPages = []struct {
	name string
	page int
}{{"start", 0}, {"middle", bigTopicEntries / bigPage / 2}, {"end", bigTopicEntries/bigPage - 1}}

// BenchmarkListPage reads a page of 100 keys from a topic of 100,000
// entries at its start, middle and end, and checks each read: 100 keys,
// and the cursor of the page after it (zero after the last).
func BenchmarkListPage(b *testing.B) {
	e := loadBigTopic(b)
	for _, where := range bigPages {
		b.Run(where.name, func(b *testing.B) {
			after := bigTopic.at[where.page]
			var want PageCursor
			if where.page+1 < len(bigTopic.at) {
				want = bigTopic.at[where.page+1]
			}
			var p Page
			if err := e.ListPage(&p, "big", after, bigPage); err != nil { // sizes p
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := e.ListPage(&p, "big", after, bigPage); err != nil {
					b.Fatal(err)
				}
				if p.Keys != bigPage || len(p.Entries) != bigPage || p.Next != want {
					b.Fatalf("page of %d keys, %d entries, next %v; want %d, next %v", p.Keys, len(p.Entries), p.Next, bigPage, want)
				}
			}
		})
	}
}

// BenchmarkAppendListPage is BenchmarkListPage writing JSON.
func BenchmarkAppendListPage(b *testing.B) {
	e := loadBigTopic(b)
	for _, where := range bigPages {
		b.Run(where.name, func(b *testing.B) {
			after := bigTopic.at[where.page]
			var want PageCursor
			if where.page+1 < len(bigTopic.at) {
				want = bigTopic.at[where.page+1]
			}
			first := fmt.Sprintf(`[{"key":%q`, benchKey(where.page*bigPage))
			buf, _, err := e.AppendListPage(nil, "big", after, bigPage)
			if err != nil || string(buf[:len(first)]) != first {
				b.Fatalf("AppendListPage = %.40s, %v; want it to start %s", buf, err, first)
			}
			size := len(buf)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				var next PageCursor
				buf, next, err = e.AppendListPage(buf[:0], "big", after, bigPage)
				if err != nil || len(buf) != size || next != want {
					b.Fatalf("AppendListPage wrote %d bytes, next %v, %v; want %d, next %v", len(buf), next, err, size, want)
				}
			}
		})
	}
}

func BenchmarkCountKeys(b *testing.B) {
	e := loadBigTopic(b)
	b.ReportAllocs()
	for b.Loop() {
		if k, n := e.CountKeys("big"); k != bigTopicEntries || n != bigTopicEntries {
			b.Fatalf("CountKeys = %d, %d", k, n)
		}
	}
}

// BenchmarkListPageRescan reads the page after a cursor whose two keys
// have both left: the one read that walks the key order from its start,
// here half of a topic of 100,000 keys.
func BenchmarkListPageRescan(b *testing.B) {
	e, at, err := newBigTopic()
	if err != nil {
		b.Fatal(err)
	}
	middle := len(at) / 2
	after, want := at[middle], at[middle+1]
	// The cursor names the last key of the page before and the first of
	// its page: sockets middle*bigPage and middle*bigPage+1.
	for _, s := range []SocketID{SocketID(middle * bigPage), SocketID(middle*bigPage + 1)} {
		if !e.Untrack(s, "big") {
			b.Fatal("Untrack found nothing")
		}
	}
	var p Page
	if err := e.ListPage(&p, "big", after, bigPage-1); err != nil { // sizes p
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.ListPage(&p, "big", after, bigPage-1); err != nil {
			b.Fatal(err)
		}
		if p.Keys != bigPage-1 || p.Next != want {
			b.Fatalf("page of %d keys, next %v; want %d, next %v", p.Keys, p.Next, bigPage-1, want)
		}
	}
}
