// Package load drives a running presence server with many real clients and
// measures what a user of the server would feel: how long until every
// client's roster is complete, how fast presence changes reach everyone,
// how fast broadcasts fan out, and what idle connections cost the server.
//
// The workloads know nothing of wire protocols. A Driver connects clients
// to one kind of server (Phoenix Channels for ours, in cmd/presbench;
// Centrifugo, in the nested module bench/server) and reports what each
// client sees through its Events: the roster it keeps the way a real
// client would, messages, frames and bytes. Every workload runs the same
// way against every driver, so the results compare.
//
// Load tests stay on loopback: Run refuses a server address that is not a
// loopback address, and every workload is bounded in clients and time.
//
// # Concurrency
//
// Run may be called from one goroutine at a time per Driver. A Roster is
// updated by its client's read goroutine only; Counters may be updated from
// any goroutine.
package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/presencekit/presence/bench/progress"
)

// Driver connects clients to one kind of server.
type Driver interface {
	// Name names the server in reports.
	Name() string
	// Connect opens one client identified by name. What the client sees
	// goes to ev, from then until Close.
	Connect(ctx context.Context, name string, ev *Events) (Client, error)
}

// Client is one connection.
type Client interface {
	// Key is the key this client's presence appears under in the others'
	// rosters.
	Key() string
	// Join joins room with presence and returns once the server accepted
	// the join; the roster then fills from the server's presence.
	Join(ctx context.Context, room string) error
	// Leave leaves room and returns once the server acknowledged it.
	Leave(ctx context.Context, room string) error
	// Publish sends body to everyone else in room; they receive it with
	// Events.Message.
	Publish(ctx context.Context, room string, body []byte) error
	// Close closes the connection.
	Close() error
}

// Events receives what one client sees. The driver calls the roster and
// Message from the client's read goroutine.
type Events struct {
	Roster   *Roster
	Counters *Counters
	// Message is called with the body of each broadcast received; nil
	// ignores them.
	Message func(body []byte)
}

// Counters are a run's totals over every client.
type Counters struct {
	Frames         atomic.Int64 // messages received (frames, or pushes where the protocol batches them)
	Bytes          atomic.Int64 // bytes read from the sockets, framing included
	PresenceFrames atomic.Int64 // presence_state and presence_diff; or join, leave and presence replies
	Messages       atomic.Int64 // broadcasts received
	Disconnects    atomic.Int64 // connections the server closed
	Retries        atomic.Int64 // requests made again after a failure: dials, presence calls
}

// CountBytes wraps a client's connection so that what it reads adds to
// c.Bytes. Drivers dial through it.
func CountBytes(conn net.Conn, c *Counters) net.Conn { return &countingConn{conn, &c.Bytes} }

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// SetDefaults fills in what a command leaves to the workload: how long
// churn (20 s), fanout (10 s) and idle (5 s) last, churn's churners (a
// tenth of the clients) and idle's rooms (one per 100 clients).
func (c *Config) SetDefaults() {
	if c.Duration == 0 {
		switch c.Workload {
		case Churn:
			c.Duration = 20 * time.Second
		case Fanout:
			c.Duration = 10 * time.Second
		case Idle:
			c.Duration = 5 * time.Second
		}
	}
	if c.Churners == 0 && c.Workload == Churn {
		c.Churners = max(1, c.Clients/10)
	}
	if c.Rooms == 0 && c.Workload == Idle {
		c.Rooms = max(1, c.Clients/100)
	}
}

// Workloads.
const (
	Join   = "join"   // join storm: every client joins one room at once
	Churn  = "churn"  // members of a steady room leave and rejoin
	Fanout = "fanout" // one publisher, every other client subscribed
	Idle   = "idle"   // connections spread over rooms, then left idle
)

// Workloads lists the workloads in report order.
var Workloads = []string{Join, Churn, Fanout, Idle}

// Limits on a run.
const (
	MaxClients = 20000
	MaxTimeout = 10 * time.Minute
)

// Config is one workload run.
type Config struct {
	Workload string
	URL      string // the server's address, for the loopback check
	Clients  int    // clients in the room (join, churn), subscribers (fanout), connections (idle)
	Rooms    int    // idle: rooms the clients spread over
	// Rate is churn's leave-and-rejoin cycles per second and fanout's
	// messages per second.
	Rate     float64
	Churners int           // churn: members that leave and rejoin; the others observe
	Duration time.Duration // churn and fanout: how long to measure; idle: how long to stay idle
	MsgSize  int           // fanout: bytes per message body
	Timeout  time.Duration // bound on the whole workload
	Dials    int           // connections opened at once
	// ServerPID, when > 0, names the server process whose CPU time and
	// memory /proc shows; 0 reports the client side only.
	ServerPID int
	Room      string // room name prefix
	// Progress, when not nil, follows the workload's phases (connect,
	// then the workload's own) for a person watching.
	Progress *progress.Meter
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.Workload != Join && c.Workload != Churn && c.Workload != Fanout && c.Workload != Idle:
		return fmt.Errorf("workload %q: want join, churn, fanout or idle", c.Workload)
	case c.Clients < 2 || c.Clients > MaxClients:
		return fmt.Errorf("clients must be between 2 and %d", MaxClients)
	case c.Timeout <= 0 || c.Timeout > MaxTimeout:
		return fmt.Errorf("timeout must be positive and at most %s", MaxTimeout)
	case c.Dials <= 0:
		return errors.New("dials must be positive")
	case c.ServerPID < 0:
		return errors.New("server-pid must not be negative")
	case c.Room == "":
		return errors.New("room must not be empty")
	}
	switch c.Workload {
	case Churn:
		if c.Churners <= 0 || c.Churners >= c.Clients {
			return errors.New("churners must be positive and fewer than clients")
		}
		if c.Rate <= 0 || c.Duration <= 0 {
			return errors.New("churn needs a positive rate and duration")
		}
	case Fanout:
		if c.Rate <= 0 || c.Duration <= 0 {
			return errors.New("fanout needs a positive rate and duration")
		}
		if c.MsgSize < 32 || c.MsgSize > 64<<10 {
			return errors.New("msg-size must be between 32 bytes and 64 KiB")
		}
	case Idle:
		if c.Rooms <= 0 || c.Rooms > c.Clients {
			return errors.New("rooms must be positive and at most clients")
		}
		if c.Duration < 0 {
			return errors.New("duration must not be negative")
		}
	}
	return CheckLoopback(c.URL)
}

// ErrNotLoopback is returned for a server address off this machine.
var ErrNotLoopback = errors.New("load: the server must be on a loopback address")

// CheckLoopback accepts ws, wss, http and https URLs whose host is
// localhost or a loopback IP address.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("load: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return fmt.Errorf("load: url %q: want a ws:// or http:// URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, host)
	}
	return nil
}
