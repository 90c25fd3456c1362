package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// profile runs fn with the profiles and pprof server that o asks for.
func profile(o *options, stderr io.Writer, fn func() error) (err error) {
	if o.pprofAddr != "" {
		addr := o.pprofAddr
		if host, port, e := net.SplitHostPort(addr); e == nil && host == "" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		ln, e := net.Listen("tcp", addr)
		if e != nil {
			return fmt.Errorf("pprof: %w", e)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stderr, "presbench: pprof on http://%s/debug/pprof/\n", ln.Addr())
	}
	if o.mutexProf != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() { err = errors.Join(err, writeProfile("mutex", o.mutexProf)) }()
	}
	if o.blockProf != "" {
		runtime.SetBlockProfileRate(1)
		defer func() { err = errors.Join(err, writeProfile("block", o.blockProf)) }()
	}
	if o.memProf != "" {
		defer func() { err = errors.Join(err, writeProfile("allocs", o.memProf)) }()
	}
	if o.cpuProf != "" {
		stop, e := startFile(o.cpuProf, pprof.StartCPUProfile, pprof.StopCPUProfile)
		if e != nil {
			return e
		}
		defer stop()
	}
	if o.traceFile != "" {
		stop, e := startFile(o.traceFile, trace.Start, trace.Stop)
		if e != nil {
			return e
		}
		defer stop()
	}
	return fn()
}

// startFile creates path and starts a recorder writing to it; the returned
// function stops the recorder and closes the file.
func startFile(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { stop(); f.Close() }, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}
