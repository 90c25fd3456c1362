// Command presence serves bench/chatroom, presence-chat's room without the
// user_joined and user_left broadcasts, for bench/server.sh: our side of
// the side-by-side runs.
//
//	presence -addr 127.0.0.1:4000 -capacity 20000
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/presencekit/presence/bench/chatroom"
	"github.com/presencekit/presence/engine"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "address to listen on (the WebSocket endpoint is /socket/websocket)")
	capacity := flag.Int("capacity", 20000, "presence entries the engine holds")
	announce := flag.Bool("announce", false, "broadcast user_joined and user_left, as presence-chat does")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until the server stops")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "presence:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*addr, *capacity, *announce); err != nil {
		fmt.Fprintln(os.Stderr, "presence:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(addr string, capacity int, announce bool) error {
	e, err := engine.New(engine.Config{Capacity: capacity})
	if err != nil {
		return err
	}
	srv, err := chatroom.New(e, chatroom.Options{Announce: announce})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("presence listening on http://%s\n", ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return hs.Shutdown(shutdown)
}
