package load

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func keys(r *Roster) []string {
	var out []string
	for k, ps := range r.members {
		for _, p := range ps {
			out = append(out, k+"/"+p.id)
		}
	}
	slices.Sort(out)
	return out
}

func TestRoster(t *testing.T) {
	var r Roster
	var log []string
	r.OnAdd = func(k, id string) { log = append(log, "+"+k+"/"+id) }
	r.OnRemove = func(k, id string) { log = append(log, "-"+k+"/"+id) }
	r.OnLen = func(n int) { log = append(log, fmt.Sprint(n)) }
	r.Add("a", "1")
	r.Add("a", "1") // again: nothing
	r.Add("a", "2") // a second presence of a: no new key
	r.Add("b", "3")
	r.Remove("a", "1")
	r.Remove("a", "9") // not there: nothing
	r.Replace(func(add func(k, id string)) {
		add("b", "3")
		add("c", "4")
	})
	want := []string{"+a/1", "1", "+a/2", "+b/3", "2", "-a/1", "+c/4", "3", "-a/2", "2"}
	if !slices.Equal(log, want) {
		t.Fatalf("hooks saw %v\nwant %v", log, want)
	}
	if got := keys(&r); !slices.Equal(got, []string{"b/3", "c/4"}) || r.Len() != 2 || !r.Has("b") || r.Has("a") {
		t.Fatalf("roster %v", got)
	}
}

// TestRosterSync: events that arrive while a snapshot is being fetched
// apply on top of it, in order.
func TestRosterSync(t *testing.T) {
	var r Roster
	r.Add("old", "0")
	r.BeginSync()
	r.Add("x", "1")    // joined before the snapshot was taken: in it too
	r.Remove("y", "2") // left after the snapshot was taken
	r.Add("z", "3")    // joined after
	if r.Len() != 1 {
		t.Fatal("changes applied while syncing")
	}
	r.EndSync(func(add func(k, id string)) {
		add("x", "1")
		add("y", "2")
	})
	if got := keys(&r); !slices.Equal(got, []string{"x/1", "z/3"}) {
		t.Fatalf("roster %v", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:4000/socket/websocket", "ws://localhost/x", "http://[::1]:8000/", "ws://127.9.9.9/"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1/", "ws://example.com/", "ftp://127.0.0.1/", "ws://0.0.0.0/", "::"} {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := CheckLoopback("ws://192.0.2.1/"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("err = %v, want ErrNotLoopback", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Workload: Churn, URL: "ws://127.0.0.1/", Clients: 10, Churners: 2, Rate: 5, Duration: time.Second, Timeout: time.Minute, Dials: 1, Room: "r"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*Config){
		"workload":  func(c *Config) { c.Workload = "storm" },
		"clients":   func(c *Config) { c.Clients = MaxClients + 1 },
		"timeout":   func(c *Config) { c.Timeout = 0 },
		"dials":     func(c *Config) { c.Dials = 0 },
		"churners":  func(c *Config) { c.Churners = 10 },
		"rate":      func(c *Config) { c.Rate = 0 },
		"room":      func(c *Config) { c.Room = "" },
		"remote":    func(c *Config) { c.URL = "ws://10.1.1.1/" },
		"pid":       func(c *Config) { c.ServerPID = -1 },
		"idle room": func(c *Config) { c.Workload, c.Rooms = Idle, 11 },
		"msg size":  func(c *Config) { c.Workload, c.MsgSize = Fanout, 8 },
	} {
		c := ok
		bad(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
}

func TestReadProc(t *testing.T) {
	st, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.HWM < st.RSS || st.CPU < 0 {
		t.Fatalf("%+v", st)
	}
	if _, err := ReadProc(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}

func TestStamp(t *testing.T) {
	now := time.Unix(0, 1764400000123456789)
	b := appendStamp(nil, now, 100)
	if len(b) != 100 {
		t.Fatalf("%d bytes", len(b))
	}
	if v, ok := stamp(b); !ok || v != now.UnixNano() {
		t.Fatalf("stamp = %d, %v", v, ok)
	}
	if _, ok := stamp([]byte("hello")); ok {
		t.Fatal("stamp read from a plain body")
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	a := &Result{Server: "presence", Workload: Join, Clients: 100, Complete: true, CompleteMs: 1500, Frames: 2000, Bytes: 3 << 20, ServerPeakRSS: 40 << 20, PeakReset: true}
	b := &Result{Server: "centrifugo", Workload: Join, Clients: 100, Rosters: 100, CompleteClients: 90, Error: "rosters incomplete"}
	c := &Result{Server: "presence", Workload: Idle, Clients: 100, Rooms: 10, Complete: true, ServerRSS: 1 << 20, RSSPerConn: 50_000, ServerPeakRSS: 1}
	var buf bytes.Buffer
	if err := WriteTable(&buf, a, b, c); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"join storm: 100 clients", "presence  centrifugo", "1.50 s", "3.1 MB", "never (90 of 100 rosters)", "idle: 100 connections over 10 rooms", "50.0 KB", "rosters incomplete"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out[strings.Index(out, "idle"):], "seen by all") {
		t.Errorf("idle table shows churn rows:\n%s", out)
	}
	buf.Reset()
	if err := WriteJSON(&buf, a, c); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil || len(back) != 2 || *back[0] != *a || *back[1] != *c {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}
