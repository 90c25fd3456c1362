package stress

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteSideBySide writes runs of the same workload as one table, a column
// per registry, then a column per registry after the first with the
// ratios against the first: its throughput over theirs, and their mean
// latency over its, per operation. The runs must share one Config but
// their Target.
func WriteSideBySide(w io.Writer, runs ...*Result) error {
	if len(runs) == 0 {
		return nil
	}
	first := runs[0]
	c := first.Config
	fmt.Fprintf(w, "workload: %d workers, %s each, capacity %d, %d topics (%s), %d sockets, key %dB, meta %dB\n",
		c.Workers, runLength(c), c.Capacity, c.Topics, distName(c), c.Sockets, c.KeySize, c.MetaSize)
	fmt.Fprintf(w, "mix %s, seed %d, prefill %g\n\n", c.Mix, c.Seed, c.Prefill)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t", r.Target)
	}
	for _, r := range runs[1:] {
		fmt.Fprintf(tw, "%s vs %s\t", first.Target, r.Target)
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "ops/s\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t", rate(opsPerSec(r)))
	}
	for _, r := range runs[1:] {
		fmt.Fprintf(tw, "%.1fx\t", opsPerSec(first)/opsPerSec(r))
	}
	fmt.Fprintln(tw)
	for i, o := range first.Ops {
		if o.Count == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s p50 / p99\t", o.Op)
		for _, r := range runs {
			fmt.Fprintf(tw, "%s / %s\t", dur(r.Ops[i].P50), dur(r.Ops[i].P99))
		}
		for _, r := range runs[1:] {
			fmt.Fprintf(tw, "%.1fx\t", ratio(r.Ops[i].Mean, o.Mean))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "failures\t")
	for _, r := range runs {
		all := map[string]int64{}
		for _, o := range r.Ops {
			for k, n := range o.Failures {
				all[k] += n
			}
		}
		fmt.Fprintf(tw, "%s\t", failures(all))
	}
	fmt.Fprintln(tw)
	memRow := func(label string, get func(*Memory) int64) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, r := range runs {
			if r.Memory == nil {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%s\t", bytesText(get(r.Memory)))
		}
		fmt.Fprintln(tw)
	}
	memRow("memory reserved", func(m *Memory) int64 { return m.Reserved })
	memRow("resident, empty", func(m *Memory) int64 { return m.Resident })
	memRow("resident at the end", func(m *Memory) int64 { return m.ResidentEnd })
	memRow("heap held at the end", func(m *Memory) int64 { return m.HeapEnd })
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nratios: %s's throughput over each one's, and each one's mean latency over %s's; one run each, in turn, in this process\n",
		first.Target, first.Target)
	return err
}

func opsPerSec(r *Result) float64 { return float64(r.TotalOps) / r.Elapsed.Seconds() }
