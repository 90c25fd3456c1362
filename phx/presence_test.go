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
