package phx

import (
	"fmt"
	"testing"

	"github.com/presencekit/presence/engine"
)

var benchFrames = []struct{ name, frame, event string }{
	{"heartbeat", `[null,"12","phoenix","heartbeat",{}]`, "heartbeat"},
	{"phx_join", `["3","3","room:lobby","phx_join",{"name":"Alice","status":"online"}]`, "phx_join"},
	{"phx_leave", `["3","9","room:lobby","phx_leave",{}]`, "phx_leave"},
	{"custom", `["3","10","room:lobby","new_msg",{"body":"hello there","at":1732900000}]`, "new_msg"},
	// What a client reads on joining a room of 2,000.
	{"presence_state_2000", string(AppendFrame(nil, MakeRef("3"), Ref{}, "room:lobby", "presence_state", AppendPresenceState(nil, benchEntries(2000)))), "presence_state"},
}

func benchEntries(n int) []engine.Entry {
	entries := make([]engine.Entry, n)
	for i := range entries {
		entries[i] = engine.Entry{Socket: engine.SocketID(i + 1), Ref: uint64(1000 + i),
			Key: fmt.Appendf(nil, "user%d", i), Meta: fmt.Appendf(nil, `{"name":"user%d","status":"online"}`, i)}
	}
	return entries
}

// BenchmarkParseFrame measures a read loop's Parser on the frames a client
// sends most; it fails unless every frame parses to its event.
func BenchmarkParseFrame(b *testing.B) {
	for _, bf := range benchFrames {
		b.Run(bf.name, func(b *testing.B) {
			in := []byte(bf.frame)
			var p Parser
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			n := 0
			for b.Loop() {
				f, err := p.Parse(in)
				if err != nil || f.Event != bf.event || len(f.Payload) == 0 {
					b.Fatalf("%+v %v", f, err)
				}
				n++
			}
			if n == 0 {
				b.Fatal("nothing parsed")
			}
		})
	}
}

func TestParserDoesNotAllocate(t *testing.T) {
	for _, bf := range benchFrames {
		in := []byte(bf.frame)
		var p Parser
		p.Parse(in) // warm up
		if n := testing.AllocsPerRun(100, func() {
			if f, err := p.Parse(in); err != nil || f.Event != bf.event {
				t.Fatalf("%+v %v", f, err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per parse, want 0", bf.name, n)
		}
	}
}

// BenchmarkParseFrameEncodingJSON measures the parser phx had before, on
// encoding/json (referenceParseFrame), on the same frames: the comparison
// for BenchmarkParseFrame in one run.
func BenchmarkParseFrameEncodingJSON(b *testing.B) {
	for _, bf := range benchFrames {
		b.Run(bf.name, func(b *testing.B) {
			in := []byte(bf.frame)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			n := 0
			for b.Loop() {
				f, err := referenceParseFrame(in)
				if err != nil || f.Event != bf.event || len(f.Payload) == 0 {
					b.Fatalf("%+v %v", f, err)
				}
				n++
			}
			if n == 0 {
				b.Fatal("nothing parsed")
			}
		})
	}
}
