#!/usr/bin/env bash
# What observation costs ssegate, A/B on the same load: loadgen's upstream serves the same
# bytes as `text/event-stream` on /stream (observed) and as `application/json` on
# /stream-unobserved (passed on without observing), through the same stream route. Rounds
# alternate the order. Prints ssegate's CPU seconds for each, medians, and observation's share.
#
#   bench/observe_ab.sh [--rounds N]       (default 5)
#
# Loads: "raw" is the bench's raw-events scenario (20 streams x 50,000 events, each event its
# own chunk, as fast as the upstream sends); "paced" is 50 streams x 2,000 events 2 ms apart
# (25,000 events/s, each stream faster than any model). bench/observe_cost.py is the worst
# case: an upstream that writes 16 events at a time.
# SSEGATE_BIN=/path/to/ssegate runs that binary instead of building this repository's.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
ROUNDS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "observe_ab.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

BASE=${BENCH_PORT_BASE:-27200}
UP_PORT=$BASE PROXY_PORT=$((BASE + 3)) ADMIN_PORT=$((BASE + 9))
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

say "building loadgen"
(cd "$BENCH/loadgen" && cargo build --release --quiet)
LOADGEN=$BENCH/target/release/loadgen
if [ -n "${SSEGATE_BIN:-}" ]; then
    SSEGATE=$SSEGATE_BIN
else
    say "building ssegate"
    (cd "$ROOT" && cargo build --release --quiet --bin ssegate)
    SSEGATE=$ROOT/target/release/ssegate
fi

RUN=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT

sed -e "s#@UPSTREAM@#$UP_PORT#g" -e "s#@PORT@#$PROXY_PORT#g" -e "s#@ADMIN@#$ADMIN_PORT#g" \
    "$BENCH/conf/ssegate.yaml" > "$RUN/ssegate.yaml"
"$LOADGEN" upstream --listen "127.0.0.1:$UP_PORT" --max-time 60m 2> "$RUN/upstream.log" &
PIDS+=($!)
"$SSEGATE" run -c "$RUN/ssegate.yaml" 2> "$RUN/ssegate.log" &
SSEGATE_PID=$!
PIDS+=("$SSEGATE_PID")
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

# One run: prints ssegate's CPU seconds (and fails loudly if a stream did not complete).
run() { # load path
    local args
    case "$1" in
        raw) args=(--mode raw --streams 20 --events 50000 --interval 0) ;;
        paced) args=(--mode latency --streams 50 --events 2000 --interval 2ms) ;;
    esac
    "$LOADGEN" client --target "127.0.0.1:$PROXY_PORT" --path "$2" "${args[@]}" \
        --label "$1$2" --pids "$SSEGATE_PID" 2>/dev/null | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
streams = {"raw": 20, "paced": 50}[sys.argv[1]]
assert d["streams_completed"] == streams, d
print(d["proxy_cpu_s"])' "$1"
}

declare -A CPU
for load in raw paced; do
    run "$load" /stream >/dev/null # warm-up: pools, page cache, allocator
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="/stream /stream-unobserved"; else order="/stream-unobserved /stream"; fi
        for path in $order; do
            c=$(run "$load" "$path")
            CPU[$load$path]="${CPU[$load$path]:-} $c"
            say "$load $path round $r: ssegate CPU ${c}s"
        done
    done
done

echo
echo "ssegate CPU seconds, median of $ROUNDS rounds (all rounds in brackets)"
for load in raw paced; do
    python3 - "$load" "${CPU[$load/stream]}" "${CPU[$load/stream-unobserved]}" <<'EOF'
import statistics, sys
load, obs, unobs = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
a, b = statistics.median(obs), statistics.median(unobs)
print(f"{load:>6}: observed {a:.2f} s {obs}, unobserved {b:.2f} s {unobs}, "
      f"observation {(a - b) / a * 100:+.1f}% of ssegate's CPU")
EOF
done
