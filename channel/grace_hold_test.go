package channel

import (
	"slices"
	"testing"
	"time"
)

// TestHoldKeepsItsOwnTopics: the topics a lost socket's cleanup hands to
// hold are still the cleanup's to read (it unsubscribes each one) while
// a connection that resumed the session claims them: the held session
// must keep a copy of its own, or a claim shifts and clears the cleanup's
// slice under it, and the lost socket stays subscribed to a topic.
func TestHoldKeepsItsOwnTopics(t *testing.T) {
	ts := newGraceServer(t, time.Hour, nil)
	sock := newSocket(ts.srv, nil, nil, map[string]any{"user": "u"})
	sock.grace.key, sock.grace.session = makeSessionKey("u", aliceToken), true
	topics := []string{"room:a", "room:b"}
	if !ts.srv.hold(sock, topics) {
		t.Fatal("the lost socket was not held")
	}
	ts.srv.grace.mu.Lock()
	h := ts.srv.grace.held[sock.grace.key]
	ts.srv.grace.mu.Unlock()
	resumed := socketGrace{resumed: h}
	resumed.claim("room:a")
	if !slices.Equal(topics, []string{"room:a", "room:b"}) {
		t.Fatalf("a claim changed the cleanup's topics to %q", topics)
	}
}
