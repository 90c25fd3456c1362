package channel

import (
	"errors"
	"fmt"
	"net"
)

// ErrServerClosed is what Server.Broadcast returns once Shutdown has been
// called, as http.ErrServerClosed is for net/http.
var ErrServerClosed = errors.New("channel: server closed")

// ErrClosed is what a Socket's methods return once it closed, however it
// closed (Close, the client, a timeout, a slow consumer, Shutdown). It
// wraps net.ErrClosed, so errors.Is(err, net.ErrClosed) holds too.
var ErrClosed = fmt.Errorf("channel: socket closed: %w", net.ErrClosed)

// closed reports whether Shutdown has been called.
func (s *Server) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// closed reports whether the socket has closed.
func (s *Socket) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
