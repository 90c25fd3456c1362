#!/usr/bin/env bash
# The whole test suite. Run from the repository root: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

# Debian's nats-server (2.9.10), for the cluster's test against an external
# server by URL; that test is skipped where it cannot be installed.
if ! command -v nats-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server; } >/dev/null 2>&1 || true
fi

# -trimpath keeps directories out of what Go compiles, so that a fresh clone
# reuses the packages an earlier clone compiled; -count=1 on every go test
# below still runs every test.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath"

# Each step's wall time, printed at the end.
took=""
step_done() { took="$took $1 $((SECONDS - step_start))s"; step_start=$SECONDS; }
step_start=$SECONDS

# Every test runs in at least one of the passes below; what runs where:
#
# - Under the race detector: unit, property, stress and fuzz-corpus tests,
#   and the cluster simulations (TestScale*). Its stress tests scale their
#   counts down there (raceEnabled in each package's race_test.go): the
#   engine's linearizability histories, follower replay and 1 MiB torn-meta
#   reads, the shard's repaired and torn reads, channel's TestSoak and
#   paged walk under churn. Left to the plain pass: the single-goroutine
#   model tests (TestBlockModel, TestBlocksAtTheEdgesRapid), where the
#   detector has nothing to check.
# - Without it: the packages whose plain build differs (shard and engine:
#   the plain-copy words) and cmd/presbench whole, at full counts, and the
#   linearizability tests with 1000 operations a goroutine in their own
#   step; of channel and cluster, the tests that the race pass scales down
#   or skips (allocations, memory, soak, storms, churn, snapshots and
#   replays in pieces, stalls: a test that reads raceEnabled must match
#   plainOnly below). The other packages and tests ran whole under the
#   detector; a second link and run of each checked nothing new.
# - With the all-atomic payload copy: shard and engine again.
# - In a process of its own, under the race detector:
#   TestNATSLongAndEmptyTopicsKeepTheConnection. Its two engines of 64 KiB
#   topics take 1.3 GB of heap each, mostly never touched, which puts the
#   next collection 5 GB away: in a binary with the other cluster tests,
#   their garbage piled up to 2.4 GB (0.9 GB without it); alone it peaks
#   at 0.2 GB.
#
# The plain pass runs its three test binaries at once on any machine; the
# race pass runs one a core (on 2 cores, a third at once made a cluster
# simulation, TestScaleBuckets, miss its delivery count once).
# The race pass names its longest packages first (about 55, 31, 20, 19 and
# 16 s), so that they do not end it alone on one core: ./... adds the rest.
go test -race -count=1 -skip '^(TestRenderedBlocksFollowTheMembers|TestRenderedTopicsListTheSame|TestForeignCursorNeverCollides|TestSizing|TestBlockModel|TestBlocksAtTheEdgesRapid|TestNATSLongAndEmptyTopicsKeepTheConnection)$' \
	./cluster/ ./channel/ ./engine/ ./cmd/presbench/internal/clustermode/ ./shard/ ./cmd/presbench/ ./bench/load/ ./...
step_done race
go test -count=1 -p 3 -skip '^(TestLinearizable.*|TestListPageLinearizable)$' ./shard/... ./engine/... ./cmd/presbench/
step_done plain
plainOnly='Alloc|Memory|Soak|Storm|UnderChurn|BoundedPieces|InPieces|Stall'
# The steps below share no files or ports; they run as two lanes at once,
# each lane's output shown when both are done.
atomic_and_histories() {
	go test -count=1 -run "$plainOnly" ./channel/ ./cluster/
	go test -count=1 -tags presence_atomic ./shard/... ./engine/...
	# The plain-copy words (shard/words_fast.go) exist only without -race:
	# the engine's linearizability tests with longer histories, which the
	# plain pass skips. (Its stress tests, and the shard's torn and repaired
	# reads, ran in the plain and the all-atomic passes.)
	go test -count=1 -run 'Linearizable' ./engine/ -args -lin.ops=1000
}
model_and_modules() {
	# The cluster's model (joins, leaves, lingers, losses, kills,
	# partitions) with more cases than the default 100.
	go test -count=1 -run 'TestModelRapid$' ./cluster/ -args -rapid.checks=5000
	go test -race -count=1 -run '^TestNATSLongAndEmptyTopicsKeepTheConnection$' ./cluster/
	# The peer comparison module: its adapters must agree with the engine.
	(cd bench/peers && go vet ./... && go test -count=1 ./...)
	# The Centrifugo driver module: its workloads against the centrifuge
	# library in process (bench/server.sh alone builds Centrifugo itself).
	(cd bench/server && go vet ./... && go test -race -count=1 ./...)
}
lanes=$(mktemp -d)
trap 'rm -rf "$lanes"' EXIT
atomic_and_histories >"$lanes/a" 2>&1 &
lane_a=$!
model_and_modules >"$lanes/b" 2>&1 &
lane_b=$!
failed=0
wait "$lane_a" || failed=1
wait "$lane_b" || failed=1
cat "$lanes/a" "$lanes/b"
[ "$failed" -eq 0 ]
step_done lanes
# Prometheus stays out of the library's lower layers (package metrics only),
# and metrics links NATS only through metrics/clustermetrics.
if go list -deps ./engine ./shard ./jsonwriter | grep '^github.com/prometheus/'; then
	echo "engine, shard or jsonwriter depends on Prometheus" >&2
	exit 1
fi
if go list -deps ./metrics | grep '^github.com/nats-io/'; then
	echo "metrics depends on NATS" >&2
	exit 1
fi
# NATS stays out of the engine and the channel layer (package cluster only).
if go list -deps ./engine ./channel | grep '^github.com/nats-io/'; then
	echo "engine or channel depends on NATS" >&2
	exit 1
fi
# presence.js on Node: a fake transport and mock timers, no browser, no npm.
node --test channel/client/presence.test.mjs

# End to end: the official phoenix client (npm) on Node, and the chat demo in
# headless Chromium driven by playwright-core. Installs what is missing.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
(cd e2e && npm ci --no-audit --no-fund && npm test)
step_done node+e2e
echo "test.sh:$took, in all ${SECONDS}s"
