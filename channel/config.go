package channel

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is what NewServer returns, wrapped with the field at
// fault, for a Config it cannot serve.
var ErrInvalidConfig = errors.New("channel: invalid config")

// configError is ErrInvalidConfig with what is wrong, in one line.
type configError struct{ what string }

func (c *configError) Error() string        { return ErrInvalidConfig.Error() + ": " + c.what }
func (c *configError) Is(target error) bool { return target == ErrInvalidConfig }

func badConfig(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}

// Defaults of Config.
const (
	DefaultHeartbeatTimeout = 60 * time.Second
	DefaultPresenceWindow   = 50 * time.Millisecond
	DefaultMaxQueueBytes    = 1 << 20
	DefaultMaxFrameBytes    = 64 << 10
	DefaultWriteTimeout     = 10 * time.Second

	// DefaultMaxEventsPerSecond and DefaultMaxEventsBurst are the inbound
	// rate limit of a socket: far above what a chat or a shared cursor at
	// 60 frames a second sends, and a burst that covers a reconnecting
	// client rejoining all its topics at once.
	DefaultMaxEventsPerSecond = 100
	DefaultMaxEventsBurst     = 200

	// DefaultMaxPresenceState is Channel.MaxPresenceState's default, in
	// keys: a presence_state of 2,000 keys, each with one meta, is about
	// 114 KB with a small meta ({"name":"u1234"}, 57 bytes a key with its
	// phx_ref) and about 590 KB with metas of the engine's default
	// MaxMetaLen (256 bytes), which still fits DefaultMaxQueueBytes (1 MiB)
	// with room for the diffs that follow. That is what each full-mode
	// join costs, and every full-mode member also receives each change: a
	// storm of 2,000 full-mode joins sends each member about 300 KB in
	// all, where count mode sends a few kilobytes at any size.
	DefaultMaxPresenceState = 2000
)

// fill checks cfg and fills in its defaults. One place decides each limit:
// the topics a socket may join default to the entries the engine lets one
// socket hold (engine.Config.MaxPerSocket, or its LocalCapacity when
// smaller), and a MaxTopicsPerSocket above that is refused, since a join
// past it would fail with "socket_limit" instead of "too_many_topics".
func (cfg *Config) fill() error {
	if cfg.Presence == nil {
		return badConfig("Presence is required")
	}
	if len(cfg.Channels) == 0 {
		return badConfig("Channels is empty: no topic could be joined")
	}
	patterns := make(map[string]bool, len(cfg.Channels))
	for i, c := range cfg.Channels {
		switch {
		case c.Topic == "":
			return badConfig("Channels[%d] has no Topic", i)
		case c.Join == nil:
			return badConfig("Channel %q has no Join", c.Topic)
		case patterns[c.Topic]:
			return badConfig("Channel %q is given twice", c.Topic)
		case c.Handlers[eventPresenceList] != nil:
			return badConfig("Channel %q has a Handler for %s, which the server answers itself", c.Topic, eventPresenceList)
		}
		patterns[c.Topic] = true
	}
	ec := cfg.Presence.Config()
	perSocket := ec.MaxPerSocket
	if ec.LocalCapacity > 0 {
		perSocket = min(perSocket, ec.LocalCapacity)
	}
	switch {
	case cfg.MaxTopicsPerSocket < 0:
		return badConfig("MaxTopicsPerSocket %d is negative", cfg.MaxTopicsPerSocket)
	case cfg.MaxTopicsPerSocket == 0:
		cfg.MaxTopicsPerSocket = perSocket
	case cfg.MaxTopicsPerSocket > perSocket:
		return badConfig("MaxTopicsPerSocket %d is above the %d entries the engine lets one socket hold (engine.Config.MaxPerSocket %d, LocalCapacity %d): raise MaxPerSocket, or leave MaxTopicsPerSocket 0 to follow it",
			cfg.MaxTopicsPerSocket, perSocket, ec.MaxPerSocket, ec.LocalCapacity)
	}
	if err := cfg.fillRateLimit(); err != nil {
		return err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&cfg.PresenceWindow, DefaultPresenceWindow)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	return nil
}

// fillRateLimit fills in the inbound rate limit: 0 means the default, a
// negative MaxEventsPerSecond turns it off.
func (cfg *Config) fillRateLimit() error {
	switch {
	case cfg.MaxEventsPerSecond < 0:
		cfg.MaxEventsPerSecond, cfg.MaxEventsBurst = -1, 0
		return nil
	case cfg.MaxEventsBurst < 0:
		return badConfig("MaxEventsBurst %d is negative", cfg.MaxEventsBurst)
	case cfg.MaxEventsPerSecond == 0:
		cfg.MaxEventsPerSecond = DefaultMaxEventsPerSecond
	}
	if cfg.MaxEventsBurst == 0 {
		cfg.MaxEventsBurst = max(DefaultMaxEventsBurst, 2*int(cfg.MaxEventsPerSecond))
	}
	return nil
}
