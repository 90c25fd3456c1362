package channel

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

var stormClients = flag.Int("storm.clients", 400, "clients joining one room in TestJoinStorm")

// TestJoinStorm: clients join one room as fast as they can, as in the chat
// demo (each join tracks, pushes presence_state and broadcasts
// user_joined). At the default queue bound no socket is dropped as a slow
// consumer, and every client's roster, kept from presence_state and
// presence_diff as the JavaScript client keeps it, ends up complete.
func TestJoinStorm(t *testing.T) {
	n := *stormClients
	if raceEnabled && n > 150 {
		n = 150
	}
	if testing.Short() {
		n = min(n, 100)
	}
	e, err := engine.New(engine.Config{Capacity: 2 * n, MaxPerSocket: 4})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *Config) {
		c.Presence = e
		c.PresenceWindow = 50 * time.Millisecond
		c.Channels = []Channel{{
			Topic: "room:*",
			Join: func(s *Socket, topic string, _ json.RawMessage) (any, error) {
				user, _ := s.Get("user")
				name := user.(string)
				if err := s.Track(topic, name, []byte(`{"name":"`+name+`"}`)); err != nil {
					return nil, err
				}
				if err := s.PushPresenceState(topic); err != nil {
					return nil, err
				}
				return nil, s.BroadcastFrom(topic, "user_joined", map[string]string{"user": name})
			},
		}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	// A client that leaves would shorten the others' rosters: every client
	// stays until all are complete.
	var complete, gone sync.WaitGroup
	allComplete := make(chan struct{})
	var frames, bytes atomic.Int64
	errs := make(chan error, n)
	complete.Add(n)
	gone.Add(n)
	for i := range n {
		go func() {
			defer gone.Done()
			err := stormClient(ctx, ts.url, fmt.Sprint("u", i), n, &frames, &bytes, complete.Done, allComplete)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	complete.Wait()
	elapsed := time.Since(start)
	close(allComplete)
	gone.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := ts.srv.Stats()
	t.Logf("%d clients: every roster complete after %v; %d frames, %d bytes received; %d presence_diff, %d presence_state",
		n, elapsed.Round(time.Millisecond), frames.Load(), bytes.Load(), st.PresenceDiffs, st.PresenceStates)
	if st.Drops != 0 {
		t.Fatalf("%d slow-consumer drops", st.Drops)
	}
}

// stormClient joins room:storm and reads until its roster holds want keys;
// it calls complete then, or when it fails, and stays until stay is closed.
func stormClient(ctx context.Context, base, user string, want int, frames, bytes *atomic.Int64, complete func(), stay <-chan struct{}) error {
	var once sync.Once
	defer once.Do(complete)
	conn, _, err := websocket.Dial(ctx, base+"?"+url.Values{"user": {user}, "vsn": {"2.0.0"}}.Encode(), nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:storm","phx_join",{}]`)); err != nil {
		return err
	}
	roster := map[string]map[string]bool{} // key -> phx_refs
	var p phx.Parser
	for len(roster) < want {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("roster has %d of %d: %w", len(roster), want, err)
		}
		frames.Add(1)
		bytes.Add(int64(len(data)))
		f, err := p.Parse(data)
		if err != nil {
			return err
		}
		switch f.Event {
		case "phx_reply":
			if !json.Valid(f.Payload) || string(f.Payload) != `{"status":"ok","response":{}}` {
				return fmt.Errorf("join refused: %s", f.Payload)
			}
		case "presence_state":
			var state presenceRefs
			if err := json.Unmarshal(f.Payload, &state); err != nil {
				return err
			}
			clear(roster)
			state.apply(roster, true)
		case "presence_diff":
			var diff struct{ Joins, Leaves presenceRefs }
			if err := json.Unmarshal(f.Payload, &diff); err != nil {
				return err
			}
			diff.Leaves.apply(roster, false)
			diff.Joins.apply(roster, true)
		case "user_joined":
		default:
			return errors.New("unexpected event " + f.Event)
		}
	}
	once.Do(complete)
	<-stay
	return nil
}

type presenceRefs map[string]struct {
	Metas []struct {
		Ref string `json:"phx_ref"`
	} `json:"metas"`
}

func (p presenceRefs) apply(roster map[string]map[string]bool, join bool) {
	for key, v := range p {
		refs := roster[key]
		if refs == nil {
			refs = map[string]bool{}
			roster[key] = refs
		}
		for _, m := range v.Metas {
			if join {
				refs[m.Ref] = true
			} else {
				delete(refs, m.Ref)
			}
		}
		if len(refs) == 0 {
			delete(roster, key)
		}
	}
}
