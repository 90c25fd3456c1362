package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence/engine"
)

// chatClient is a raw Phoenix v2 client of the demo.
type chatClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialChat(t *testing.T, hs *httptest.Server, name string) (*chatClient, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket?" + url.Values{"name": {name}, "vsn": {"2.0.0"}}.Encode()
	conn, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &chatClient{t, conn}, http.StatusSwitchingProtocols
}

// call sends an event and returns its reply's status and response.
func (c *chatClient) call(ref, topic, event, payload string) (string, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	frame := `["1","` + ref + `","` + topic + `","` + event + `",` + payload + `]`
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatal(err)
		}
		var f []json.RawMessage
		if json.Unmarshal(data, &f) != nil || len(f) != 5 || string(f[1]) != `"`+ref+`"` || string(f[3]) != `"phx_reply"` {
			continue
		}
		var r struct {
			Status   string          `json:"status"`
			Response json.RawMessage `json:"response"`
		}
		json.Unmarshal(f[4], &r)
		return r.Status, string(r.Response)
	}
}

// The demo counts its limits in characters, and a refused event's reply
// says why.
func TestDemoLimitsCountCharacters(t *testing.T) {
	presence, err := engine.New((&clusterOptions{capacity: 64}).engineConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(presence, 5*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	for _, name := range []string{strings.Repeat("é", 20), strings.Repeat("😀", 32), strings.Repeat("<", 32)} {
		c, code := dialChat(t, hs, name)
		if c == nil {
			t.Fatalf("name of %d characters refused: %d", len([]rune(name)), code)
		}
		if status, resp := c.call("1", "chat:lobby", "phx_join", `{}`); status != "ok" {
			t.Fatalf("join as a name of %d characters, %d bytes: %s %s", len([]rune(name)), len(name), status, resp)
		}
		status, resp := c.call("2", "chat:lobby", "set_status", `{"status":"`+strings.Repeat("ü", 40)+`"}`)
		if status != "ok" {
			t.Fatalf("status of 40 characters: %s %s", status, resp)
		}
	}
	if _, code := dialChat(t, hs, strings.Repeat("é", 33)); code != http.StatusForbidden {
		t.Fatalf("name of 33 characters: %d, want 403", code)
	}
	c, _ := dialChat(t, hs, "bob")
	c.call("1", "chat:lobby", "phx_join", `{}`)
	for _, tc := range []struct{ event, payload, reason string }{
		{"new_msg", `{"body":""}`, reasonBody},
		{"new_msg", `{"body":"` + strings.Repeat("é", 2001) + `"}`, reasonBody},
		{"set_status", `{"status":"` + strings.Repeat("a", 41) + `"}`, reasonStatus},
		{"set_status", `{}`, reasonStatus},
	} {
		status, resp := c.call("3", "chat:lobby", tc.event, tc.payload)
		if want, _ := json.Marshal(map[string]string{"reason": tc.reason}); status != "error" || resp != string(want) {
			t.Errorf("%s %.40s: %s %s, want error %s", tc.event, tc.payload, status, resp, want)
		}
	}
	// A message of 2000 characters goes out to the room.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body := strings.Repeat("é", 2000)
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`["1","4","chat:lobby","new_msg",{"body":"`+body+`"}]`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			t.Fatalf("no broadcast of a message of 2000 characters: %v", err)
		}
		if strings.Contains(string(data), `"new_msg",{`) && strings.Contains(string(data), body) {
			break
		}
		if strings.Contains(string(data), `"4","chat:lobby","phx_reply"`) {
			t.Fatalf("message of 2000 characters refused: %s", data)
		}
	}
}
