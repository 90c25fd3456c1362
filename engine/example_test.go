package engine_test

import (
	"errors"
	"fmt"
	"io"

	"github.com/presencekit/presence/engine"
)

// Track a user on join, as the seed page's roomJoin does.
func ExampleEngine_Track() {
	presence, _ := engine.New(engine.Config{})
	const socket engine.SocketID = 1
	err := presence.Track(socket, "chat:lobby", "user_42", []byte(`{"name":"Alice","status":"online"}`))
	fmt.Println(err, presence.Count("chat:lobby"))
	// Output: <nil> 1
}

// Query the presence list into a fixed buffer, as handleGetPresence does.
func ExampleEngine_List() {
	presence, _ := engine.New(engine.Config{})
	presence.Track(1, "chat:lobby", "user_42", []byte(`{"name":"Alice","status":"online"}`))
	presence.Track(2, "chat:lobby", "user_7", []byte(`{"name":"Bob","status":"away"}`))

	var buf [4096]byte
	presences, err := presence.List("chat:lobby", buf[:])
	fmt.Println(string(presences), err)

	// A buffer that is too small gets an error, never cut-off JSON.
	_, err = presence.List("chat:lobby", buf[:16])
	fmt.Println(errors.Is(err, io.ErrShortBuffer))
	// Output:
	// [{"key":"user_42","meta":{"name":"Alice","status":"online"}},{"key":"user_7","meta":{"name":"Bob","status":"away"}}] <nil>
	// true
}

// The seed page's chat with presence: join tracks and sends the current
// list, a disconnect removes every entry of the socket, and the others
// learn who left from the incremental diff.
func Example_chat() {
	presence, _ := engine.New(engine.Config{})
	chatJoin := func(socket engine.SocketID, topic, username string) []byte {
		meta := fmt.Appendf(nil, `{"name":%q,"joined_at":"now"}`, username)
		if err := presence.Track(socket, topic, username, meta); err != nil {
			return nil
		}
		return presence.AppendList(nil, topic) // pushed as presence_state
	}

	fmt.Println(string(chatJoin(1, "chat:lobby", "alice")))
	var snap engine.Snapshot
	presence.Snapshot(&snap, "chat:lobby") // what bob's client knows
	fmt.Println(string(chatJoin(2, "chat:lobby", "bob")))

	presence.UntrackAll(1) // alice's WebSocket closed
	diff, _, _ := presence.AppendChanges(nil, "chat:lobby", snap.Cursor)
	fmt.Println(string(diff))
	// Output:
	// [{"key":"alice","meta":{"name":"alice","joined_at":"now"}}]
	// [{"key":"alice","meta":{"name":"alice","joined_at":"now"}},{"key":"bob","meta":{"name":"bob","joined_at":"now"}}]
	// {"joins":[{"key":"bob","meta":{"name":"bob","joined_at":"now"}}],"leaves":[{"key":"alice","meta":{"name":"alice","joined_at":"now"}}]}
}

// Broadcast only what changed since the last broadcast.
func ExampleEngine_ChangesSince() {
	presence, _ := engine.New(engine.Config{})
	var snap engine.Snapshot
	presence.Snapshot(&snap, "doc:1")

	presence.Track(1, "doc:1", "alice", []byte(`{"cursor":1}`))
	presence.Track(2, "doc:1", "bob", nil)
	presence.Track(1, "doc:1", "alice", []byte(`{"cursor":9}`)) // an update

	var c engine.Changes
	presence.ChangesSince(&c, "doc:1", snap.Cursor)
	for _, j := range c.Joins {
		fmt.Printf("join %s %s\n", j.Key, j.Meta)
	}
	for _, l := range c.Leaves {
		fmt.Printf("leave %s %s\n", l.Key, l.Meta)
	}
	// Output:
	// join bob {}
	// join alice {"cursor":9}
}

// Page through a large room's members, a few keys at a time, as a client
// scrolls a member list; CountKeys gives the total without listing.
func ExampleEngine_ListPage() {
	presence, _ := engine.New(engine.Config{})
	presence.Track(1, "room:big", "alice", []byte(`{"tab":1}`))
	presence.Track(2, "room:big", "bob", nil)
	presence.Track(3, "room:big", "alice", []byte(`{"tab":2}`)) // alice's second tab
	presence.Track(4, "room:big", "carol", nil)

	keys, entries := presence.CountKeys("room:big")
	fmt.Println(keys, "keys,", entries, "entries")

	var page engine.Page
	var after engine.PageCursor // the zero cursor: the first page
	for {
		if err := presence.ListPage(&page, "room:big", after, 2); err != nil {
			fmt.Println(err)
			return
		}
		for _, en := range page.Entries {
			fmt.Printf("%s %s\n", en.Key, en.Meta)
		}
		if page.Next.IsZero() {
			break
		}
		fmt.Println("-- next page")
		after = page.Next // a client carries page.Next.String() and gives it back
	}
	// Output:
	// 3 keys, 4 entries
	// alice {"tab":1}
	// alice {"tab":2}
	// bob {}
	// -- next page
	// carol {}
}
