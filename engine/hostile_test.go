package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	hostile "github.com/presencekit/presence/testdata"
)

// TestHostileCatalogue runs the engine's part of testdata/hostile.json:
// every bad input gets its error and changes nothing; hostile keys that are
// valid are stored and escaped, and the output stays valid JSON.
func TestHostileCatalogue(t *testing.T) {
	cases, err := hostile.Load("engine")
	if err != nil {
		t.Fatal(err)
	}
	sentinels := map[string]error{
		"ErrInvalidKey": ErrInvalidKey, "ErrKeyTooLong": ErrKeyTooLong, "ErrInvalidTopic": ErrInvalidTopic,
		"ErrTopicTooLong": ErrTopicTooLong, "ErrInvalidMeta": ErrInvalidMeta, "ErrMetaTooLong": ErrMetaTooLong,
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			cfg := Config{MaxMetaLen: c.Config["MaxMetaLen"]}
			e := mustNew(t, cfg)
			// A bystander whose entry must survive every hostile input.
			mustTrack(t, e, 1, "room", "bystander", `{"ok":true}`)
			before := e.AppendList(nil, "room")
			topic, _ := c.Value("topic", "room")
			key, _ := c.Value("key", "k")
			meta, err := c.Value("meta", `{"m":1}`)
			if err != nil {
				t.Fatal(err)
			}
			switch c.Op {
			case "track":
				err := e.Track(2, string(topic), string(key), meta)
				if c.Expect == "ok" {
					if err != nil {
						t.Fatalf("Track = %v, want ok", err)
					}
					l := list(t, e, string(topic))
					if l[len(l)-1].Key != string(key) {
						t.Fatalf("key %q listed as %q", key, l[len(l)-1].Key)
					}
					return
				}
				want := sentinels[c.Expect]
				if want == nil {
					t.Fatalf("unknown expectation %q", c.Expect)
				}
				if !errors.Is(err, want) {
					t.Fatalf("Track = %v, want %v", err, want)
				}
			case "track_many":
				var accepted, limited int
				for i := range c.Times {
					switch err := e.Track(2, fmt.Sprint("t", i), "hostile", nil); {
					case err == nil:
						accepted++
					case errors.Is(err, ErrSocketLimit):
						limited++
					default:
						t.Fatalf("track %d: %v", i, err)
					}
				}
				if want := fmt.Sprintf("ErrSocketLimit after %d", accepted); c.Expect != want || limited != c.Times-accepted {
					t.Fatalf("%d accepted, %d limited; catalogue expects %q", accepted, limited, c.Expect)
				}
				// Everyone else still joins.
				for s := SocketID(3); s < 100; s++ {
					mustTrack(t, e, s, "room", fmt.Sprint("user", s), `{}`)
				}
				if e.UntrackAll(2) != accepted {
					t.Fatal("hostile socket's entries not all removed")
				}
				for s := SocketID(3); s < 100; s++ {
					e.Untrack(s, "room")
				}
			default:
				t.Fatalf("unknown op %q", c.Op)
			}
			if after := e.AppendList(nil, "room"); !bytes.Equal(after, before) || e.Len() != 1 {
				t.Fatalf("hostile input changed other state: %s -> %s (Len %d)", before, after, e.Len())
			}
			if strings.Contains(c.Name, "topic") && e.Count(string(topic)) != 0 && string(topic) != "room" {
				t.Fatal("rejected topic has entries")
			}
		})
	}
}
