package phx

import (
	"encoding/json"
	"testing"

	"github.com/presencekit/presence/engine"
)

func TestPresenceFormat(t *testing.T) {
	entries := []engine.Entry{
		{Socket: 1, Ref: 36, Key: []byte("alice"), Meta: []byte(`{"device":"phone"}`)},
		{Socket: 2, Ref: 37, Key: []byte(`b"ob`), Meta: []byte(`{}`)},
		{Socket: 3, Ref: 38, Key: []byte("alice"), Meta: []byte(`{"device":"laptop"}`)},
	}
	got := string(AppendPresenceState(nil, entries))
	want := `{"alice":{"metas":[{"device":"phone","phx_ref":"10"},{"device":"laptop","phx_ref":"12"}]},"b\"ob":{"metas":[{"phx_ref":"11"}]}}`
	if got != want {
		t.Fatalf("state\n got %s\nwant %s", got, want)
	}
	leaves := []engine.Entry{{Socket: 1, Ref: 36, Key: []byte("alice"), Meta: []byte(`{"s":1}`)}}
	joins := []engine.Entry{{Socket: 1, Ref: 40, Key: []byte("alice"), Meta: []byte(`{"s":2}`)}}
	got = string(AppendPresenceDiff(nil, joins, leaves))
	want = `{"joins":{"alice":{"metas":[{"s":2,"phx_ref":"14","phx_ref_prev":"10"}]}},"leaves":{"alice":{"metas":[{"s":1,"phx_ref":"10"}]}}}`
	if got != want {
		t.Fatalf("diff\n got %s\nwant %s", got, want)
	}
	if got := string(AppendPresenceDiff(nil, nil, nil)); got != `{"joins":{},"leaves":{}}` || !json.Valid([]byte(got)) {
		t.Fatalf("empty diff %s", got)
	}
}

func TestPresenceRunMatchesState(t *testing.T) {
	for _, entries := range [][]engine.Entry{
		nil,
		{{Socket: 1, Ref: 1, Key: []byte("a"), Meta: []byte(`{}`)}},
		{
			{Socket: 1, Ref: 36, Key: []byte("alice"), Meta: []byte(`{"device":"phone"}`)},
			{Socket: 3, Ref: 38, Key: []byte("alice"), Meta: []byte(`{"device":"laptop"}`)},
			{Socket: 2, Ref: 37, Key: []byte(`b"ob`), Meta: []byte(`{}`)},
			{Socket: 4, Ref: 39, Key: []byte("carol"), Meta: []byte(`{"x":[1]}`)},
			{Socket: 5, Ref: 40, Key: []byte("carol"), Meta: []byte(`{}`)},
		},
	} {
		got, want := string(AppendPresenceRun(nil, entries)), string(AppendPresenceState(nil, entries))
		if got != want || !json.Valid([]byte(got)) {
			t.Fatalf("run\n got %s\nwant %s", got, want)
		}
	}
}

func TestPresenceRunAllocatesNothing(t *testing.T) {
	entries := []engine.Entry{
		{Socket: 1, Ref: 36, Key: []byte("alice"), Meta: []byte(`{"device":"phone"}`)},
		{Socket: 3, Ref: 38, Key: []byte("alice"), Meta: []byte(`{"device":"laptop"}`)},
		{Socket: 2, Ref: 37, Key: []byte(`b"ob`), Meta: []byte(`{}`)},
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendPresenceRun(buf[:0], entries)
		buf = AppendPresenceCount(buf, 2, 3)
	}); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}

func TestPresenceCount(t *testing.T) {
	if got := string(AppendPresenceCount(nil, 10000, 10002)); got != `{"count":10000,"entries":10002}` {
		t.Fatalf("count %s", got)
	}
}
