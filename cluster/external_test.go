package cluster

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestExternalNATSServer runs two nodes through a nats-server process
// given by URL: Debian's nats-server (2.9.10) when it is installed.
func TestExternalNATSServer(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("nats-server is not installed (Debian: apt-get install nats-server)")
	}
	leakCheck(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	waitUntil(t, "nats-server accepts connections", 10*time.Second, func() bool {
		nc, err := nats.Connect(url)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})
	a := startNodeURL(t, url, "a", nil)
	b := startNodeURL(t, url, "b", nil)
	a.track(t, 1, "room", "alice", `{}`)
	b.track(t, 1, "room", "bob", `{"s":1}`)
	both := []*testNode{a, b}
	waitUntil(t, "a and b see each other", 5*time.Second, func() bool { return converged(both, "room") && a.e.Count("room") == 2 })
	b.kill()
	waitUntil(t, "a drops b", 10*testD, func() bool { return a.e.Count("room") == 1 })
}
