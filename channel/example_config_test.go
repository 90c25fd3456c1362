package channel_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/presencekit/presence/channel"
	"github.com/presencekit/presence/engine"
)

// The engine decides how many topics a socket may join: MaxTopicsPerSocket
// may be lower than its MaxPerSocket, and is refused above it.
func ExampleNewServer_limits() {
	presence, err := engine.New(engine.Config{Capacity: 65_536, MaxPerSocket: 4})
	if err != nil {
		panic(err)
	}
	join := func(*channel.Socket, string, json.RawMessage) (any, error) { return nil, nil }
	_, err = channel.NewServer(channel.Config{
		Presence:           presence,
		Channels:           []channel.Channel{{Topic: "room:*", Join: join}},
		MaxTopicsPerSocket: 10,
	})
	fmt.Println(errors.Is(err, channel.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// true
	// channel: invalid config: MaxTopicsPerSocket 10 is above the 4 entries the engine lets one socket hold (engine.Config.MaxPerSocket 4, LocalCapacity 65536): raise MaxPerSocket, or leave MaxTopicsPerSocket 0 to follow it
}
