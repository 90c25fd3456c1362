package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one workload measured. Durations are in milliseconds and
// memory in bytes, so that the JSON reads without units.
type Result struct {
	Server   string  `json:"server"`
	Workload string  `json:"workload"`
	Clients  int     `json:"clients"`
	Rooms    int     `json:"rooms,omitempty"`
	Churners int     `json:"churners,omitempty"`
	Rate     float64 `json:"rate,omitempty"`

	// Complete is true when every client's roster held its whole room;
	// CompleteMs is when, from the first dial.
	Complete        bool    `json:"complete"`
	CompleteMs      float64 `json:"complete_ms"`
	CompleteClients int     `json:"complete_clients"` // of Rosters
	Rosters         int     `json:"rosters"`          // clients keeping a roster: Clients, and fanout's publisher

	Frames         int64 `json:"frames"`
	Bytes          int64 `json:"bytes"`
	PresenceFrames int64 `json:"presence_frames"`
	Messages       int64 `json:"messages"` // broadcasts received, the publisher's own included
	Disconnects    int64 `json:"disconnects"`
	ConnectErrors  int64 `json:"connect_errors"` // clients that never connected and joined
	Retries        int64 `json:"retries"`        // requests made again after a failure, as real clients do

	// Churn: the measured window, presence frames sent in it, and the
	// latency of each action until every observer saw it.
	WindowMs       float64 `json:"window_ms,omitempty"`
	PresencePerSec float64 `json:"presence_frames_per_sec,omitempty"`
	Actions        int64   `json:"actions,omitempty"`
	Unseen         int64   `json:"unseen,omitempty"`  // actions some observer never saw
	Skipped        int64   `json:"skipped,omitempty"` // ticks with no churner free

	// Fanout: messages sent, delivered (expected: sent * subscribers).
	Sent            int64   `json:"sent,omitempty"`
	Delivered       int64   `json:"delivered,omitempty"`
	Expected        int64   `json:"expected,omitempty"`
	DeliveredPerSec float64 `json:"delivered_per_sec,omitempty"`

	LatencyP50Ms float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms float64 `json:"latency_p99_ms,omitempty"`
	LatencyMaxMs float64 `json:"latency_max_ms,omitempty"`

	// The server process, with ServerPID: CPU seconds during the
	// workload, peak and final resident memory, and for idle the memory
	// per connection over what it held before the clients came.
	ServerCPUSec  float64 `json:"server_cpu_sec,omitempty"`
	ClientCPUSec  float64 `json:"client_cpu_sec"` // this process: every client, on the same machine
	ServerPeakRSS int64   `json:"server_peak_rss,omitempty"`
	ServerRSS     int64   `json:"server_rss,omitempty"`
	RSSPerConn    int64   `json:"rss_per_conn,omitempty"`
	PeakReset     bool    `json:"peak_reset,omitempty"` // the peak was reset at the start

	Error string `json:"error,omitempty"`
}

// Run runs cfg.Workload against the server d connects to.
func Run(ctx context.Context, d Driver, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &run{d: d, cfg: cfg, res: &Result{Server: d.Name(), Workload: cfg.Workload, Clients: cfg.Clients}}
	self, _ := ReadProc(os.Getpid())
	r.procStart()
	var err error
	switch cfg.Workload {
	case Join:
		err = r.join(ctx)
	case Churn:
		err = r.churn(ctx)
	case Fanout:
		err = r.fanout(ctx)
	case Idle:
		err = r.idle(ctx)
	}
	r.procEnd()
	if st, err := ReadProc(os.Getpid()); err == nil {
		r.res.ClientCPUSec = (st.CPU - self.CPU).Seconds()
	}
	r.res.Frames = r.counters.Frames.Load()
	r.res.Bytes = r.counters.Bytes.Load()
	r.res.PresenceFrames = r.counters.PresenceFrames.Load()
	r.res.Messages = r.counters.Messages.Load()
	r.res.Disconnects = r.counters.Disconnects.Load()
	r.res.ConnectErrors = r.connectErrors.Load()
	r.res.Retries = r.counters.Retries.Load()
	r.closeAll()
	if err != nil {
		r.res.Error = err.Error()
	}
	return r.res, nil
}

// ErrIncomplete is the error of a workload whose rosters never completed.
var ErrIncomplete = errors.New("rosters incomplete")

type run struct {
	d             Driver
	cfg           Config
	res           *Result
	counters      Counters
	connectErrors atomic.Int64
	joined        atomic.Int64 // clients connected and joined, for Progress
	proc          ProcStats
	baseRSS       int64

	mu      sync.Mutex
	clients []Client
}

func (r *run) procStart() {
	if r.cfg.ServerPID == 0 {
		return
	}
	r.res.PeakReset = ResetPeak(r.cfg.ServerPID) == nil
	r.proc, _ = ReadProc(r.cfg.ServerPID)
	r.baseRSS = r.proc.RSS
}

func (r *run) procEnd() {
	if r.cfg.ServerPID == 0 {
		return
	}
	st, err := ReadProc(r.cfg.ServerPID)
	if err != nil {
		return
	}
	r.res.ServerCPUSec = (st.CPU - r.proc.CPU).Seconds()
	r.res.ServerPeakRSS = st.HWM
	if r.res.ServerRSS == 0 {
		r.res.ServerRSS = st.RSS
	}
}

// closeAll closes every client, a few at a time.
func (r *run) closeAll() {
	r.mu.Lock()
	clients := r.clients
	r.clients = nil
	r.mu.Unlock()
	CloseAll(clients)
}

// CloseAll closes clients, 64 at a time, and returns when all are closed.
func CloseAll(clients []Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
			<-sem
		}()
	}
	wg.Wait()
}

func (r *run) room(i int) string { return r.cfg.Room + strconv.Itoa(i) }

// member is one client and what the workload set up for it.
type member struct {
	name   string
	room   string
	ev     *Events
	client Client
}

// connect opens and joins every member, cfg.Dials at a time, and returns
// once all are joined or one failed.
func (r *run) connect(ctx context.Context, ms []*member) error {
	sem := make(chan struct{}, r.cfg.Dials)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, m := range ms {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.open(ctx, m)
			<-sem
			if err != nil {
				r.connectErrors.Add(1)
				once.Do(func() { first = fmt.Errorf("%s: %w", m.name, err) })
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

func (r *run) open(ctx context.Context, m *member) error {
	var c Client
	var err error
	for attempt := 0; ; attempt++ {
		if c, err = r.d.Connect(ctx, m.name, m.ev); err == nil {
			break
		}
		if attempt == len(backoff) || ctx.Err() != nil {
			return err
		}
		r.counters.Retries.Add(1)
		select {
		case <-time.After(backoff[attempt] * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	m.client = c
	if err := c.Join(ctx, m.room); err != nil {
		return err
	}
	r.joined.Add(1)
	return nil
}

// completion counts members whose roster holds their whole room.
type completion struct {
	n    atomic.Int64
	want int64
	done chan struct{}
	once sync.Once
}

func newCompletion(want int) *completion {
	return &completion{want: int64(want), done: make(chan struct{})}
}

// watch makes rs count toward c while it holds size keys.
func (c *completion) watch(rs *Roster, size int) {
	complete := false
	rs.OnLen = func(n int) {
		switch {
		case n == size && !complete:
			complete = true
			if c.n.Add(1) == c.want {
				c.once.Do(func() { close(c.done) })
			}
		case n != size && complete:
			complete = false
			c.n.Add(-1)
		}
	}
}

func (r *run) members(n int, room func(i int) string) []*member {
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{name: "u" + strconv.Itoa(i), room: room(i), ev: &Events{Roster: &Roster{}, Counters: &r.counters}}
	}
	return ms
}

// fill connects ms, each into its room, and waits until every roster is
// complete.
func (r *run) fill(ctx context.Context, ms []*member, size func(i int) int) error {
	comp := newCompletion(len(ms))
	r.res.Rosters = len(ms)
	r.cfg.Progress.Phase("connect and join", r.joined.Load)
	for i, m := range ms {
		comp.watch(m.ev.Roster, size(i))
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- r.connect(ctx, ms) }()
	var err error
	select {
	case <-comp.done:
	case err = <-errc:
		if err == nil {
			select {
			case <-comp.done:
			case <-ctx.Done():
				err = ErrIncomplete
			}
		}
	}
	r.res.CompleteClients = int(comp.n.Load())
	if err == nil {
		r.res.Complete = true
		r.res.CompleteMs = ms64(time.Since(start))
	}
	return err
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// join: every client joins one room at once; done when every roster holds
// all of them.
func (r *run) join(ctx context.Context) error {
	n := r.cfg.Clients
	ms := r.members(n, func(int) string { return r.room(0) })
	return r.fill(ctx, ms, func(int) int { return n })
}

// idle: clients spread over rooms; once every roster is complete they stay
// idle for Duration, and the server's memory is read.
func (r *run) idle(ctx context.Context) error {
	n, rooms := r.cfg.Clients, r.cfg.Rooms
	r.res.Rooms = rooms
	ms := r.members(n, func(i int) string { return r.room(i % rooms) })
	size := func(i int) int {
		room := i % rooms
		return n/rooms + btoi(room < n%rooms)
	}
	if err := r.fill(ctx, ms, size); err != nil {
		return err
	}
	r.cfg.Progress.Phase("idle", nil)
	select {
	case <-time.After(r.cfg.Duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.cfg.ServerPID != 0 {
		st, err := ReadProc(r.cfg.ServerPID)
		if err != nil {
			return err
		}
		r.res.ServerRSS = st.RSS
		r.res.RSSPerConn = (st.RSS - r.baseRSS) / int64(n)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// histogram is a latency histogram shared by goroutines: a few shards,
// each with its lock, so that thousands of clients recording at once do
// not queue on one.
type histogram struct {
	shards [16]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

func newHistogram() *histogram {
	h := &histogram{}
	for i := range h.shards {
		h.shards[i].h = hdrhistogram.New(1, int64(MaxTimeout/time.Microsecond), 3)
	}
	return h
}

// record records d in the shard of recorder i.
func (h *histogram) record(i int, d time.Duration) {
	s := &h.shards[i%len(h.shards)]
	s.mu.Lock()
	s.h.RecordValue(max(int64(d/time.Microsecond), 1))
	s.mu.Unlock()
}

func (h *histogram) into(res *Result) {
	all := hdrhistogram.New(1, int64(MaxTimeout/time.Microsecond), 3)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	if all.TotalCount() == 0 {
		return
	}
	res.LatencyP50Ms = float64(all.ValueAtQuantile(50)) / 1000
	res.LatencyP99Ms = float64(all.ValueAtQuantile(99)) / 1000
	res.LatencyMaxMs = float64(all.Max()) / 1000
}

// action is one leave or join of a churner, waiting for every observer.
type action struct {
	start     time.Time
	remaining atomic.Int64
	done      chan struct{}
}

// tracker matches what observers see to the pending actions.
type tracker struct {
	mu     sync.RWMutex
	leaves map[string]*action // by key
	joins  map[string]*action
	hist   *histogram
}

func (t *tracker) begin(m map[string]*action, key string, observers int) *action {
	a := &action{start: time.Now(), done: make(chan struct{})}
	a.remaining.Store(int64(observers))
	t.mu.Lock()
	m[key] = a
	t.mu.Unlock()
	return a
}

func (t *tracker) seen(m map[string]*action, key string) {
	t.mu.RLock()
	a := m[key]
	t.mu.RUnlock()
	if a != nil && a.remaining.Add(-1) == 0 {
		t.hist.record(0, time.Since(a.start))
		close(a.done)
	}
}

func (t *tracker) end(m map[string]*action, key string, a *action) {
	t.mu.Lock()
	if m[key] == a {
		delete(m, key)
	}
	t.mu.Unlock()
}

// churn: a steady room; Churners of its members leave and rejoin, Rate
// cycles a second, for Duration. Each leave and each join is timed until
// every observer (the members that stay) has seen it.
func (r *run) churn(ctx context.Context) error {
	n, nc := r.cfg.Clients, r.cfg.Churners
	r.res.Churners, r.res.Rate = nc, r.cfg.Rate
	observers := n - nc
	t := &tracker{leaves: map[string]*action{}, joins: map[string]*action{}, hist: newHistogram()}
	ms := r.members(n, func(int) string { return r.room(0) })
	for _, m := range ms[nc:] {
		m.ev.Roster.OnAdd = func(key, _ string) { t.seen(t.joins, key) }
		m.ev.Roster.OnRemove = func(key, _ string) { t.seen(t.leaves, key) }
	}
	if err := r.fill(ctx, ms, func(int) int { return n }); err != nil {
		return err
	}
	free := make(chan *member, nc)
	for _, m := range ms[:nc] {
		free <- m
	}
	// Every observer must see every action; one that takes longer than
	// this is counted unseen.
	seenTimeout := min(10*time.Second, r.cfg.Timeout/4)
	var actions, unseen atomic.Int64
	var wg sync.WaitGroup
	// wait counts a, once every observer saw it or the time is up.
	wait := func(pending map[string]*action, key string, a *action, failed bool) {
		actions.Add(1)
		if failed {
			unseen.Add(1)
		} else {
			select {
			case <-a.done:
			case <-time.After(seenTimeout):
				unseen.Add(1)
			case <-ctx.Done():
				unseen.Add(1)
			}
		}
		t.end(pending, key, a)
	}
	cycle := func(m *member) {
		defer wg.Done()
		defer func() { free <- m }()
		key := m.client.Key()
		leave := t.begin(t.leaves, key, observers)
		if err := m.client.Leave(ctx, m.room); err != nil {
			wait(t.leaves, key, leave, true)
			return
		}
		join := t.begin(t.joins, key, observers)
		err := m.client.Join(ctx, m.room)
		wait(t.leaves, key, leave, false)
		wait(t.joins, key, join, err != nil)
	}
	r.cfg.Progress.Phase("churn (leaves and joins)", actions.Load)
	frames0 := r.counters.PresenceFrames.Load()
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Rate))
	stop := time.After(r.cfg.Duration)
loop:
	for {
		select {
		case <-tick.C:
			select {
			case m := <-free:
				wg.Add(1)
				go cycle(m)
			default:
				r.res.Skipped++
			}
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	wg.Wait()
	window := time.Since(start)
	r.res.WindowMs = ms64(window)
	r.res.PresencePerSec = float64(r.counters.PresenceFrames.Load()-frames0) / window.Seconds()
	r.res.Actions, r.res.Unseen = actions.Load(), unseen.Load()
	t.hist.into(r.res)
	return ctx.Err()
}

// fanout: one publisher, Clients subscribers in one room; the publisher
// sends Rate messages a second of MsgSize bytes for Duration, each stamped
// with the time it was sent.
func (r *run) fanout(ctx context.Context) error {
	n := r.cfg.Clients
	r.res.Rate = r.cfg.Rate
	hist := newHistogram()
	var delivered atomic.Int64
	var last atomic.Int64 // unix nanoseconds of the latest delivery
	ms := r.members(n+1, func(int) string { return r.room(0) })
	for i, m := range ms[1:] {
		m.ev.Message = func(body []byte) {
			sent, ok := stamp(body)
			if !ok {
				return
			}
			now := time.Now()
			hist.record(i, now.Sub(time.Unix(0, sent)))
			delivered.Add(1)
			last.Store(now.UnixNano())
		}
	}
	if err := r.fill(ctx, ms, func(int) int { return n + 1 }); err != nil {
		return err
	}
	// The publisher keeps the pace whatever the server does: it does not
	// wait for one publish to be answered before the next, up to
	// maxInFlight; a tick that finds that many is skipped.
	const maxInFlight = 64
	pub := ms[0]
	inFlight := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var errOnce sync.Once
	var firstErr error
	// Message k is due at start + k/Rate. A publisher that wakes late
	// (the clients share the machine) sends what is due at once, so that
	// the server is offered Rate * Duration messages.
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	total := int(r.cfg.Duration / interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	r.cfg.Progress.Phase("fanout (messages delivered)", delivered.Load)
	start := time.Now()
	var err error
loop:
	for k := 0; k < total; k++ {
		if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				err = ctx.Err()
				break loop
			}
		}
		select {
		case inFlight <- struct{}{}:
		default:
			r.res.Skipped++
			continue
		}
		body := appendStamp(make([]byte, 0, r.cfg.MsgSize), time.Now(), r.cfg.MsgSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pub.client.Publish(ctx, pub.room, body); err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
			} else {
				sent.Add(1)
			}
			<-inFlight
		}()
	}
	wg.Wait()
	r.res.Sent = sent.Load()
	if n := failed.Load(); n > 0 && err == nil {
		err = fmt.Errorf("%d publishes failed: %w", n, firstErr)
	}
	// Wait for the stragglers: until everything arrived, or a second
	// passed with nothing new.
	want := r.res.Sent * int64(n)
	for prev := int64(-1); delivered.Load() < want && delivered.Load() != prev && ctx.Err() == nil; {
		prev = delivered.Load()
		time.Sleep(time.Second)
	}
	r.res.Delivered, r.res.Expected = delivered.Load(), want
	if end := last.Load(); end > start.UnixNano() {
		r.res.DeliveredPerSec = float64(r.res.Delivered) / time.Unix(0, end).Sub(start).Seconds()
	}
	r.res.WindowMs = ms64(r.cfg.Duration)
	hist.into(r.res)
	return err
}

// appendStamp appends "t=<unix nanoseconds>;" and padding up to size bytes:
// plain ASCII, so that it travels in a JSON string unescaped.
func appendStamp(dst []byte, t time.Time, size int) []byte {
	dst = append(dst, "t="...)
	dst = strconv.AppendInt(dst, t.UnixNano(), 10)
	dst = append(dst, ';')
	for len(dst) < size {
		dst = append(dst, 'x')
	}
	return dst
}

// stamp reads the time appendStamp wrote.
func stamp(body []byte) (int64, bool) {
	if len(body) < 3 || body[0] != 't' || body[1] != '=' {
		return 0, false
	}
	end := 2
	for end < len(body) && body[end] != ';' {
		end++
	}
	v, err := strconv.ParseInt(string(body[2:end]), 10, 64)
	return v, err == nil
}
