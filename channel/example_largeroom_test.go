package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
)

// A client in a large room joins in count mode: instead of the roster it
// gets presence_count, and it reads the roster a page at a time with
// presence_list when it wants to show it.
func Example_countMode() {
	srv := newChatServer()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	base := "ws" + strings.TrimPrefix(hs.URL, "http")

	alice := dial(base, "alice")
	defer alice.CloseNow()
	send(alice, `["1","1","room:big","phx_join",{}]`)
	next(alice, "presence_state")

	carol := dial(base, "carol")
	defer carol.CloseNow()
	send(carol, `["1","1","room:big","phx_join",{"presence":"count"}]`)
	fmt.Println(string(next(carol, "presence_count").Payload))

	send(carol, `["1","2","room:big","presence_list",{"limit":100}]`)
	var page struct {
		Response struct {
			Presences map[string]any `json:"presences"`
			Next      *string        `json:"next"`
			Count     int            `json:"count"`
		} `json:"response"`
	}
	json.Unmarshal(next(carol, "phx_reply").Payload, &page)
	var keys []string
	for k := range page.Response.Presences {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println(keys, page.Response.Count, page.Response.Next == nil)
	// Output:
	// {"count":2,"entries":2}
	// [alice carol] 2 true
}
