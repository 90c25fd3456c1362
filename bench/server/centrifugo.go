package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	centrifuge "github.com/centrifugal/centrifuge-go"
	"github.com/presencekit/presence/bench/load"
)

// driver connects centrifuge-go clients (JSON protocol) to a Centrifugo
// server whose channels have presence, join_leave and
// force_push_join_leave on, and whose clients may connect anonymously
// (insecure mode) and publish.
//
// Each client keeps its room's roster the way a Centrifugo client does: a
// presence call once subscribed, then the join and leave pushes. Rosters
// are keyed by client id: anonymous clients have no user id.
type driver struct {
	url string
}

func (d *driver) Name() string { return "centrifugo" }

func (d *driver) Connect(ctx context.Context, name string, ev *load.Events) (load.Client, error) {
	var dialer net.Dialer
	c := &client{ev: ev, connected: make(chan string, 1), subs: map[string]*centrifuge.Subscription{}}
	c.life, c.stop = context.WithCancel(context.Background())
	c.c = centrifuge.NewJsonClient(d.url, centrifuge.Config{
		Name: "presbench",
		// Our Phoenix client waits for a reply as long as the workload
		// lasts; centrifuge-go's defaults (1 s to dial, 5 s for a reply)
		// would turn a busy server into a storm of repeated requests.
		HandshakeTimeout: 30 * time.Second,
		ReadTimeout:      30 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return load.CountBytes(conn, ev.Counters), nil
		},
	})
	c.c.OnConnected(func(e centrifuge.ConnectedEvent) {
		c.frame(false)
		select {
		case c.connected <- e.ClientID:
		default:
		}
	})
	c.c.OnDisconnected(func(centrifuge.DisconnectedEvent) {
		if !c.closed.Load() {
			ev.Counters.Disconnects.Add(1)
		}
	})
	if err := c.c.Connect(); err != nil {
		c.stop()
		return nil, err
	}
	select {
	case c.id = <-c.connected:
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

type client struct {
	c         *centrifuge.Client
	id        string
	ev        *load.Events
	connected chan string
	closed    atomic.Bool

	life context.Context // ends at Close
	stop context.CancelFunc

	mu      sync.Mutex // the roster, updated from callbacks and from sync
	subs    map[string]*centrifuge.Subscription
	joining chan error    // a Join waiting for its roster
	leaving chan struct{} // a Leave waiting for its unsubscription
}

// frame counts one message received; presence ones apart.
func (c *client) frame(presence bool) {
	c.ev.Counters.Frames.Add(1)
	if presence {
		c.ev.Counters.PresenceFrames.Add(1)
	}
}

func (c *client) Key() string { return c.id }

func (c *client) sub(room string) (*centrifuge.Subscription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.subs[room]; ok {
		return s, nil
	}
	s, err := c.c.NewSubscription(room, centrifuge.SubscriptionConfig{JoinLeave: true})
	if err != nil {
		return nil, err
	}
	s.OnJoin(func(e centrifuge.JoinEvent) {
		c.frame(true)
		c.mu.Lock()
		c.ev.Roster.Add(e.Client, e.Client)
		c.mu.Unlock()
	})
	s.OnLeave(func(e centrifuge.LeaveEvent) {
		c.frame(true)
		c.mu.Lock()
		c.ev.Roster.Remove(e.Client, e.Client)
		c.mu.Unlock()
	})
	s.OnPublication(func(e centrifuge.PublicationEvent) {
		c.frame(false)
		c.ev.Counters.Messages.Add(1)
		if c.ev.Message == nil {
			return
		}
		var msg struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(e.Data, &msg) == nil {
			c.ev.Message([]byte(msg.Body))
		}
	})
	// Every subscription, the first and any that centrifuge-go makes again
	// after a dropped connection, rebuilds the roster from a presence call.
	// Callbacks run in the order of what the server sent, so the pushes
	// after this one wait in the roster until the call is answered.
	s.OnSubscribed(func(centrifuge.SubscribedEvent) {
		c.frame(false)
		c.mu.Lock()
		c.ev.Roster.BeginSync()
		c.mu.Unlock()
		go c.sync(s, room)
	})
	// Errors on the way (a dropped connection, a timed-out subscribe) are
	// retried by centrifuge-go, as in any application; only an
	// unsubscription ends a join.
	s.OnUnsubscribed(func(e centrifuge.UnsubscribedEvent) {
		c.mu.Lock()
		leaving := c.leaving
		c.leaving = nil
		c.mu.Unlock()
		if leaving != nil {
			close(leaving)
			return
		}
		c.joined(fmt.Errorf("unsubscribed: %d %s", e.Code, e.Reason))
	})
	c.subs[room] = s
	return s, nil
}

// joined tells a waiting Join how its subscription ended.
func (c *client) joined(err error) {
	c.mu.Lock()
	ch := c.joining
	c.joining = nil
	c.mu.Unlock()
	if ch != nil {
		ch <- err
	}
}

// sync fetches the room's presence and applies it under the pushes held
// back since the subscription. A call that times out under load is made
// again, as an application would.
func (c *client) sync(s *centrifuge.Subscription, room string) {
	var p centrifuge.PresenceResult
	var err error
	for attempt := 0; ; attempt++ {
		if p, err = s.Presence(c.life); err == nil {
			break
		}
		if c.life.Err() != nil {
			c.joined(fmt.Errorf("presence %s: %w", room, err))
			return
		}
		c.ev.Counters.Retries.Add(1)
		select {
		case <-time.After(min(100*time.Millisecond<<attempt, 2*time.Second)):
		case <-c.life.Done():
		}
	}
	c.frame(true)
	c.mu.Lock()
	c.ev.Roster.EndSync(func(add func(key, id string)) {
		for id := range p.Clients {
			add(id, id)
		}
	})
	c.mu.Unlock()
	c.joined(nil)
}

// Join subscribes and returns once the roster holds the room's presence.
func (c *client) Join(ctx context.Context, room string) error {
	s, err := c.sub(room)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	c.mu.Lock()
	c.joining = done
	c.mu.Unlock()
	if err := s.Subscribe(); err != nil {
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("join %s: %w", room, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave unsubscribes. centrifuge-go does not wait for the server's
// answer; Leave returns once the client has let the subscription go.
func (c *client) Leave(ctx context.Context, room string) error {
	left := make(chan struct{})
	c.mu.Lock()
	s, ok := c.subs[room]
	c.leaving = left
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("leave %s: not joined", room)
	}
	if err := s.Unsubscribe(); err != nil {
		return err
	}
	select {
	case <-left:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *client) Publish(ctx context.Context, room string, body []byte) error {
	c.mu.Lock()
	s, ok := c.subs[room]
	c.mu.Unlock()
	if !ok {
		return errors.New("publish: not joined to " + room)
	}
	data, err := json.Marshal(map[string]string{"body": string(body)})
	if err != nil {
		return err
	}
	_, err = s.Publish(ctx, data)
	return err
}

func (c *client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.stop()
	c.c.Close()
	return nil
}
