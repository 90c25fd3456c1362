package stress

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes a human-readable report of one run.
func WriteTable(w io.Writer, r *Result) error {
	c := r.Config
	fmt.Fprintf(w, "target %s: %d workers, %s, capacity %d, %d topics (%s), %d sockets, key %dB, meta %dB\n",
		r.Target, c.Workers, runLength(c), c.Capacity, c.Topics, distName(c), c.Sockets, c.KeySize, c.MetaSize)
	fmt.Fprintf(w, "mix %s, seed %d, prefill %g\n", c.Mix, c.Seed, c.Prefill)
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "memory for capacity %d: %s reserved, %s resident empty", c.Capacity, bytesText(m.Reserved), bytesText(m.Resident))
		if m.HeapEnd >= 0 {
			fmt.Fprintf(w, "; at the end %s resident (with the run's buffers), %s of heap held", bytesText(m.ResidentEnd), bytesText(m.HeapEnd))
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\tops/s\tp50\tp90\tp99\tp99.9\tmax\tfailures\t")
	for _, o := range r.Ops {
		if o.Count == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.Op, o.Count, rate(o.PerSec),
			dur(o.P50), dur(o.P90), dur(o.P99), dur(o.P999), dur(o.Max), failures(o.Failures))
	}
	fmt.Fprintf(tw, "all\t%d\t%s\t\t\t\t\t\t\t\n", r.TotalOps, rate(float64(r.TotalOps)/r.Elapsed.Seconds()))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "elapsed %s, seqlock read retries %d, %d entries at the end (largest topic %d)",
		r.Elapsed.Round(time.Millisecond), r.ReadRetries, r.Len, r.MaxTopic)
	if r.Interrupted {
		fmt.Fprint(w, " (interrupted: partial report)")
	}
	fmt.Fprintln(w)
	if c.Verify {
		if len(r.Violations) == 0 {
			fmt.Fprintf(w, "verify: ok (%d Lists checked; Len() = %d after every socket left)\n", r.Checks, r.FinalLen)
		} else {
			fmt.Fprintf(w, "verify: FAILED (%d Lists checked)\n", r.Checks)
			for _, v := range r.Violations {
				fmt.Fprintf(w, "  %s\n", v)
			}
		}
	}
	return nil
}

// WriteRatios writes how many times faster the first run was than the
// second: overall throughput, and per operation the mean, p50 and p99
// latency. (Per-operation throughput would only repeat the overall ratio,
// since the mix fixes each operation's share.)
func WriteRatios(w io.Writer, a, b *Result) error {
	fmt.Fprintf(w, "%s vs %s: %.1fx the throughput; latency ratios (%s / %s):\n", a.Target, b.Target,
		(float64(a.TotalOps)/a.Elapsed.Seconds())/(float64(b.TotalOps)/b.Elapsed.Seconds()), b.Target, a.Target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tmean\tp50\tp99\t")
	for i := range a.Ops {
		x, y := a.Ops[i], b.Ops[i]
		if x.Count == 0 || y.Count == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.1fx\t%.1fx\t%.1fx\t\n", x.Op, ratio(y.Mean, x.Mean), ratio(y.P50, x.P50), ratio(y.P99, x.P99))
	}
	return tw.Flush()
}

func ratio(slow, fast time.Duration) float64 {
	if fast <= 0 {
		return 0
	}
	return float64(slow) / float64(fast)
}

// JSONReport is the JSON form of a report: presbench -mode engine -json
// writes it in the runinfo envelope.
type JSONReport struct {
	Runs []JSONRun `json:"runs"`
	// Ratios, with two runs, are the second run's mean latency over the
	// first's, per operation, and "all" is the first run's throughput
	// over the second's.
	Ratios map[string]float64 `json:"ratios,omitempty"`
	// Versus holds the same ratios for every run after the first, by its
	// target, with two runs or more.
	Versus map[string]map[string]float64 `json:"versus,omitempty"`
}

type JSONRun struct {
	Target      string      `json:"target"`
	Workers     int         `json:"workers"`
	Capacity    int         `json:"capacity"`
	Shards      int         `json:"shards"`
	Topics      int         `json:"topics"`
	Dist        string      `json:"dist"`
	Sockets     int         `json:"sockets"`
	KeySize     int         `json:"key_size"`
	MetaSize    int         `json:"meta_size"`
	Mix         string      `json:"mix"`
	Seed        uint64      `json:"seed"`
	Prefill     float64     `json:"prefill"`
	ElapsedS    float64     `json:"elapsed_s"`
	TotalOps    int64       `json:"total_ops"`
	OpsPerS     float64     `json:"ops_per_s"`
	ReadRetries uint64      `json:"read_retries"`
	Len         int         `json:"len_at_end"`
	MaxTopic    int         `json:"largest_topic_at_end"`
	Interrupted bool        `json:"interrupted"`
	Verify      *JSONVerify `json:"verify,omitempty"`
	Ops         []JSONOp    `json:"ops"`
	Memory      *JSONMemory `json:"memory,omitempty"`
}

// JSONMemory is Memory; -1 where it was not measured.
type JSONMemory struct {
	Reserved    int64 `json:"reserved_bytes"`
	Resident    int64 `json:"resident_bytes"`
	ResidentEnd int64 `json:"resident_end_bytes"`
	HeapEnd     int64 `json:"heap_end_bytes"`
}

type JSONVerify struct {
	OK         bool     `json:"ok"`
	Checks     int64    `json:"lists_checked"`
	FinalLen   int      `json:"final_len"`
	Violations []string `json:"violations"`
}

type JSONOp struct {
	Op       string           `json:"op"`
	Count    int64            `json:"count"`
	OpsPerS  float64          `json:"ops_per_s"`
	Mean     int64            `json:"mean_ns"`
	P50      int64            `json:"p50_ns"`
	P90      int64            `json:"p90_ns"`
	P99      int64            `json:"p99_ns"`
	P999     int64            `json:"p999_ns"`
	Max      int64            `json:"max_ns"`
	Failures map[string]int64 `json:"failures"`
}

// WriteJSON writes one or more runs as a JSONReport, bare.
func WriteJSON(w io.Writer, runs ...*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewJSONReport(runs...))
}

// NewJSONReport returns the JSON form of one or more runs; with more than
// one, the ratios of the first against each other.
func NewJSONReport(runs ...*Result) *JSONReport {
	var rep JSONReport
	for _, r := range runs {
		c := r.Config
		jr := JSONRun{
			Target: r.Target, Workers: c.Workers, Capacity: c.Capacity, Shards: c.Shards, Topics: c.Topics,
			Dist: distName(c), Sockets: c.Sockets, KeySize: c.KeySize, MetaSize: c.MetaSize, Mix: c.Mix.String(),
			Seed: c.Seed, Prefill: c.Prefill, ElapsedS: r.Elapsed.Seconds(), TotalOps: r.TotalOps,
			OpsPerS: float64(r.TotalOps) / r.Elapsed.Seconds(), ReadRetries: r.ReadRetries, Len: r.Len, MaxTopic: r.MaxTopic, Interrupted: r.Interrupted,
			Ops: []JSONOp{},
		}
		if m := r.Memory; m != nil {
			jr.Memory = &JSONMemory{Reserved: m.Reserved, Resident: m.Resident, ResidentEnd: m.ResidentEnd, HeapEnd: m.HeapEnd}
		}
		if c.Verify {
			jr.Verify = &JSONVerify{OK: len(r.Violations) == 0, Checks: r.Checks, FinalLen: r.FinalLen, Violations: append([]string{}, r.Violations...)}
		}
		for _, o := range r.Ops {
			if o.Count == 0 {
				continue
			}
			jr.Ops = append(jr.Ops, JSONOp{Op: o.Op.String(), Count: o.Count, OpsPerS: o.PerSec,
				Mean: int64(o.Mean), P50: int64(o.P50), P90: int64(o.P90), P99: int64(o.P99), P999: int64(o.P999), Max: int64(o.Max),
				Failures: o.Failures})
		}
		rep.Runs = append(rep.Runs, jr)
	}
	for j, b := range runs[min(1, len(runs)):] {
		a := runs[0]
		ratios := map[string]float64{}
		for i := range a.Ops {
			if a.Ops[i].Count > 0 && b.Ops[i].Count > 0 {
				ratios[a.Ops[i].Op.String()] = ratio(b.Ops[i].Mean, a.Ops[i].Mean)
			}
		}
		ratios["all"] = rep.Runs[0].OpsPerS / rep.Runs[j+1].OpsPerS
		if rep.Versus == nil {
			rep.Versus = map[string]map[string]float64{}
		}
		rep.Versus[b.Target] = ratios
		if len(runs) == 2 {
			rep.Ratios = ratios
		}
	}
	return &rep
}

func runLength(c Config) string {
	if c.Ops > 0 {
		return fmt.Sprintf("%d ops", c.Ops)
	}
	return c.Duration.String()
}

func distName(c Config) string {
	if c.Dist == "zipf" {
		return fmt.Sprintf("zipf s=%g", c.ZipfS)
	}
	return c.Dist
}

func rate(perSec float64) string {
	switch {
	case perSec >= 1e6:
		return fmt.Sprintf("%.2fM", perSec/1e6)
	case perSec >= 1e3:
		return fmt.Sprintf("%.1fk", perSec/1e3)
	}
	return fmt.Sprintf("%.0f", perSec)
}

// bytesText writes n bytes shortly, or "?" for an unknown (negative) n.
func bytesText(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3)
	}
	return fmt.Sprintf("%.2fms", float64(d.Nanoseconds())/1e6)
}

func failures(f map[string]int64) string {
	if len(f) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, f[k]))
	}
	return strings.Join(parts, " ")
}
