package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/presencekit/presence/bench/progress"
)

// modeEnv is what every mode gets: where to write, the progress meter
// (nil when nobody is to see progress lines) and a context that an
// interrupt ends, after which a mode reports what it measured so far.
type modeEnv struct {
	ctx            context.Context
	stdout, stderr io.Writer
	meter          *progress.Meter
	// stop ends the progress lines and the interrupt handling; a mode
	// calls it before its last report so that no line follows it. It
	// may be called more than once.
	stop func()
}

func newModeEnv(o *options, stdout, stderr io.Writer) *modeEnv {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	e := &modeEnv{ctx: ctx, stdout: stdout, stderr: stderr}
	stopLines := func() {}
	if progressWanted(o, stderr) {
		e.meter = &progress.Meter{}
		stopLines = progress.Printer{W: stderr, Prefix: "presbench", Every: o.progressEvery, After: o.progressAfter}.Start(e.meter)
	}
	e.stop = sync.OnceFunc(func() {
		stopLines()
		cancel()
	})
	return e
}

// progressWanted: never with -quiet, always with -progress, and otherwise
// when stderr is a terminal.
func progressWanted(o *options, stderr io.Writer) bool {
	switch {
	case o.quiet:
		return false
	case o.progress:
		return true
	}
	return progress.IsTerminal(stderr)
}
