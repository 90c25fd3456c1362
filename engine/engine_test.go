package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/presencekit/presence/jsonwriter"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func mustNew(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustTrack(t testing.TB, e *Engine, s SocketID, topic, key, meta string) {
	t.Helper()
	if err := e.Track(s, topic, key, []byte(meta)); err != nil {
		t.Fatalf("Track(%d, %q, %q, %q) = %v", s, topic, key, meta, err)
	}
}

func list(t testing.TB, e *Engine, topic string) []listed {
	t.Helper()
	out := e.AppendList(nil, topic)
	l, err := parseList(out)
	if err != nil {
		t.Fatalf("List(%q) = %s: %v", topic, out, err)
	}
	return l
}

func TestNewDefaults(t *testing.T) {
	e := mustNew(t, Config{})
	c := e.Config()
	if c.Capacity != 512 || e.Cap() != 512 || c.MaxTopicLen != 128 || c.MaxKeyLen != 64 || c.MaxMetaLen != 256 {
		t.Fatalf("defaults = %+v", c)
	}
	if c.Shards < 1 || c.Shards&(c.Shards-1) != 0 {
		t.Fatalf("default Shards = %d, not a power of two", c.Shards)
	}
	if e.Len() != 0 {
		t.Fatalf("Len = %d", e.Len())
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Capacity: -1},
		{Capacity: maxCapacity + 1},
		{Shards: -1},
		{Shards: 3},
		{Shards: 12},
		{Shards: 2048},
		{MaxTopicLen: -1},
		{MaxKeyLen: -1},
		{MaxKeyLen: 1025},
		{MaxMetaLen: -1},
		{MaxMetaLen: 1},
		{MaxPerSocket: -1},
		{History: -4},
		{History: 3},
		{History: 1},
	} {
		if e, err := New(cfg); !errors.Is(err, ErrInvalidConfig) || e != nil {
			t.Errorf("New(%+v) = %v, %v; want ErrInvalidConfig", cfg, e, err)
		}
	}
}

func TestNewAcceptsEveryShardCount(t *testing.T) {
	for shards := 1; shards <= 1024; shards *= 2 {
		e := mustNew(t, Config{Shards: shards, Capacity: 8})
		mustTrack(t, e, 1, "room", "k", `{}`)
		if e.Count("room") != 1 {
			t.Fatalf("Shards=%d: Count = %d", shards, e.Count("room"))
		}
	}
}

func TestNewLargeCapacity(t *testing.T) {
	if raceEnabled {
		// 1.5 GB of shadow memory, kept for the rest of the binary's run;
		// nothing here is concurrent, and the plain run covers it.
		t.Skip("a 1M-entry engine under the race detector")
	}
	e := mustNew(t, Config{Capacity: 1 << 20})
	if e.Cap() != 1<<20 {
		t.Fatalf("Cap = %d", e.Cap())
	}
	for s := SocketID(1); s <= 1000; s++ {
		mustTrack(t, e, s, fmt.Sprintf("room:%d", s%7), fmt.Sprint("u", s), `{}`)
	}
	if e.Len() != 1000 || e.Count("room:3") != 143 {
		t.Fatalf("Len = %d, Count = %d", e.Len(), e.Count("room:3"))
	}
}

func TestTrackSamePairUpdatesInPlace(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "alice", `{"status":"online"}`)
	mustTrack(t, e, 2, "room", "bob", `{"status":"online"}`)
	mustTrack(t, e, 1, "room", "alice2", `{"status":"away"}`)
	got := list(t, e, "room")
	want := []listed{{"alice2", json.RawMessage(`{"status":"away"}`)}, {"bob", json.RawMessage(`{"status":"online"}`)}}
	if !equalListed(got, want) {
		t.Fatalf("List = %v, want %v (update keeps its place)", got, want)
	}
	if e.Len() != 2 || e.Count("room") != 2 {
		t.Fatalf("Len = %d, Count = %d; an update must not add an entry", e.Len(), e.Count("room"))
	}
}

func TestTrackRefReportsOutcome(t *testing.T) {
	e := mustNew(t, Config{})
	out, r1, err := e.TrackRef(1, "room", "a", []byte(`{"v":1}`))
	if err != nil || out != Added {
		t.Fatalf("first TrackRef = %v, %v", out, err)
	}
	out, r2, _ := e.TrackRef(1, "room", "a", []byte(` {"v":1} `))
	if out != Unchanged || r2 != r1 {
		t.Fatalf("same key and meta: %v ref %d, want Unchanged ref %d", out, r2, r1)
	}
	out, r3, _ := e.TrackRef(1, "room", "a", []byte(`{"v":2}`))
	if out != Updated || r3 == r1 {
		t.Fatalf("new meta: %v ref %d, want Updated with a new ref", out, r3)
	}
}

func TestTrackSamePairConcurrentlyNeverDuplicates(t *testing.T) {
	for round := 0; round < 50; round++ {
		e := mustNew(t, Config{Shards: 1})
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				e.Track(7, "room", fmt.Sprint("k", g), nil)
			}()
		}
		close(start)
		wg.Wait()
		if e.Len() != 1 || e.Count("room") != 1 || len(list(t, e, "room")) != 1 {
			t.Fatalf("round %d: Len %d Count %d after concurrent Tracks of one pair", round, e.Len(), e.Count("room"))
		}
	}
}

func TestLimitsAreInclusive(t *testing.T) {
	e := mustNew(t, Config{MaxTopicLen: 10, MaxKeyLen: 5, MaxMetaLen: 12})
	meta12 := `{"a":"1234"}`
	if len(meta12) != 12 {
		t.Fatal("bad fixture")
	}
	tests := []struct {
		topic, key, meta string
		want             error
	}{
		{strings.Repeat("t", 10), "k", "", nil},
		{strings.Repeat("t", 11), "k", "", ErrTopicTooLong},
		{"t", "kkkkk", "", nil},
		{"t", "kkkkkk", "", ErrKeyTooLong},
		{"t", "k", meta12, nil},
		{"t", "k", `{"a":"12345"}`, ErrMetaTooLong},
		{strings.Repeat("é", 5), "k", "", nil},           // 10 bytes
		{"t", strings.Repeat("é", 3), "", ErrKeyTooLong}, // 6 bytes: limits are bytes
	}
	for _, tt := range tests {
		if err := e.Track(1, tt.topic, tt.key, []byte(tt.meta)); !errors.Is(err, tt.want) {
			t.Errorf("Track(%q, %q, %q) = %v, want %v", tt.topic, tt.key, tt.meta, err, tt.want)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	e := mustNew(t, Config{})
	meta := func(n int) []byte { return []byte(`{"a":"` + strings.Repeat("x", n-8) + `"}`) }
	cases := []struct {
		topic, key string
		meta       []byte
		want       error
	}{
		{strings.Repeat("t", 128), "k", nil, nil},
		{strings.Repeat("t", 129), "k", nil, ErrTopicTooLong},
		{"t", strings.Repeat("k", 64), nil, nil},
		{"t", strings.Repeat("k", 65), nil, ErrKeyTooLong},
		{"t2", "k", meta(256), nil},
		{"t2", "k", meta(257), ErrMetaTooLong},
	}
	for _, c := range cases {
		if err := e.Track(1, c.topic, c.key, c.meta); !errors.Is(err, c.want) {
			t.Errorf("Track(len %d, len %d, len %d) = %v, want %v", len(c.topic), len(c.key), len(c.meta), err, c.want)
		}
	}
}

func TestTrackRejectsEmptyOrInvalidUTF8(t *testing.T) {
	e := mustNew(t, Config{})
	for _, tt := range []struct {
		topic, key string
		want       error
	}{
		{"", "k", ErrInvalidTopic},
		{"bad\xff", "k", ErrInvalidTopic},
		{"\xed\xa0\x80", "k", ErrInvalidTopic},
		{"t", "", ErrInvalidKey},
		{"t", "bad\xc3", ErrInvalidKey},
		{"t", "\xed\xbf\xbf", ErrInvalidKey},
		// Past the first eight bytes, where the escape scan goes a word at
		// a time, and encodings that only a full decode rejects: overlong,
		// past U+10FFFF, a surrogate, a lone continuation byte.
		{"t", "user_0123\xc3", ErrInvalidKey},
		{"t", "\xc0\x80", ErrInvalidKey},
		{"t", "user_0123\xf4\x90\x80\x80", ErrInvalidKey},
		{"t", "user_01234567\xed\xa0\x80", ErrInvalidKey},
		{"t", "user_01234567\x80", ErrInvalidKey},
		{"t", "user_01234567\xf8\x88\x80\x80\x80", ErrInvalidKey},
	} {
		if err := e.Track(1, tt.topic, tt.key, nil); !errors.Is(err, tt.want) {
			t.Errorf("Track(%q, %q) = %v, want %v", tt.topic, tt.key, err, tt.want)
		}
	}
	if e.Len() != 0 {
		t.Fatalf("Len = %d after rejected Tracks", e.Len())
	}
}

// TestKeyNeedingNoEscapeIsValidUTF8 checks what Track relies on to skip
// its own UTF-8 check: a key jsonwriter.NeedsEscape passes is valid UTF-8.
// It tries every pair of bytes, at the start and after the eight ASCII
// bytes the scan takes as one word, followed by up to two continuation
// bytes, so every lead byte of a 2-, 3- and 4-byte sequence is covered.
func TestKeyNeedingNoEscapeIsValidUTF8(t *testing.T) {
	for _, prefix := range []string{"", "user_012"} {
		for _, tail := range []string{"", "\x80", "\x80\x80", "\xbf\xbf"} {
			for a := range 256 {
				for b := range 256 {
					k := prefix + string([]byte{byte(a), byte(b)}) + tail
					if !jsonwriter.NeedsEscape(k) && !utf8.ValidString(k) {
						t.Fatalf("NeedsEscape(%q) is false, but the key is not valid UTF-8", k)
					}
				}
			}
		}
	}
}

func TestMetaMustBeOneObject(t *testing.T) {
	e := mustNew(t, Config{})
	for _, tt := range []struct {
		meta   []byte
		stored string
	}{
		{nil, `{}`},
		{[]byte{}, `{}`},
		{[]byte(`{}`), `{}`},
		{[]byte(" {\"a\": [1, {\"b\": null}]}\n"), `{"a": [1, {"b": null}]}`},
		{[]byte(`{"emoji":"\ud83d\ude00","s":"é"}`), `{"emoji":"\ud83d\ude00","s":"é"}`},
	} {
		if err := e.Track(1, "room", "k", tt.meta); err != nil {
			t.Fatalf("Track(meta %q) = %v", tt.meta, err)
		}
		if got := list(t, e, "room"); string(got[0].Meta) != tt.stored {
			t.Fatalf("meta %q stored as %s, want %s", tt.meta, got[0].Meta, tt.stored)
		}
	}
	for _, bad := range []string{
		`[]`, `"s"`, `1`, `null`, `true`, `{`, `{"a":1}{}`, `{"a":1} x`, `{"a":1,}`, `{a:1}`,
		"{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\ud800"}`, `{"a":1,"a":2}`,
		strings.Repeat(`[`, 10), `{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`, " ",
	} {
		err := e.Track(1, "room", "k", []byte(bad))
		if !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("Track(meta %q) = %v, want ErrInvalidMeta", bad, err)
		}
	}
}

func TestRejectedTrackChangesNothing(t *testing.T) {
	e := mustNew(t, Config{Capacity: 4, MaxTopicLen: 8})
	mustTrack(t, e, 1, "room", "alice", `{"v":1}`)
	before := e.AppendList(nil, "room")
	for _, tt := range []struct {
		topic, key, meta string
	}{
		{"room", "", `{"v":2}`},
		{"room", "alice2", `{"v":2`},
		{"room", "alice2", `{"v":2,"v":3}`},
		{"room", strings.Repeat("k", 65), `{}`},
		{"room", "alice2", `{"x":"` + strings.Repeat("x", 300) + `"}`},
		{"room\xff", "alice2", `{}`},
		{"roomroomroom", "alice2", `{}`},
	} {
		if err := e.Track(1, tt.topic, tt.key, []byte(tt.meta)); err == nil {
			t.Fatalf("Track(%q, %q, %q) succeeded", tt.topic, tt.key, tt.meta)
		}
		if after := e.AppendList(nil, "room"); !bytes.Equal(after, before) || e.Len() != 1 {
			t.Fatalf("rejected Track changed the entry: %s -> %s", before, after)
		}
	}
}

func TestFullRejectsNewPairsButAllowsUpdates(t *testing.T) {
	e := mustNew(t, Config{Capacity: 3, Shards: 4})
	for s := SocketID(1); s <= 3; s++ {
		mustTrack(t, e, s, fmt.Sprint("room", s), "k", `{}`)
	}
	if err := e.Track(4, "room1", "k", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Track when full = %v, want ErrFull", err)
	}
	if err := e.Track(1, "room2", "k", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("new pair of a known socket when full = %v, want ErrFull", err)
	}
	mustTrack(t, e, 2, "room2", "k2", `{"updated":true}`)
	if got := list(t, e, "room2"); len(got) != 1 || got[0].Key != "k2" {
		t.Fatalf("update when full: %v", got)
	}
	if !e.Untrack(3, "room3") {
		t.Fatal("Untrack failed")
	}
	mustTrack(t, e, 4, "room1", "k", `{}`)
	if e.Len() != 3 || e.Cap() != 3 {
		t.Fatalf("Len %d Cap %d", e.Len(), e.Cap())
	}
}

func TestOneTopicHoldsWholeCapacity(t *testing.T) {
	for shards := 1; shards <= 64; shards *= 2 {
		e := mustNew(t, Config{Shards: shards})
		for s := SocketID(1); s <= 512; s++ {
			mustTrack(t, e, s, "lobby", fmt.Sprint("user_", s), `{}`)
		}
		if err := e.Track(513, "lobby", "one too many", nil); !errors.Is(err, ErrFull) {
			t.Fatalf("Shards=%d: 513th entry: %v, want ErrFull", shards, err)
		}
		if got := list(t, e, "lobby"); len(got) != 512 || got[0].Key != "user_1" || got[511].Key != "user_512" {
			t.Fatalf("Shards=%d: List has %d entries", shards, len(got))
		}
	}
}

func TestSocketLimit(t *testing.T) {
	e := mustNew(t, Config{Capacity: 16, MaxPerSocket: 3})
	for i := range 3 {
		mustTrack(t, e, 1, fmt.Sprint("t", i), "k", `{}`)
	}
	if err := e.Track(1, "t3", "k", nil); !errors.Is(err, ErrSocketLimit) {
		t.Fatalf("4th entry of a socket = %v, want ErrSocketLimit", err)
	}
	mustTrack(t, e, 1, "t0", "k2", `{}`) // an update still works
	mustTrack(t, e, 2, "t3", "k", `{}`)  // other sockets are unaffected
	if e.SocketLen(1) != 3 || e.Len() != 4 {
		t.Fatalf("SocketLen %d Len %d", e.SocketLen(1), e.Len())
	}
	e.Untrack(1, "t0")
	mustTrack(t, e, 1, "t3", "k", `{}`)
}

func TestUntrack(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "a", `{}`)
	mustTrack(t, e, 2, "room", "b", `{}`)
	if e.Untrack(1, "other") || e.Untrack(3, "room") || e.Untrack(1, "") || e.Untrack(1, "\xff") {
		t.Fatal("Untrack of an unknown pair reported a removal")
	}
	if !e.Untrack(1, "room") {
		t.Fatal("Untrack of a known pair reported nothing")
	}
	if e.Untrack(1, "room") {
		t.Fatal("second Untrack reported a removal")
	}
	if got := list(t, e, "room"); len(got) != 1 || got[0].Key != "b" || e.Len() != 1 {
		t.Fatalf("after Untrack: %v", got)
	}
	mustTrack(t, e, 1, "room", "a", `{}`)
	if got := list(t, e, "room"); got[1].Key != "a" {
		t.Fatalf("re-tracked entry must go last: %v", got)
	}
}

func TestUntrackAll(t *testing.T) {
	e := mustNew(t, Config{Capacity: 1000, MaxPerSocket: 1000})
	for i := range 300 {
		mustTrack(t, e, 1, fmt.Sprint("room", i), "a", `{}`)
		mustTrack(t, e, 2, fmt.Sprint("room", i), "b", `{}`)
	}
	if n := e.UntrackAll(3); n != 0 {
		t.Fatalf("UntrackAll of an unknown socket = %d", n)
	}
	if n := e.UntrackAll(1); n != 300 {
		t.Fatalf("UntrackAll = %d, want 300", n)
	}
	if e.Len() != 300 || e.SocketLen(1) != 0 || e.SocketLen(2) != 300 {
		t.Fatalf("Len %d", e.Len())
	}
	for i := range 300 {
		if got := list(t, e, fmt.Sprint("room", i)); len(got) != 1 || got[0].Key != "b" {
			t.Fatalf("room%d: %v", i, got)
		}
	}
	if n := e.UntrackAll(1); n != 0 {
		t.Fatalf("second UntrackAll = %d", n)
	}
}

func TestCountLenCap(t *testing.T) {
	e := mustNew(t, Config{Capacity: 10})
	mustTrack(t, e, 1, "a", "k", `{}`)
	mustTrack(t, e, 2, "a", "k", `{}`)
	mustTrack(t, e, 1, "b", "k", `{}`)
	if e.Count("a") != 2 || e.Count("b") != 1 || e.Count("c") != 0 || e.Count("") != 0 || e.Len() != 3 || e.Cap() != 10 {
		t.Fatalf("Count a=%d b=%d Len=%d Cap=%d", e.Count("a"), e.Count("b"), e.Len(), e.Cap())
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
	}
}

// hostileKeys are keys the zzz original wrote into JSON unescaped.
var hostileKeys = []string{
	`user_42`,
	`quote"in"key`,
	`back\slash`,
	"ctrl\x00\x01\x1f\n\t",
	"js\u2028sep\u2029",
	`</script><script>`,
	"日本語 🎉",
}

func TestListGolden(t *testing.T) {
	e := mustNew(t, Config{})
	golden(t, "list_empty.golden", e.AppendList(nil, "chat:lobby"))
	mustTrack(t, e, 1, "chat:lobby", "user_42", `{"name":"Alice","status":"online"}`)
	mustTrack(t, e, 2, "chat:lobby", "user_7", `{"name":"Bob","status":"away"}`)
	golden(t, "list_seed.golden", e.AppendList(nil, "chat:lobby"))
	golden(t, "diff_seed.golden", e.AppendDiff(nil, "chat:lobby"))
	for i, k := range hostileKeys {
		mustTrack(t, e, SocketID(10+i), "hostile", k, `{"i":`+fmt.Sprint(i)+`}`)
	}
	out := e.AppendList(nil, "hostile")
	golden(t, "list_hostile_keys.golden", out)
	got, err := parseList(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range hostileKeys {
		if got[i].Key != k {
			t.Fatalf("key %q came back as %q", k, got[i].Key)
		}
	}
	if bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
		t.Fatal("output holds a raw U+2028/U+2029")
	}
}

func TestListIsDeterministic(t *testing.T) {
	e := mustNew(t, Config{})
	for s := SocketID(1); s <= 100; s++ {
		mustTrack(t, e, s, "room", fmt.Sprint("u", 100-s), `{}`)
	}
	a, b := e.AppendList(nil, "room"), e.AppendList(nil, "room")
	if !bytes.Equal(a, b) {
		t.Fatal("two Lists with no writes between differ")
	}
	got := list(t, e, "room")
	for i, l := range got {
		if l.Key != fmt.Sprint("u", 99-i) {
			t.Fatalf("entry %d is %q: not join order", i, l.Key)
		}
	}
}

func TestAppendListAppends(t *testing.T) {
	e := mustNew(t, Config{})
	mustTrack(t, e, 1, "room", "a", `{}`)
	if got := string(e.AppendList([]byte("prefix:"), "room")); got != `prefix:[{"key":"a","meta":{}}]` {
		t.Fatalf("got %s", got)
	}
}

func TestListShortBuffer(t *testing.T) {
	e := mustNew(t, Config{})
	for s := SocketID(1); s <= 5; s++ {
		mustTrack(t, e, s, "room", fmt.Sprint("user\"", s), `{"name":"x"}`)
	}
	want := e.AppendList(nil, "room")
	wantDiff := e.AppendDiff(nil, "room")
	for n := 0; n <= len(wantDiff)+1; n++ {
		buf := make([]byte, n, n+64) // spare capacity must not be used
		out, err := e.List("room", buf)
		if n < len(want) {
			if !errors.Is(err, io.ErrShortBuffer) || out != nil {
				t.Fatalf("List into %d bytes = %q, %v; want io.ErrShortBuffer", n, out, err)
			}
		} else if err != nil || !bytes.Equal(out, want) || &out[0] != &buf[0] {
			t.Fatalf("List into %d bytes = %q, %v", n, out, err)
		}
		out, err = e.Diff("room", buf)
		if n < len(wantDiff) {
			if !errors.Is(err, io.ErrShortBuffer) || out != nil {
				t.Fatalf("Diff into %d bytes = %q, %v; want io.ErrShortBuffer", n, out, err)
			}
		} else if err != nil || !bytes.Equal(out, wantDiff) {
			t.Fatalf("Diff into %d bytes = %q, %v", n, out, err)
		}
	}
	if out, err := e.List("empty", make([]byte, 2)); err != nil || string(out) != "[]" {
		t.Fatalf("empty List into 2 bytes = %q, %v", out, err)
	}
	if _, err := e.List("empty", make([]byte, 1)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("empty List into 1 byte = %v", err)
	}
}

func TestDiffIsFullSync(t *testing.T) {
	e := mustNew(t, Config{})
	if got := string(e.AppendDiff(nil, "room")); got != `{"joins":[],"leaves":[]}` {
		t.Fatalf("empty Diff = %s", got)
	}
	mustTrack(t, e, 1, "room", "user_42", `{"name":"Alice"}`)
	if got := string(e.AppendDiff(nil, "room")); got != `{"joins":[{"key":"user_42","meta":{"name":"Alice"}}],"leaves":[]}` {
		t.Fatalf("Diff = %s", got)
	}
}

func TestOutputIsValidJSONForEveryAcceptedInput(t *testing.T) {
	e := mustNew(t, Config{MaxMetaLen: 4096})
	metas := []string{`{}`, `{"a":"\u2028\"\\"}`, `{"nested":{"x":[1,2,{"y":null}]},"n":-1.5e3}`, `{"k":"` + "\u2029\u00e9\U0001F600" + `"}`}
	for i := 0; i < 256; i++ {
		key := string([]rune{rune(i), 'k', rune(0x2000 + i)})
		mustTrack(t, e, SocketID(i), "room", key, metas[i%len(metas)])
	}
	for _, out := range [][]byte{e.AppendList(nil, "room"), e.AppendDiff(nil, "room")} {
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	}
}

func TestReadsOfTopicsTrackRefusesFindNothing(t *testing.T) {
	e := mustNew(t, Config{MaxTopicLen: 8})
	mustTrack(t, e, 1, "12345678", "k", `{}`)
	for _, topic := range []string{"", "\xff", "123456789", strings.Repeat("1", 1000), "1234567\xff"} {
		if e.Count(topic) != 0 || string(e.AppendList(nil, topic)) != "[]" {
			t.Fatalf("read of %q found entries", topic)
		}
		var c Changes
		e.ChangesSince(&c, topic, Cursor{})
		if len(c.Joins)+len(c.Leaves) != 0 {
			t.Fatalf("changes of %q: %+v", topic, c)
		}
	}
}

// TestRenderedTopicsListTheSame runs the same random Tracks, updates and
// removals on an engine with rendered topics, one without, and one whose
// blocks run out, and requires the same List and Diff of every topic from
// all three after every step.
func TestRenderedTopicsListTheSame(t *testing.T) {
	cfgs := []Config{
		// Blocks are sized to the slots' memory, plus one a shard: 14.
		{Capacity: 8, Shards: 8, MaxMetaLen: 1000},
		{Capacity: 8, Shards: 1, MaxMetaLen: 1000, NoRenderedTopics: true},
		// Eight topics of one entry need eight blocks; this one has seven.
		{Capacity: 8, Shards: 1, MaxMetaLen: 1000},
	}
	engines := make([]*Engine, len(cfgs))
	for i, c := range cfgs {
		engines[i] = mustNew(t, c)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	topics := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for step := range 3000 {
		s := SocketID(rng.IntN(8) + 1)
		topic := topics[rng.IntN(len(topics))]
		if step < 16 {
			s, topic = SocketID(step%8+1), topics[step%8] // every topic at once
		}
		meta := fmt.Appendf(nil, `{"s":"%s"}`, strings.Repeat("x", rng.IntN(900)))
		op := rng.IntN(10)
		for i, e := range engines {
			var err error
			switch {
			case op < 6:
				err = e.Track(s, topic, fmt.Sprint("u\u2028", s), meta)
			case op < 9:
				e.Untrack(s, topic)
			default:
				e.UntrackAll(s)
			}
			if err != nil && !errors.Is(err, ErrSocketLimit) && !errors.Is(err, ErrFull) {
				t.Fatalf("step %d, engine %d: %v", step, i, err)
			}
		}
		for _, tp := range topics {
			want := string(engines[1].AppendList(nil, tp))
			for i, e := range engines {
				if got := string(e.AppendList(nil, tp)); got != want {
					t.Fatalf("step %d, engine %d, topic %s: List\n%s\nwant\n%s", step, i, tp, got, want)
				}
				if got, wantDiff := string(e.AppendDiff(nil, tp)), string(engines[1].AppendDiff(nil, tp)); got != wantDiff {
					t.Fatalf("step %d, engine %d, topic %s: Diff differs", step, i, tp)
				}
			}
		}
	}
	if n := engines[0].Stats().RenderFallbacks; n != 0 {
		t.Fatalf("an engine with blocks to spare counted %d render fallbacks", n)
	}
	if n := engines[2].Stats().RenderFallbacks; n == 0 {
		t.Fatal("the engine with too few blocks counted no render fallback")
	}
}

// TestValidStringIsUTF8Valid compares validString with utf8.ValidString on
// every string of up to two bytes and on random strings around its
// 16-byte fast path.
func TestValidStringIsUTF8Valid(t *testing.T) {
	check := func(s string) {
		if got, want := validString(s), utf8.ValidString(s); got != want {
			t.Fatalf("validString(%q) = %v, want %v", s, got, want)
		}
	}
	check("")
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = byte(rng.IntN(128))
			if rng.IntN(8) == 0 {
				b[i] = byte(rng.Uint32())
			}
		}
		check(string(b))
		check(string([]rune(string(b)))) // valid, often multibyte
	}
}
