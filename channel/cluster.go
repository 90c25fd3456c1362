package channel

import "errors"

// Cluster spreads a Server's presence and broadcasts over the servers of a
// cluster. The cluster package implements it over NATS; channel itself
// never talks to the network. Set it as Config.Cluster.
//
// A Server calls PresenceChanged after its own sockets' presence changed
// in a topic, Subscribe before it answers a join, Unsubscribe once a
// socket left a topic, and Publish for every Broadcast and BroadcastFrom.
// It may call them from any goroutine, and they must not block for long.
type Cluster interface {
	// Attach is called once by NewServer with the functions through which
	// the cluster reaches the Server; an error fails NewServer.
	Attach(ClusterHooks) error
	// PresenceChanged tells the cluster that presence in topic changed on
	// this server.
	PresenceChanged(topic string)
	// Subscribe tells the cluster that a socket of this server joins
	// topic. When it returns, broadcasts that other servers publish to
	// topic from then on reach this server.
	Subscribe(topic string)
	// Unsubscribe undoes one Subscribe.
	Unsubscribe(topic string)
	// Publish sends a broadcast to the other servers' sockets in topic.
	// payload may be a view of a socket's read buffer: it is valid only
	// until Publish returns.
	Publish(topic, event string, payload []byte)
}

// ClusterHooks are what a Cluster calls on its Server.
type ClusterHooks struct {
	// PresenceChanged reports that presence in topic changed through the
	// cluster: the Server sends the coalesced presence_diff.
	PresenceChanged func(topic string)
	// Broadcast delivers a broadcast from another server to this server's
	// sockets in topic.
	Broadcast func(topic, event string, payload []byte)
}

// ErrClusterAttached is what a Cluster's Attach returns when it already
// serves another Server.
var ErrClusterAttached = errors.New("channel: the Cluster is already attached to a Server")

// attachCluster connects cfg.Cluster, if any, to s.
func (s *Server) attachCluster() error {
	if s.cfg.Cluster == nil {
		return nil
	}
	return s.cfg.Cluster.Attach(ClusterHooks{
		PresenceChanged: s.schedulePresenceDiff,
		Broadcast: func(topic, event string, payload []byte) {
			s.broadcast(topic, event, payload, nil)
		},
	})
}

// The hooks the rest of the package calls; each is a no-op without a
// Cluster.

func (s *Server) clusterPresenceChanged(topic string) {
	if s.cfg.Cluster != nil {
		s.cfg.Cluster.PresenceChanged(topic)
	}
}

func (s *Server) clusterSubscribe(topic string) {
	if s.cfg.Cluster != nil {
		s.cfg.Cluster.Subscribe(topic)
	}
}

func (s *Server) clusterUnsubscribe(topic string) {
	if s.cfg.Cluster != nil {
		s.cfg.Cluster.Unsubscribe(topic)
	}
}

func (s *Server) clusterPublish(topic, event string, payload []byte) {
	if s.cfg.Cluster != nil {
		s.cfg.Cluster.Publish(topic, event, payload)
	}
}
