package chatroom

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

func TestJoinTracksTheName(t *testing.T) {
	e, err := engine.New(engine.Config{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "?vsn=2.0.0"

	// No name: refused before the upgrade.
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial without a name: %v, %v", resp, err)
	}

	conn, _, err := websocket.Dial(ctx, url+"&name=ada", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	join := phx.AppendFrame(nil, phx.MakeRef("1"), phx.MakeRef("1"), "chat:lobby", "phx_join", []byte("{}"))
	if err := conn.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	for e.Count("chat:lobby") != 1 {
		if ctx.Err() != nil {
			t.Fatal("the join tracked nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if list := string(e.AppendList(nil, "chat:lobby")); !strings.Contains(list, `"key":"ada"`) {
		t.Fatalf("list %s", list)
	}
}
