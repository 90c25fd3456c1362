package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/presencekit/presence/bench/runinfo"
)

// row is one line of the table: a label and how to show a result.
type row struct {
	label     string
	workloads string // the workloads it applies to, by first letter: j, c, f, i
	show      func(r *Result) string
}

var rows = []row{
	{"roster complete after", "jcfi", func(r *Result) string {
		if !r.Complete {
			return fmt.Sprintf("never (%d of %d rosters)", r.CompleteClients, r.Rosters)
		}
		return fmt.Sprintf("%.2f s", r.CompleteMs/1000)
	}},
	{"frames received", "jcfi", func(r *Result) string { return count(r.Frames) }},
	{"bytes received", "jcfi", func(r *Result) string { return size(r.Bytes) }},
	{"presence frames", "jcfi", func(r *Result) string { return count(r.PresenceFrames) }},
	{"presence frames/s while churning", "c", func(r *Result) string { return fmt.Sprintf("%.0f", r.PresencePerSec) }},
	{"actions (leave or join) / unseen", "c", func(r *Result) string { return fmt.Sprintf("%d / %d", r.Actions, r.Unseen) }},
	{"cycles skipped (no churner free)", "c", func(r *Result) string { return fmt.Sprint(r.Skipped) }},
	{"seen by all: p50 / p99 / max", "c", latency},
	{"messages sent / delivered", "f", func(r *Result) string {
		return fmt.Sprintf("%d / %s of %s", r.Sent, count(r.Delivered), count(r.Expected))
	}},
	{"broadcasts received (publisher's own too)", "f", func(r *Result) string { return count(r.Messages) }},
	{"ticks skipped (64 publishes unanswered)", "f", func(r *Result) string { return fmt.Sprint(r.Skipped) }},
	{"delivered/s", "f", func(r *Result) string { return fmt.Sprintf("%.0f", r.DeliveredPerSec) }},
	{"end to end: p50 / p99 / max", "f", latency},
	{"disconnected by the server", "jcfi", func(r *Result) string { return fmt.Sprint(r.Disconnects) }},
	{"connect or join errors", "jcfi", func(r *Result) string { return fmt.Sprint(r.ConnectErrors) }},
	{"requests retried (dials, presence calls)", "jcfi", func(r *Result) string { return fmt.Sprint(r.Retries) }},
	{"server CPU", "jcfi", func(r *Result) string {
		if r.ServerPeakRSS == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f s", r.ServerCPUSec)
	}},
	{"client CPU (all clients, same machine)", "jcfi", func(r *Result) string { return fmt.Sprintf("%.2f s", r.ClientCPUSec) }},
	{"server peak RSS", "jcfi", func(r *Result) string {
		if r.ServerPeakRSS == 0 {
			return "-"
		}
		s := size(r.ServerPeakRSS)
		if !r.PeakReset {
			s += " (since start)"
		}
		return s
	}},
	{"server RSS per connection", "i", func(r *Result) string {
		if r.ServerRSS == 0 {
			return "-"
		}
		return size(r.RSSPerConn)
	}},
}

func latency(r *Result) string {
	return fmt.Sprintf("%.1f / %.1f / %.1f ms", r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
}

func count(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func size(n int64) string {
	switch {
	case n >= 1e6 || n <= -1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e4 || n <= -1e4:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Title describes a result's workload in one line.
func Title(r *Result) string {
	switch r.Workload {
	case Join:
		return fmt.Sprintf("join storm: %d clients join one room at once", r.Clients)
	case Churn:
		return fmt.Sprintf("churn: room of %d, %d churners, %.0f leave-and-rejoin cycles/s, seen by the %d others",
			r.Clients, r.Churners, r.Rate, r.Clients-r.Churners)
	case Fanout:
		return fmt.Sprintf("fan-out: 1 publisher, %d subscribers, %.0f messages/s", r.Clients, r.Rate)
	case Idle:
		return fmt.Sprintf("idle: %d connections over %d rooms, with presence", r.Clients, r.Rooms)
	}
	return r.Workload
}

// WriteTable writes results as tables, one per workload in the order
// first seen, with a column per server.
func WriteTable(w io.Writer, results ...*Result) error {
	var order []string
	for _, r := range results {
		if key := Title(r); !slices.Contains(order, key) {
			order = append(order, key)
		}
	}
	for i, title := range order {
		var cols []*Result
		for _, r := range results {
			if Title(r) == title {
				cols = append(cols, r)
			}
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "\t")
		for _, r := range cols {
			fmt.Fprintf(tw, "%s\t", r.Server)
		}
		fmt.Fprintln(tw)
		for _, rw := range rows {
			if !slices.Contains([]byte(rw.workloads), cols[0].Workload[0]) {
				continue
			}
			fmt.Fprintf(tw, "%s\t", rw.label)
			for _, r := range cols {
				fmt.Fprintf(tw, "%s\t", rw.show(r))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, r := range cols {
			if r.Error != "" {
				fmt.Fprintf(w, "%s: error: %s\n", r.Server, r.Error)
			}
		}
	}
	return nil
}

// WriteJSON writes results as a JSON array.
func WriteJSON(w io.Writer, results ...*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// ReadJSON reads what WriteJSON wrote, or what presbench -mode server
// -json wrote: the same array in a runinfo envelope.
func ReadJSON(r io.Reader) ([]*Result, error) {
	var raw json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, err
	}
	var out []*Result
	if err := json.Unmarshal(raw, &out); err == nil {
		return out, nil
	}
	env, err := runinfo.ReadJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	err = json.Unmarshal(env.Report, &out)
	return out, err
}
