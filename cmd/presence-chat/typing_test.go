package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTypingIsCarriedInTheMeta sets away, then typing, then not typing, and
// reads each meta from the presence_diff the connection itself receives; a
// bad set_typing gets an error reply with its reason and changes nothing.
func TestTypingIsCarriedInTheMeta(t *testing.T) {
	hs, err := demo()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?name=tina&vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	const topic = "chat:typing"
	send := func(ref, event, payload string) {
		t.Helper()
		frame := `["1","` + ref + `","` + topic + `","` + event + `",` + payload + `]`
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	// next reads frames until one is the reply to ref or, for ref "", a
	// presence_diff; it returns that frame's payload.
	next := func(ref string) map[string]any {
		t.Helper()
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var f [5]any
			if err := json.Unmarshal(data, &f); err != nil {
				t.Fatalf("frame %s: %v", data, err)
			}
			if (ref == "" && f[3] == "presence_diff") || (ref != "" && f[1] == ref && f[3] == "phx_reply") {
				return f[4].(map[string]any)
			}
		}
	}
	meta := func(diff map[string]any) map[string]any {
		t.Helper()
		joins, _ := diff["joins"].(map[string]any)
		tina, ok := joins["tina"].(map[string]any)
		if !ok {
			t.Fatalf("no join of tina in %v", diff)
		}
		return tina["metas"].([]any)[0].(map[string]any)
	}

	send("1", "phx_join", "{}")
	if r := next("1"); r["status"] != "ok" {
		t.Fatalf("join: %v", r)
	}
	send("2", "set_status", `{"status":"away"}`)
	if m := meta(next("")); m["status"] != "away" || m["typing"] != nil {
		t.Fatalf("after set_status away: %v", m)
	}
	send("3", "set_typing", `{"typing":"yes"}`)
	if r := next("3"); r["status"] != "error" || r["response"].(map[string]any)["reason"] != "typing must be true or false" {
		t.Fatalf("a bad set_typing: %v", r)
	}
	send("4", "set_typing", `{"typing":true}`)
	if m := meta(next("")); m["status"] != "away" || m["typing"] != true || m["name"] != "tina" {
		t.Fatalf("after set_typing true: %v", m)
	}
	send("5", "set_typing", `{"typing":false}`)
	if m := meta(next("")); m["status"] != "away" || m["typing"] != nil {
		t.Fatalf("after set_typing false: %v", m)
	}
}
