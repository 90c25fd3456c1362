// Package runinfo says where a benchmark ran, and wraps a report in the
// JSON envelope that every presbench mode writes with -json, so that a CI
// system can keep figures over time and know what they were measured on.
//
// The envelope is one JSON object:
//
//	{"schema": 1, "mode": "engine", "cpu": "...", "cores": 16,
//	 "gomaxprocs": 16, "go": "go1.26.0", "time": "2026-12-06T20:00:00Z",
//	 "report": {...}}
//
// "report" is the mode's own report; its fields only grow within a schema
// number.
//
// Its functions are safe for concurrent use.
package runinfo

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Schema is the envelope's version: it changes when a field is removed or
// changes meaning.
const Schema = 1

// Envelope is the -json output of every mode.
type Envelope struct {
	Schema     int             `json:"schema"`
	Mode       string          `json:"mode"`
	CPU        string          `json:"cpu"`
	Cores      int             `json:"cores"`
	GOMAXPROCS int             `json:"gomaxprocs"`
	Go         string          `json:"go"`
	Time       string          `json:"time"`
	Report     json.RawMessage `json:"report"`
}

// CPU names the processor: the first "model name" of /proc/cpuinfo, or
// the architecture where there is none.
func CPU() string {
	f, err := os.Open("/proc/cpuinfo")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				if v = strings.TrimSpace(v); v != "" {
					return v
				}
			}
		}
	}
	return runtime.GOOS + "/" + runtime.GOARCH
}

// Line describes the machine in one line, for a table's header.
func Line() string {
	return "cpu: " + CPU() + ", " + strconv.Itoa(runtime.NumCPU()) + " cores, GOMAXPROCS " + strconv.Itoa(runtime.GOMAXPROCS(0)) + ", " + runtime.Version()
}

// WriteJSON writes report in the envelope of mode.
func WriteJSON(w io.Writer, mode string, report any) error {
	raw, err := json.Marshal(report)
	if err != nil {
		return err
	}
	env := Envelope{
		Schema: Schema, Mode: mode, CPU: CPU(), Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go: runtime.Version(), Time: time.Now().UTC().Format(time.RFC3339), Report: raw,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(env)
}

// ErrNotEnvelope is ReadJSON's error for JSON that is not an envelope.
var ErrNotEnvelope = errors.New("runinfo: not a presbench JSON report")

// ReadJSON reads an envelope.
func ReadJSON(r io.Reader) (*Envelope, error) {
	var env Envelope
	if err := json.NewDecoder(r).Decode(&env); err != nil {
		return nil, err
	}
	if env.Schema == 0 || env.Mode == "" || len(env.Report) == 0 {
		return nil, ErrNotEnvelope
	}
	return &env, nil
}
