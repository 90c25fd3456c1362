package channel

import (
	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
)

// countKeys returns the topic's distinct keys and entries.
func (s *Server) countKeys(topic string) (keys, entries int) {
	var snap engine.Snapshot
	s.cfg.Presence.Snapshot(&snap, topic)
	seen := map[string]bool{}
	for _, e := range snap.Entries {
		seen[string(e.Key)] = true
	}
	return len(seen), len(snap.Entries)
}

const eventPresenceList = "presence_list"

func (s *Socket) presenceList(f *phx.Frame, m membership) {}
