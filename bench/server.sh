#!/usr/bin/env bash
# Runs the server workloads of bench/load against our server and against
# Centrifugo v6.9.1, one after the other on loopback, and prints the
# side-by-side table. Takes about 5 minutes; run it on an idle machine.
#
#   bench/server.sh                   # the full sizes below
#   JOIN=200 CHURN=200 FANOUT=200 IDLE=1000 CHURN_FOR=5s FANOUT_FOR=3s bench/server.sh   # a quick look
#   WORKLOADS="join idle" bench/server.sh   # some of them
#   PROFILE=1 WORKLOADS=churn bench/server.sh # and a CPU profile of our server per workload
#
# Our server is bench/chatroom (presence-chat's room without its
# user_joined/user_left broadcasts) served by bench/server/presence; it is
# driven by presbench -mode server. Centrifugo is built with go install into
# bench/out/bin (ignored by git; the test suite never builds it) and driven
# by bench/server's centrifuge-go driver. Each workload gets a fresh server
# process, whose CPU time and memory are read from /proc. Results, logs and
# JSON go to ${OUT:-bench/out/server}. To measure a commit rather than the
# working tree, run the script from a clean export of it with COMMIT set.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-bench/out/server}
bin=bench/out/bin
mkdir -p "$out" "$bin"

JOIN=${JOIN:-2000}        # join storm: clients in one room
CHURN=${CHURN:-1000}      # churn: the steady room
CHURN_RATE=${CHURN_RATE:-50}
CHURN_FOR=${CHURN_FOR:-20s}
FANOUT=${FANOUT:-2000}    # fan-out: subscribers
FANOUT_RATE=${FANOUT_RATE:-50}
# The second fan-out run's rate: meant to be the highest both servers keep
# up with. On the 2-core machine of BENCHMARKS.md, Centrifugo fell behind at
# 50/s (the publisher had 64 publishes unanswered) and ours at 200/s.
FANOUT_RATE2=${FANOUT_RATE2:-20}
FANOUT_FOR=${FANOUT_FOR:-10s}
IDLE=${IDLE:-10000}       # idle: connections over IDLE_ROOMS rooms
IDLE_ROOMS=${IDLE_ROOMS:-100}
WORKLOADS=${WORKLOADS:-join churn fanout fanout2 idle}
PPORT=${PPORT:-4700}
CPORT=${CPORT:-8765}

# Each side holds one descriptor per connection: raise the limit as far as
# the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "file descriptors: soft limit $(ulimit -n), hard limit $(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 100)) ]; then
	IDLE=$(($(ulimit -n) - 100))
	echo "idle lowered to $IDLE connections by the descriptor limit"
fi

echo "building"
[ -x "$bin/centrifugo" ] || GOBIN="$root/$bin" go install github.com/centrifugal/centrifugo/v6@v6.9.1
go build -o "$bin/presbench" ./cmd/presbench
(cd bench/server && go build -o "$root/$bin/server-load" . && go build -o "$root/$bin/presence" ./presence)

cat > "$out/centrifugo.json" <<JSON
{
  "client": {"insecure": true, "allowed_origins": ["*"]},
  "channel": {"without_namespace": {
    "presence": true, "join_leave": true, "force_push_join_leave": true,
    "allow_publish_for_subscriber": true, "allow_presence_for_subscriber": true
  }},
  "http_server": {"address": "127.0.0.1", "port": $CPORT},
  "log": {"level": "error"}
}
JSON

pid=
start() { # start SERVER CLIENTS WORKLOAD
	case $1 in
	presence) "$bin/presence" -addr "127.0.0.1:$PPORT" -capacity $(($2 + 100)) ${PROFILE:+-cpuprofile "$out/presence-$3.cpu"} >> "$out/presence.log" 2>&1 & pid=$! ;;
	centrifugo) "$bin/centrifugo" -c "$out/centrifugo.json" >> "$out/centrifugo.log" 2>&1 & pid=$! ;;
	esac
	local port=$PPORT
	[ "$1" = centrifugo ] && port=$CPORT
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "$1 did not start; see $out/$1.log" >&2
	exit 1
}
stop() { # stop the server started last, with a bound on its drain
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

files=()
measure() { # measure NAME CLIENTS FLAGS...: both servers, NAME's workload
	local name=$1 clients=$2
	shift 2
	case " $WORKLOADS " in *" $name "*) ;; *) return 0 ;; esac
	for server in presence centrifugo; do
		echo "$name: $server"
		start "$server" "$clients" "$name"
		local f="$out/$server-$name.json"
		if [ "$server" = presence ]; then
			"$bin/presbench" -mode server -url "ws://127.0.0.1:$PPORT/socket/websocket" -room chat:room -json -server-pid "$pid" -clients "$clients" "$@" > "$f" || true
		else
			"$bin/server-load" -url "ws://127.0.0.1:$CPORT/connection/websocket" -room room -json -server-pid "$pid" -clients "$clients" "$@" > "$f" || true
		fi
		stop
		[ -s "$f" ] && files+=("$f")
		sleep 2 # let the sockets of the run close
	done
}

measure join "$JOIN" -workload join -timeout 3m
measure churn "$CHURN" -workload churn -rate "$CHURN_RATE" -duration "$CHURN_FOR" -timeout 4m
measure fanout "$FANOUT" -workload fanout -rate "$FANOUT_RATE" -duration "$FANOUT_FOR" -timeout 3m
measure fanout2 "$FANOUT" -workload fanout -rate "$FANOUT_RATE2" -duration "$FANOUT_FOR" -timeout 3m
measure idle "$IDLE" -workload idle -rooms "$IDLE_ROOMS" -duration 5s -timeout 5m

{
	if [ -n "${COMMIT:-}" ]; then
		echo "commit $COMMIT, $(date -u +%Y-%m-%dT%H:%MZ)"
	else
		echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' with uncommitted changes'), $(date -u +%Y-%m-%dT%H:%MZ)"
	fi
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; $(go version | cut -d' ' -f3)"
	echo "file descriptors: $(ulimit -n)"
	echo
	"$bin/server-load" -table "${files[@]}"
} | tee "$out/table.txt"
