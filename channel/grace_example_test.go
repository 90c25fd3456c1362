package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// A client that sends a session token and whose connection drops comes
// back within the grace: the room is sent nothing about it. A resumed
// Join tracks what HeldEntry returns, so its meta is unchanged.
func ExampleConfig_reconnectGrace() {
	presence, err := engine.New(engine.Config{Capacity: 1024})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := channel.NewServer(channel.Config{
		Presence:       presence,
		ReconnectGrace: 15 * time.Second,
		Connect: func(r *http.Request, params url.Values) (map[string]any, error) {
			return map[string]any{"user": params.Get("user")}, nil // authenticate here
		},
		// Only a connection of the same user may resume a session.
		SessionOwner: func(assigns map[string]any) string { user, _ := assigns["user"].(string); return user },
		Channels: []channel.Channel{{
			Topic: "room:*",
			Join: func(s *channel.Socket, topic string, _ json.RawMessage) (any, error) {
				user, _ := s.Get("user")
				meta := []byte(fmt.Sprintf(`{"online_at":%d}`, time.Now().UnixNano()))
				if key, held, ok := s.HeldEntry(topic); ok && key == user {
					meta = held // back within the grace: the same meta
				}
				if err := s.Track(topic, user.(string), meta); err != nil {
					return nil, err
				}
				return nil, s.PushPresenceState(topic)
			},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	base := "ws" + strings.TrimPrefix(hs.URL, "http")

	bob := dial(base, "bob")
	defer bob.CloseNow()
	send(bob, `["1","1","room:lobby","phx_join",{}]`)
	next(bob, "presence_state")

	// With the official client: new Socket(url, {params: {session: token}}).
	const session = "&session=5f2b8e0c9a1d4b7e"
	alice := dial(base, "alice"+session)
	send(alice, `["1","1","room:lobby","phx_join",{}]`)
	fmt.Println("bob is sent", presenceKeys(next(bob, "presence_diff").Payload))

	alice.CloseNow() // dropped: no close frame
	for deadline := time.Now().Add(5 * time.Second); srv.Stats().HeldSessions == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("alice's session was not held")
		}
	}
	alice = dial(base, "alice"+session)
	defer alice.CloseNow()
	send(alice, `["1","1","room:lobby","phx_join",{}]`)
	next(alice, "phx_reply")

	carol := dial(base, "carol")
	defer carol.CloseNow()
	send(carol, `["1","1","room:lobby","phx_join",{}]`)
	// bob's next presence_diff is carol's: nothing was sent about alice.
	fmt.Println("bob is sent", presenceKeys(next(bob, "presence_diff").Payload))
	fmt.Println("resumes:", srv.Stats().Resumes)
	// Output:
	// bob is sent joins [alice] leaves []
	// bob is sent joins [carol] leaves []
	// resumes: 1
}

// presenceKeys says which keys a presence_diff joins and leaves.
func presenceKeys(payload []byte) string {
	var d struct{ Joins, Leaves map[string]any }
	if err := json.Unmarshal(payload, &d); err != nil {
		log.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	return fmt.Sprint("joins ", keys(d.Joins), " leaves ", keys(d.Leaves))
}
