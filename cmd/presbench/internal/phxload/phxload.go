// Package phxload is presbench's Phoenix Channels v2 driver for the load
// workloads of bench/load: real WebSocket clients, speaking the phx wire
// codec, that keep the room's roster from presence_state and presence_diff
// the way the official JavaScript client does.
//
// It speaks the protocol of cmd/presence-chat: the client's name goes in
// the connect parameter "name", a join's payload is empty, and messages are
// the event Event with the payload {"body": "..."}, broadcast to the room
// with the same payload (the sender's name may be added). With Count, a
// join asks for count mode ({"presence": "count"}): the client then keeps
// no roster, and reports each presence_count to the function given to
// ConnectCount.
//
// # Concurrency
//
// A Driver may be shared by goroutines. A client's methods may be called
// concurrently; its Events are called from its read goroutine.
package phxload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/phx"
	"github.com/valyala/fastjson"
)

// Driver connects Phoenix clients to one server.
type Driver struct {
	// URL is the WebSocket endpoint, e.g.
	// ws://127.0.0.1:4000/socket/websocket.
	URL string
	// Event is the event a message is published and received with;
	// "" means "new_msg".
	Event string
	// Heartbeat is how often a client sends a heartbeat; 0 means 30 s.
	Heartbeat time.Duration
	// Count makes joins ask for count mode.
	Count bool

	// Parsers are shared by the clients, a frame at a time: a parser
	// keeps memory the size of the largest frame it read, and thousands
	// of clients each keeping their own would hold gigabytes.
	frames   sync.Pool // *phx.Parser
	payloads fastjson.ParserPool
}

// Name implements load.Driver.
func (d *Driver) Name() string { return "presence" }

// ErrReply is returned for a request the server answered with an error.
var ErrReply = errors.New("phxload: error reply")

// Connect implements load.Driver.
func (d *Driver) Connect(ctx context.Context, name string, ev *load.Events) (load.Client, error) {
	return d.connect(ctx, name, ev, nil)
}

// ConnectCount is Connect for a count-mode client: onCount is called with
// the numbers of each presence_count it receives, from its read
// goroutine.
func (d *Driver) ConnectCount(ctx context.Context, name string, ev *load.Events, onCount func(keys, entries int)) (load.Client, error) {
	return d.connect(ctx, name, ev, onCount)
}

func (d *Driver) connect(ctx context.Context, name string, ev *load.Events, onCount func(keys, entries int)) (load.Client, error) {
	u, err := url.Parse(d.URL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("vsn", "2.0.0")
	q.Set("name", name)
	u.RawQuery = q.Encode()
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return load.CountBytes(c, ev.Counters), nil
		},
	}}
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20) // a presence_state of thousands of members
	event := d.Event
	if event == "" {
		event = "new_msg"
	}
	c := &client{d: d, name: name, conn: conn, ev: ev, event: event, onCount: onCount, waiting: map[string]chan reply{}, joined: map[string]string{}, done: make(chan struct{})}
	go c.read()
	hb := d.Heartbeat
	if hb <= 0 {
		hb = 30 * time.Second
	}
	go c.heartbeat(hb)
	return c, nil
}

type reply struct {
	ok       bool
	response string
	err      error
}

type client struct {
	d     *Driver
	name  string
	conn  *websocket.Conn
	ev    *load.Events
	event string
	// onCount gets each presence_count; nil ignores them.
	onCount func(keys, entries int)
	ref     atomic.Uint64
	closed  atomic.Bool
	done    chan struct{}

	mu      sync.Mutex
	waiting map[string]chan reply // by ref
	joined  map[string]string     // join ref by topic
	readErr error
}

func (c *client) nextRef() string { return strconv.FormatUint(c.ref.Add(1), 10) }

// request sends an event and waits for its reply.
func (c *client) request(ctx context.Context, joinRef, topic, event string, payload []byte) error {
	ref := c.nextRef()
	if joinRef == "" {
		joinRef = ref
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return err
	}
	c.waiting[ref] = ch
	if event == "phx_join" {
		c.joined[topic] = joinRef
	}
	c.mu.Unlock()
	frame := phx.AppendFrame(nil, phx.MakeRef(joinRef), phx.MakeRef(ref), topic, event, payload)
	if err := c.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if !r.ok {
			return fmt.Errorf("%w to %s: %s", ErrReply, event, r.response)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, ref)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Key implements load.Client: presence-chat tracks a client under its name.
func (c *client) Key() string { return c.name }

// Join implements load.Client.
func (c *client) Join(ctx context.Context, room string) error {
	params := []byte("{}")
	if c.d.Count {
		params = []byte(`{"presence":"count"}`)
	}
	return c.request(ctx, "", room, "phx_join", params)
}

// Leave implements load.Client.
func (c *client) Leave(ctx context.Context, room string) error {
	c.mu.Lock()
	joinRef, ok := c.joined[room]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("phxload: leave %s: not joined", room)
	}
	return c.request(ctx, joinRef, room, "phx_leave", []byte("{}"))
}

// Publish implements load.Client. presence-chat answers a message with no
// reply, so Publish returns once the frame is written.
func (c *client) Publish(ctx context.Context, room string, body []byte) error {
	c.mu.Lock()
	joinRef, ok := c.joined[room]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("phxload: publish to %s: not joined", room)
	}
	payload, err := json.Marshal(map[string]string{"body": string(body)})
	if err != nil {
		return err
	}
	frame := phx.AppendFrame(nil, phx.MakeRef(joinRef), phx.MakeRef(c.nextRef()), room, c.event, payload)
	return c.conn.Write(ctx, websocket.MessageText, frame)
}

// Close implements load.Client.
func (c *client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.conn.CloseNow()
	<-c.done
	return err
}

func (c *client) heartbeat(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			frame := phx.AppendFrame(nil, phx.Ref{}, phx.MakeRef(c.nextRef()), "phoenix", "heartbeat", []byte("{}"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.conn.Write(ctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// read is the client's read loop: it answers waiting requests and keeps the
// roster.
func (c *client) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			if !c.closed.Load() {
				c.ev.Counters.Disconnects.Add(1)
			}
			c.fail(fmt.Errorf("phxload: connection closed: %w", err))
			return
		}
		c.ev.Counters.Frames.Add(1)
		fp, _ := c.d.frames.Get().(*phx.Parser)
		if fp == nil {
			fp = new(phx.Parser)
		}
		p := c.d.payloads.Get()
		c.handle(fp, p, data)
		c.d.payloads.Put(p)
		c.d.frames.Put(fp)
	}
}

// handle handles one frame; what fp returns lives until its next Parse.
func (c *client) handle(fp *phx.Parser, p *fastjson.Parser, data []byte) {
	f, err := fp.Parse(data)
	if err != nil {
		return
	}
	switch f.Event {
	case "phx_reply":
		c.reply(p, f)
	case "presence_state":
		c.ev.Counters.PresenceFrames.Add(1)
		if v, err := p.ParseBytes(f.Payload); err == nil {
			c.ev.Roster.Replace(func(add func(key, id string)) { eachMeta(v, add) })
		}
	case "presence_diff":
		c.ev.Counters.PresenceFrames.Add(1)
		if v, err := p.ParseBytes(f.Payload); err == nil {
			// Joins first, then leaves, as the official client does:
			// an update is a join of the new meta and a leave of the
			// old one in the same diff.
			eachMeta(v.Get("joins"), c.ev.Roster.Add)
			eachMeta(v.Get("leaves"), c.ev.Roster.Remove)
		}
	case "presence_count":
		c.ev.Counters.PresenceFrames.Add(1)
		if v, err := p.ParseBytes(f.Payload); err == nil && c.onCount != nil {
			c.onCount(v.GetInt("count"), v.GetInt("entries"))
		}
	case c.event:
		c.ev.Counters.Messages.Add(1)
		if c.ev.Message != nil {
			if v, err := p.ParseBytes(f.Payload); err == nil {
				c.ev.Message(v.GetStringBytes("body"))
			}
		}
	}
}

// eachMeta calls fn for every (key, phx_ref) of a presence object,
// {"key": {"metas": [{..., "phx_ref": "..."}]}}.
func eachMeta(v *fastjson.Value, fn func(key, id string)) {
	o, err := v.Object()
	if err != nil {
		return
	}
	o.Visit(func(key []byte, pv *fastjson.Value) {
		k := string(key)
		for _, m := range pv.GetArray("metas") {
			fn(k, string(m.GetStringBytes("phx_ref")))
		}
	})
}

func (c *client) reply(p *fastjson.Parser, f phx.Frame) {
	c.mu.Lock()
	ch, ok := c.waiting[f.Ref.S]
	delete(c.waiting, f.Ref.S)
	c.mu.Unlock()
	if !ok {
		return // a heartbeat's or a forgotten request's
	}
	r := reply{response: string(f.Payload)}
	if v, err := p.ParseBytes(f.Payload); err == nil {
		r.ok = string(v.GetStringBytes("status")) == "ok"
		if resp := v.Get("response"); resp != nil {
			r.response = resp.String()
		}
	}
	ch <- r
}

// fail ends every waiting request with err.
func (c *client) fail(err error) {
	c.mu.Lock()
	c.readErr = err
	waiting := c.waiting
	c.waiting = map[string]chan reply{}
	c.mu.Unlock()
	for _, ch := range waiting {
		ch <- reply{err: err}
	}
}

// ErrNoServer is Probe's error when no Phoenix WebSocket endpoint answers
// at the URL.
var ErrNoServer = errors.New("no server answers")

// Probe opens one WebSocket to the URL and closes it, within 5 s, so that
// a command finds out at once that nothing listens there.
func (d *Driver) Probe(ctx context.Context) error {
	u, err := url.Parse(d.URL)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrNoServer, d.URL, err)
	}
	q := u.Query()
	q.Set("vsn", "2.0.0")
	q.Set("name", "presbench-probe")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrNoServer, d.URL, err)
	}
	return conn.Close(websocket.StatusNormalClosure, "")
}
