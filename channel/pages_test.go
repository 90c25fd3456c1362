package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// listReply is presence_list's ok response.
type listReply struct {
	Presences presenceMap `json:"presences"`
	Next      *string     `json:"next"`
	Count     int         `json:"count"`
}

// page pushes presence_list and returns the reply's status and response.
func (c *client) page(joinRef, topic, payload string) (string, json.RawMessage) {
	c.t.Helper()
	return c.reply(c.push(joinRef, topic, "presence_list", payload))
}

// pagedServer is a test server whose engine holds a large topic.
func pagedServer(t testing.TB, capacity int) *testServer {
	return newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: capacity})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		c.MaxEventsPerSecond = -1 // a walk of many pages back to back
	})
}

// TestPresenceListPages: pages come in key order, in presence_state's
// format, with every meta of a key in one page, next as a string until
// the last page and count the topic's keys; either presence mode may page.
func TestPresenceListPages(t *testing.T) {
	ts := pagedServer(t, 1024)
	trackKeys(t, ts.srv, "room:p", 0, 5)
	// k2 gets a second entry: its metas stay together.
	if err := ts.srv.Presence().Track(engineSocket(99), "room:p", "k2", []byte(`{"second":true}`)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"count", "full"} {
		c := ts.dial("reader-" + mode)
		jr := c.join("room:p", `{"presence":"`+mode+`","no_track":true}`)
		var keys []string
		after := "null"
		for pages := 0; ; pages++ {
			status, resp := c.page(jr, "room:p", `{"limit":2,"after":`+after+`}`)
			if status != "ok" {
				t.Fatalf("%s: page %d: %s %s", mode, pages, status, resp)
			}
			var r listReply
			if err := json.Unmarshal(resp, &r); err != nil {
				t.Fatal(err)
			}
			if r.Count != 5 || len(r.Presences) > 2 {
				t.Fatalf("%s: page %s", mode, resp)
			}
			for k, p := range r.Presences {
				keys = append(keys, k)
				for _, m := range p.Metas {
					if m["phx_ref"] == "" {
						t.Fatalf("%s: meta without phx_ref in %s", mode, resp)
					}
				}
				if want := 1 + btoi(k == "k2"); len(p.Metas) != want {
					t.Fatalf("%s: %s has %d metas, want %d: %s", mode, k, len(p.Metas), want, resp)
				}
			}
			if r.Next == nil {
				break
			}
			b, _ := json.Marshal(*r.Next)
			after = string(b)
		}
		slices.Sort(keys) // a page is an object: its keys' order is the map's
		if !slices.Equal(keys, []string{"k0", "k1", "k2", "k3", "k4"}) {
			t.Fatalf("%s: keys %v", mode, keys)
		}
	}
	// The raw text keeps key order within a page.
	c := ts.dial("raw")
	jr := c.join("room:p", `{"presence":"count","no_track":true}`)
	_, resp := c.page(jr, "room:p", `{}`)
	var raw struct {
		Presences json.RawMessage `json:"presences"`
	}
	json.Unmarshal(resp, &raw)
	order := `^\{"k0":.*"k1":.*"k2":\{"metas":\[\{"phx_ref":"[0-9a-z]+"\},\{"second":true,"phx_ref":"[0-9a-z]+"\}\]\},"k3":.*"k4":`
	if !regexpMatch(order, string(raw.Presences)) || !json.Valid(resp) || !regexpMatch(`"next":null,"count":5\}$`, string(resp)) {
		t.Fatalf("first page of 100: %s", resp)
	}
	if st := ts.srv.Stats(); st.PresenceLists < 7 {
		t.Fatalf("Stats.PresenceLists %d", st.PresenceLists)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPresenceListBadInput: a bad limit, a cursor that is not one of the
// topic's and a payload that is not an object get an error reply with
// their reason; a socket not joined to the topic gets the usual
// unmatched-topic reply.
func TestPresenceListBadInput(t *testing.T) {
	ts := pagedServer(t, 1024)
	trackKeys(t, ts.srv, "room:a", 0, 3)
	trackKeys(t, ts.srv, "room:b", 0, 3)
	c := ts.dial("alice")
	ja := c.join("room:a", `{"presence":"count","no_track":true}`)
	jb := c.join("room:b", `{"presence":"count","no_track":true}`)
	_, resp := c.page(jb, "room:b", `{"limit":1}`)
	var r listReply
	if err := json.Unmarshal(resp, &r); err != nil || r.Next == nil {
		t.Fatalf("first page of room:b: %s", resp)
	}
	foreign, _ := json.Marshal(*r.Next)
	for payload, reason := range map[string]string{
		`{"limit":0}`:    "invalid_limit",
		`{"limit":1001}`: "invalid_limit",
		`{"limit":-5}`:   "invalid_limit",
		`{"limit":1.5}`:  "invalid_limit",
		`{"limit":"10"}`: "invalid_limit",
		`{"limit":1e40}`: "invalid_limit",
		`{"after":"zz"}`: "invalid_cursor",
		`{"after":12}`:   "invalid_cursor",
		`{"after":"` + fmt.Sprintf("%064d", 0) + `"}`: "invalid_cursor",
		`{"after":` + string(foreign) + `}`:           "invalid_cursor",
		`[]`:                                          "malformed frame",
		`"x"`:                                         "malformed frame",
	} {
		status, resp := c.page(ja, "room:a", payload)
		if status != "error" || string(resp) != `{"reason":"`+reason+`"}` {
			t.Errorf("presence_list %s: %s %s, want reason %s", payload, status, resp, reason)
		}
	}
	status, resp := c.page("", "room:elsewhere", `{}`)
	if status != "error" || string(resp) != `{"reason":"unmatched topic"}` {
		t.Fatalf("presence_list of a topic not joined: %s %s", status, resp)
	}
	// Valid requests still work after the refusals: limit 1000, null.
	if status, resp := c.page(ja, "room:a", `{"limit":1000,"after":null}`); status != "ok" || !regexpMatch(`"next":null,"count":3\}$`, string(resp)) {
		t.Fatalf("limit 1000: %s %s", status, resp)
	}
	if n := refusalsOf(ts.srv.Stats(), RefusedEvent, "invalid_limit"); n != 6 {
		t.Fatalf("invalid_limit refusals %d, want 6", n)
	}
}

// TestPresenceListUnderChurn walks a topic of 20,000 entries with pages
// of 100 while 50 keys a second join and 50 leave: every key present the
// whole time is seen exactly once, and no key twice. Under the race
// detector, where a page costs some thirty times more, the topic holds
// 5,000 entries and 500 of them churn.
func TestPresenceListUnderChurn(t *testing.T) {
	const rate = 50
	total, churnable := 20000, 2000
	if raceEnabled {
		total, churnable = 5000, 500
	}
	ts := pagedServer(t, total+4096)
	const topic = "room:huge"
	trackKeys(t, ts.srv, topic, 0, total)
	c := ts.dial("reader")
	jr := c.join(topic, `{"presence":"count","no_track":true}`)

	// The churn: each tick, one of the first churnable keys, on pages the
	// walk has read or will soon read, leaves and comes back under the same
	// name from another socket, at the end of the key order: a walk that
	// saw it before must not see it again.
	var stop atomic.Bool
	var changes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e := ts.srv.Presence()
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := 0; i < churnable && !stop.Load(); i++ {
			<-tick.C
			e.Untrack(engineSocket(i), topic)
			if err := e.Track(engineSocket(total+i), topic, fmt.Sprint("k", i), []byte(`{}`)); err != nil {
				t.Error(err)
				return
			}
			ts.srv.presenceChanged(topic)
			changes.Add(1)
		}
	}()
	seen := map[string]int{}
	after := "null"
	start := changes.Load()
	pages := 0
	for ; ; pages++ {
		status, resp := c.page(jr, topic, `{"limit":100,"after":`+after+`}`)
		if status != "ok" {
			t.Fatalf("page %d: %s %s", pages, status, resp)
		}
		var r listReply
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Presences) > 100 || pages > 2*total/100 {
			t.Fatalf("page %d holds %d keys", pages, len(r.Presences))
		}
		for k := range r.Presences {
			seen[k]++
		}
		if r.Next == nil {
			break
		}
		b, _ := json.Marshal(*r.Next)
		after = string(b)
		if pages == total/200 {
			// Half way: let some churn happen within the walk for sure.
			for n := changes.Load(); changes.Load() < n+3; {
				time.Sleep(time.Millisecond)
			}
		}
	}
	during := changes.Load() - start
	stop.Store(true)
	wg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("key %s seen %d times", k, n)
		}
	}
	for i := churnable; i < total; i++ {
		if seen[fmt.Sprint("k", i)] != 1 {
			t.Fatalf("key k%d, present throughout, seen %d times", i, seen[fmt.Sprint("k", i)])
		}
	}
	if during < 3 {
		t.Fatalf("only %d changes during the walk", during)
	}
	t.Logf("%d pages, %d keys seen, %d changes during the walk", pages+1, len(seen), during)
}

// TestPresenceListAllocations: answering a presence_list costs one
// allocation, the frame that goes in the socket's queue.
func TestPresenceListAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ts := pagedServer(t, 4096)
	trackKeys(t, ts.srv, "room:a", 0, 1000)
	f := &phx.Frame{JoinRef: phx.MakeRef("1"), Ref: phx.MakeRef("2"), Topic: "room:a", Event: eventPresenceList, Payload: []byte(`{"limit":100}`)}
	first, reason := ts.srv.pageReply(f, "room:a")
	if reason != "" {
		t.Fatal(reason)
	}
	var r struct {
		Response listReply `json:"response"`
	}
	pf, _ := phx.ParseFrame(first)
	if err := json.Unmarshal(pf.Payload, &r); err != nil || r.Response.Next == nil {
		t.Fatalf("first page %s: %v", first, err)
	}
	f.Payload = []byte(`{"limit":100,"after":"` + *r.Response.Next + `"}`)
	n := testing.AllocsPerRun(200, func() {
		if _, reason := ts.srv.pageReply(f, "room:a"); reason != "" {
			t.Fatal(reason)
		}
	})
	if n > 1 {
		t.Fatalf("%v allocations a page, want 1 (the frame)", n)
	}
}

// BenchmarkPresenceListPage is the server's time to answer one
// presence_list of 100 keys from a topic of 20,000, walking it page after
// page: read, encode, frame. It reports the 99th percentile of single
// answers as p99-ns.
func BenchmarkPresenceListPage(b *testing.B) {
	ts := pagedServer(b, 24000)
	trackKeys(b, ts.srv, "room:a", 0, 20000)
	f := &phx.Frame{JoinRef: phx.MakeRef("1"), Ref: phx.MakeRef("2"), Topic: "room:a", Event: eventPresenceList}
	var cursor engine.PageCursor
	payload := make([]byte, 0, 128)
	took := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		payload = append(payload[:0], `{"limit":100,"after":"`...)
		payload, _ = cursor.AppendText(payload)
		payload = append(payload, `"}`...)
		f.Payload = payload
		t0 := time.Now()
		frame, reason := ts.srv.pageReply(f, "room:a")
		took = append(took, time.Since(t0))
		if reason != "" {
			b.Fatal(reason)
		}
		// 20,000 keys make 200 full pages: each holds 100 keys.
		if n := bytes.Count(frame, []byte(`{"metas":`)); n != 100 {
			b.Fatalf("a page holds %d keys, want 100", n)
		}
		cursor = nextCursor(b, frame)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}

// nextCursor reads next from a presence_list reply frame.
func nextCursor(tb testing.TB, frame []byte) engine.PageCursor {
	i := bytesLastIndex(frame, `"next":`)
	var c engine.PageCursor
	if i < 0 {
		tb.Fatalf("no next in %s", frame)
	}
	rest := frame[i+len(`"next":`):]
	if rest[0] == '"' {
		end := 1
		for rest[end] != '"' {
			end++
		}
		if err := c.UnmarshalText(rest[1:end]); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func bytesLastIndex(b []byte, s string) int { return bytes.LastIndex(b, []byte(s)) }

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// The server answers presence_list itself: a Handler of that name would
// never run, and is refused.
func TestPresenceListHandlerRefused(t *testing.T) {
	e, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := func(*Socket, string, json.RawMessage) (any, error) { return nil, nil }
	_, err = NewServer(Config{Presence: e, Channels: []Channel{{
		Topic:    "room:*",
		Join:     func(*Socket, string, json.RawMessage) (any, error) { return nil, nil },
		Handlers: map[string]Handler{"presence_list": h},
	}}})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "presence_list") {
		t.Fatalf("NewServer: %v, want ErrInvalidConfig naming presence_list", err)
	}
}

// TestPresenceListPageFitsTheQueue: a page whose reply would take more
// than a quarter of the socket's queue holds fewer keys than asked, and
// the walk still lists every key once; the socket is not dropped.
func TestPresenceListPageFitsTheQueue(t *testing.T) {
	const queue, keys = 64 << 10, 1000
	ts := newTestServer(t, func(c *Config) {
		e, err := engine.New(engine.Config{Capacity: 4096})
		if err != nil {
			t.Fatal(err)
		}
		c.Presence = e
		c.MaxEventsPerSecond = -1
		c.MaxQueueBytes = queue
	})
	meta := []byte(`{"bio":"` + strings.Repeat("x", 200) + `"}`)
	for i := range keys {
		if err := ts.srv.Presence().Track(engineSocket(i), "room:big", fmt.Sprint("k", i), meta); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.dial("reader")
	jr := c.join("room:big", `{"presence":"count","no_track":true}`)
	seen := map[string]int{}
	after := "null"
	for pages := 0; ; pages++ {
		status, resp := c.page(jr, "room:big", `{"limit":1000,"after":`+after+`}`)
		if status != "ok" {
			t.Fatalf("page %d: %s %s", pages, status, resp)
		}
		if len(resp) > queue/4 {
			t.Fatalf("page %d: %d bytes, more than a quarter of the %d-byte queue", pages, len(resp), queue)
		}
		var r listReply
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Presences) == 0 || pages > keys {
			t.Fatalf("page %d holds %d keys", pages, len(r.Presences))
		}
		for k := range r.Presences {
			seen[k]++
		}
		if r.Next == nil {
			break
		}
		b, _ := json.Marshal(*r.Next)
		after = string(b)
	}
	for i := range keys {
		if n := seen[fmt.Sprint("k", i)]; n != 1 {
			t.Fatalf("k%d seen %d times", i, n)
		}
	}
	if d := ts.srv.Stats().Drops; d != 0 {
		t.Fatalf("%d drops", d)
	}
}
