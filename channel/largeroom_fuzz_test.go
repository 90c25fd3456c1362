package channel

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/presencekit/presence/engine"
)

// FuzzLargeRoomParams: whatever a client sends as join params or as a
// presence_list payload, reading it never panics, and a payload is either
// a request within the limits or one of the three refusals.
func FuzzLargeRoomParams(f *testing.F) {
	for _, seed := range []string{`{}`, `{"presence":"count"}`, `{"presence":"full"}`, `{"presence":1}`,
		`{"limit":100,"after":null}`, `{"limit":0}`, `{"after":"zz"}`, `[]`, `"x"`, `{"pr\u0065sence":"count"}`,
		`{"limit":1e308}`, `{"limit":-0}`, `{"after":""}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		presenceMode(b)
		limit, _, err := pageRequest(b)
		switch {
		case err == nil:
			if limit < 1 || limit > engine.MaxPageLimit {
				t.Fatalf("%s: limit %d accepted", b, limit)
			}
		case errors.Is(err, engine.ErrInvalidPageLimit), errors.Is(err, engine.ErrInvalidCursor), errors.Is(err, errNotObject):
		default:
			t.Fatalf("%s: %v", b, err)
		}
	})
}
