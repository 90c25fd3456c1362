#!/usr/bin/env bash
# Re-measures everything BENCHMARKS.md quotes; results go to ${OUT:-bench/out}.
# Takes about 15 minutes. Run it on an idle machine.
# Go benchmarks go to benchstat; the profiles' top functions to *.top.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
benchstat="go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
count=${COUNT:-6}

engine='^Benchmark(TrackUpdate|TrackUnchanged|TrackUntrack|UntrackAll|Count|List|Diff|Changes|ParallelTrackUpdate|ParallelList128|ParallelReadHeavy)$'
go test -run '^$' -bench "$engine" -count "$count" ./engine | tee "$out/engine.txt"
$benchstat "$out/engine.txt" > "$out/engine.benchstat"

variants='^Benchmark(TrackUpdate|TrackUnchanged|TrackUntrack|List)$'
go test -run '^$' -bench "$variants" -count "$count" ./engine > "$out/fast.txt"
go test -tags presence_atomic -run '^$' -bench "$variants" -count "$count" ./engine > "$out/atomic.txt"
$benchstat "$out/fast.txt" "$out/atomic.txt" > "$out/atomic.benchstat"

(cd bench/peers && go test -run '^$' -bench . -count "$count" .) | tee "$out/peers.txt"
$benchstat -col /impl "$out/peers.txt" > "$out/peers.benchstat"

for preset in read-heavy churn hot-room; do
	go run ./cmd/presbench -preset "$preset" -compare | tee "$out/presbench-$preset.txt"
done
for procs in 1 2; do
	GOMAXPROCS=$procs go run ./cmd/presbench -preset read-heavy -compare -workers "$procs" | tee "$out/presbench-read-heavy-procs$procs.txt"
done

go run ./cmd/presbench -mix track=50,untrack=50 -duration 5s -cpuprofile "$out/track.cpu" > /dev/null
go run ./cmd/presbench -mix list=100 -topics 32 -prefill 1 -duration 5s -cpuprofile "$out/list.cpu" > /dev/null
go tool pprof -top -nodecount 15 "$out/track.cpu" > "$out/track.top" 2>/dev/null
go tool pprof -top -nodecount 15 "$out/list.cpu" > "$out/list.top" 2>/dev/null
