// Package countstorm is presbench's join storm in count mode: every client
// joins one room asking for count mode ({"presence": "count"}), and the
// storm is complete when every client's last presence_count says the
// whole room. It measures what a large room costs each member: the bytes
// each client receives, and how long until every count is right.
//
// # Concurrency
//
// Run may be called from one goroutine at a time per Driver; it starts a
// goroutine per connection being opened, and each client's read goroutine
// reports its counts.
package countstorm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencekit/presence/bench/load"
	"github.com/presencekit/presence/bench/progress"
	"github.com/presencekit/presence/cmd/presbench/internal/phxload"
)

// Config is one storm.
type Config struct {
	URL       string // the server's address, for the loopback check
	Clients   int
	Dials     int           // connections opened at once
	Timeout   time.Duration // bound on the whole storm
	Room      string        // the room is Room + "0", as the join workload names it
	ServerPID int           // > 0: the server process whose CPU and memory /proc shows
	Progress  *progress.Meter
}

// ErrWrongCount is the error of a storm in which some client's last
// presence_count was not the whole room.
var ErrWrongCount = errors.New("last presence_count is not the whole room")

// ErrDropped is the error of a storm in which the server closed clients.
var ErrDropped = errors.New("clients were disconnected")

// Run runs the storm with d, which it sets to count mode. The result has
// the join workload's fields: Complete is every client's last count being
// Clients, and CompleteClients the clients whose last count was Clients
// when the storm ended. A storm that did not complete, lost clients or
// ended with a wrong count has Error set.
func Run(ctx context.Context, d *phxload.Driver, cfg Config) (*load.Result, error) {
	lc := load.Config{Workload: load.Join, URL: cfg.URL, Clients: cfg.Clients, Timeout: cfg.Timeout, Dials: cfg.Dials, ServerPID: cfg.ServerPID, Room: cfg.Room}
	if err := lc.Validate(); err != nil {
		return nil, err
	}
	d.Count = true
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	s := &storm{d: d, cfg: cfg, room: cfg.Room + "0", last: make([]atomic.Int64, cfg.Clients), done: make(chan struct{})}
	res := &load.Result{Server: d.Name(), Workload: load.Join, Clients: cfg.Clients, Rosters: cfg.Clients}
	self, _ := load.ReadProc(os.Getpid())
	var server load.ProcStats
	if cfg.ServerPID > 0 {
		res.PeakReset = load.ResetPeak(cfg.ServerPID) == nil
		server, _ = load.ReadProc(cfg.ServerPID)
	}
	start := time.Now()
	err := s.run(ctx)
	if err == nil {
		res.Complete = true
		res.CompleteMs = float64(time.Since(start)) / float64(time.Millisecond)
	}
	if cfg.ServerPID > 0 {
		if st, perr := load.ReadProc(cfg.ServerPID); perr == nil {
			res.ServerCPUSec = (st.CPU - server.CPU).Seconds()
			res.ServerPeakRSS, res.ServerRSS = st.HWM, st.RSS
		}
	}
	if st, perr := load.ReadProc(os.Getpid()); perr == nil {
		res.ClientCPUSec = (st.CPU - self.CPU).Seconds()
	}
	// The counts as the storm ended, before the clients close.
	wrong := 0
	for i := range s.last {
		if s.last[i].Load() != int64(cfg.Clients) {
			wrong++
		}
	}
	res.CompleteClients = cfg.Clients - wrong
	c := &s.counters
	res.Frames, res.Bytes, res.PresenceFrames = c.Frames.Load(), c.Bytes.Load(), c.PresenceFrames.Load()
	res.Disconnects, res.Retries, res.ConnectErrors = c.Disconnects.Load(), c.Retries.Load(), s.connectErrors.Load()
	s.closeAll()
	switch {
	case err != nil:
	case wrong > 0:
		err = fmt.Errorf("%w: %d of %d clients", ErrWrongCount, wrong, cfg.Clients)
	case res.Disconnects > 0:
		err = fmt.Errorf("%w: %d", ErrDropped, res.Disconnects)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res, nil
}

type storm struct {
	d             *phxload.Driver
	cfg           Config
	room          string
	counters      load.Counters
	connectErrors atomic.Int64
	joined        atomic.Int64

	// last[i] is client i's last count; complete counts the clients whose
	// last count is the whole room, and done closes when all are.
	last     []atomic.Int64
	complete atomic.Int64
	done     chan struct{}
	once     sync.Once

	mu      sync.Mutex
	clients []load.Client
}

// onCount records client i's count as its read goroutine receives it.
func (s *storm) onCount(i int) func(keys, entries int) {
	want := int64(s.cfg.Clients)
	return func(keys, _ int) {
		was := s.last[i].Swap(int64(keys))
		switch {
		case int64(keys) == want && was != want:
			if s.complete.Add(1) == want {
				s.once.Do(func() { close(s.done) })
			}
		case int64(keys) != want && was == want:
			s.complete.Add(-1)
		}
	}
}

// run connects and joins every client, cfg.Dials at a time, and returns
// once every count is the whole room, or with the first error.
func (s *storm) run(ctx context.Context) error {
	s.cfg.Progress.Phase("connect and join (count mode)", s.joined.Load)
	errc := make(chan error, 1)
	go func() { errc <- s.connect(ctx) }()
	select {
	case <-s.done:
		return nil
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %d of %d counts whole", load.ErrIncomplete, s.complete.Load(), s.cfg.Clients)
	}
}

func (s *storm) connect(ctx context.Context) error {
	sem := make(chan struct{}, s.cfg.Dials)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range s.cfg.Clients {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.open(ctx, i)
			<-sem
			if err != nil {
				s.connectErrors.Add(1)
				once.Do(func() { first = fmt.Errorf("u%d: %w", i, err) })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// backoff is how long a client waits before dialing again after a failed
// connect: the official Phoenix client's schedule.
var backoff = []time.Duration{10, 50, 100, 150, 200, 250, 500, 1000, 2000}

func (s *storm) open(ctx context.Context, i int) error {
	ev := &load.Events{Roster: &load.Roster{}, Counters: &s.counters}
	var c load.Client
	var err error
	for attempt := 0; ; attempt++ {
		if c, err = s.d.ConnectCount(ctx, "u"+strconv.Itoa(i), ev, s.onCount(i)); err == nil {
			break
		}
		if attempt == len(backoff) || ctx.Err() != nil {
			return err
		}
		s.counters.Retries.Add(1)
		select {
		case <-time.After(backoff[attempt] * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	if err := c.Join(ctx, s.room); err != nil {
		return err
	}
	s.joined.Add(1)
	return nil
}

// closeAll closes every client, a few at a time.
func (s *storm) closeAll() {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	load.CloseAll(clients)
}
