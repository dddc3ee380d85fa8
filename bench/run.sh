#!/usr/bin/env bash
# ssegate's benchmark: direct (no proxy), nginx, haproxy and ssegate in the same run, round
# after round, on loopback. See bench/README.md.
#
#   bench/run.sh [--rounds N] [--quick] [--targets "direct nginx haproxy ssegate"]
#                [--scenarios "latency fanout raw plain"] [--name NAME] [--nice N]
#
# --nice -10 raises the bench's scheduling priority (root only) on a machine that other work
# shares; it is recorded in env.txt.
# SSEGATE_BIN=/path/to/ssegate runs that binary instead of building this repository's.
# Results: bench/results/NAME/{results.jsonl,table.md,env.txt}; scratch: bench/run/.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
ROUNDS=
QUICK=0
TARGETS="direct nginx haproxy ssegate"
SCENARIOS="latency fanout raw plain"
NAME=
NICE=0

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --targets) TARGETS=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --name) NAME=$2; shift 2 ;;
        --nice) NICE=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

# Scenario sizes: the issue's numbers, or small ones that check everything end to end.
if [ "$QUICK" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    LAT_STREAMS=20 LAT_EVENTS=50
    FAN_MAX=500 FAN_EVENTS=5 FAN_RAMP=1s
    RAW_STREAMS=5 RAW_EVENTS=5000
    WRK_TIME=5s
else
    ROUNDS=${ROUNDS:-3}
    LAT_STREAMS=200 LAT_EVENTS=200
    FAN_MAX=10000 FAN_EVENTS=30 FAN_RAMP=5s
    RAW_STREAMS=20 RAW_EVENTS=50000
    WRK_TIME=10s
fi
WRK_CONNS=50

# Ports away from the ones the test suites and demos use; BENCH_PORT_BASE moves them all.
BASE=${BENCH_PORT_BASE:-27100}
UP_PORT=$BASE
declare -A PORT=([direct]=$BASE [nginx]=$((BASE + 1)) [haproxy]=$((BASE + 2)) [ssegate]=$((BASE + 3)))
ADMIN_PORT=$((BASE + 9))

say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --- tools -----------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing from Debian: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "building loadgen"
(cd "$BENCH/loadgen" && cargo build --release --quiet)
LOADGEN=$BENCH/target/release/loadgen

if [[ " $TARGETS " != *" ssegate "* ]]; then
    SSEGATE=
elif [ -n "${SSEGATE_BIN:-}" ]; then
    SSEGATE=$SSEGATE_BIN
else
    # Others edit the tree too: a failed build may be someone mid-edit, so wait and retry.
    for attempt in 1 2 3 4 5; do
        say "building ssegate (attempt $attempt)"
        if (cd "$ROOT" && cargo build --release --quiet --bin ssegate); then break; fi
        [ "$attempt" = 5 ] && { say "ssegate does not build; giving up"; exit 1; }
        sleep 60
    done
    SSEGATE=$ROOT/target/release/ssegate
fi

# Run a private copy: someone else's build may replace target/release/ssegate mid-run.
if [ -n "$SSEGATE" ]; then
    mkdir -p "$BENCH/run"
    cp "$SSEGATE" "$BENCH/run/ssegate.bin.tmp"
fi

# --- limits ----------------------------------------------------------------------------------
# Every stream costs the proxy two descriptors (client and upstream side).
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ]; then HARD=65536; fi
ulimit -n "$HARD"
NOFILE=$(ulimit -n)
FAN_STREAMS=$(( (NOFILE - 200) / 2 ))
[ "$FAN_STREAMS" -gt "$FAN_MAX" ] && FAN_STREAMS=$FAN_MAX
MAXCONN=$(( (NOFILE - 100) / 2 ))
[ "$MAXCONN" -gt 20000 ] && MAXCONN=20000

# Every process started from here on (proxies, upstream, client, wrk) inherits this.
if [ "$NICE" != 0 ]; then renice -n "$NICE" -p $$ >/dev/null; fi

# --- scratch and results ---------------------------------------------------------------------
RUN=$BENCH/run
find "$RUN" -mindepth 1 -maxdepth 1 ! -name ssegate.bin.tmp -exec rm -rf {} +
mkdir -p "$RUN"/nginx-tmp
if [ -n "$SSEGATE" ]; then
    mv "$RUN/ssegate.bin.tmp" "$RUN/ssegate"
    SSEGATE_SRC=$SSEGATE
    SSEGATE=$RUN/ssegate
fi
NAME=${NAME:-$([ "$QUICK" = 1 ] && echo quick || echo full)-$(date +%Y%m%d-%H%M)}
OUT=$BENCH/results/$NAME
mkdir -p "$OUT"
JSONL=$OUT/results.jsonl
: > "$JSONL"

fill() {
    sed -e "s#@RUN@#$RUN#g" -e "s#@NOFILE@#$NOFILE#g" -e "s#@MAXCONN@#$MAXCONN#g" \
        -e "s#@UPSTREAM@#$UP_PORT#g" -e "s#@PORT@#${PORT[$1]}#g" -e "s#@ADMIN@#$ADMIN_PORT#g" \
        "$BENCH/conf/$2" > "$RUN/$2"
}
fill nginx nginx.conf
fill haproxy haproxy.cfg
fill ssegate ssegate.yaml
[ -z "$SSEGATE" ] || "$SSEGATE" check -c "$RUN/ssegate.yaml" >/dev/null

{
    echo "date: $(date -Is)"
    echo "command: bench/run.sh $([ "$QUICK" = 1 ] && echo --quick) --rounds $ROUNDS --nice $NICE"
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
    echo "open-file limit: $NOFILE (hard $(ulimit -Hn)); fan-out streams: $FAN_STREAMS; haproxy maxconn: $MAXCONN"
    if [ -n "${SSEGATE_BIN:-}" ]; then
        echo "ssegate: $SSEGATE_BIN (SSEGATE_BIN; sha256 $(sha256sum "$SSEGATE" | cut -c1-12))"
    elif [ -n "$SSEGATE" ]; then
        echo "ssegate: work tree at $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' with uncommitted changes') (sha256 $(sha256sum "$SSEGATE" | cut -c1-12))"
    fi
    echo "nginx: $(nginx -v 2>&1)"
    echo "haproxy: $(haproxy -v | head -1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "loadavg at start: $(cat /proc/loadavg)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

# --- processes -------------------------------------------------------------------------------
port_free() { ! ss -Htln "sport = :$1" | grep -q .; }

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

UP_PID=
PROXY_PID=
cleanup() {
    [ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID"
    [ -n "$UP_PID" ] && stop_pid "$UP_PID"
}
trap cleanup EXIT

for p in "$UP_PORT" "${PORT[nginx]}" "${PORT[haproxy]}" "${PORT[ssegate]}" "$ADMIN_PORT"; do
    port_free "$p" || { say "port $p is in use; stop what holds it first"; exit 1; }
done

# One upstream for every target, for the whole run (bounded by its own --max-time).
"$LOADGEN" upstream --listen "127.0.0.1:$UP_PORT" --max-time 60m 2> "$RUN/upstream.log" &
UP_PID=$!
"$LOADGEN" wait --target "127.0.0.1:$UP_PORT" --warm 10 --warm-streams 1

start_proxy() {
    case "$1" in
        direct) PROXY_PID= ;;
        nginx) nginx -c "$RUN/nginx.conf" 2> "$RUN/nginx.log" & PROXY_PID=$! ;;
        haproxy) haproxy -db -f "$RUN/haproxy.cfg" 2> "$RUN/haproxy.log" & PROXY_PID=$! ;;
        # Info logs are one line per stream: off, as nginx's access log is.
        ssegate) RUST_LOG=warn "$SSEGATE" run -c "$RUN/ssegate.yaml" 2> "$RUN/ssegate.log" & PROXY_PID=$! ;;
    esac
    "$LOADGEN" wait --target "127.0.0.1:${PORT[$1]}"
}

stop_proxy() {
    if [ -n "$PROXY_PID" ]; then stop_pid "$PROXY_PID"; fi
    PROXY_PID=
}

measure() {
    local scenario=$1 target=$2 round=$3
    local pids=()
    [ -n "$PROXY_PID" ] && pids=(--pids "$PROXY_PID")
    local common=(--target "127.0.0.1:${PORT[$target]}" --label "$target" --round "$round"
                  --upstream-pid "$UP_PID" "${pids[@]}")
    case "$scenario" in
        latency) "$LOADGEN" client "${common[@]}" --mode latency \
                     --streams "$LAT_STREAMS" --events "$LAT_EVENTS" --interval 20ms ;;
        fanout) "$LOADGEN" client "${common[@]}" --mode fanout \
                     --streams "$FAN_STREAMS" --events "$FAN_EVENTS" --interval 1s --ramp "$FAN_RAMP" ;;
        raw) "$LOADGEN" client "${common[@]}" --mode raw \
                     --streams "$RAW_STREAMS" --events "$RAW_EVENTS" --interval 0 ;;
        plain) "$LOADGEN" wrk --label "$target" --round "$round" --upstream-pid "$UP_PID" \
                     "${pids[@]}" -- \
                     wrk -t1 -c"$WRK_CONNS" -d"$WRK_TIME" --latency "http://127.0.0.1:${PORT[$target]}/plain" ;;
    esac
}

# --- rounds ----------------------------------------------------------------------------------
read -r -a TLIST <<< "$TARGETS"
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        # Rotate the order each round so no target always runs first or last.
        n=${#TLIST[@]}
        for i in $(seq 0 $((n - 1))); do
            target=${TLIST[$(( (i + round - 1) % n ))]}
            say "round $round/$ROUNDS: $scenario via $target"
            # A fresh proxy for every scenario: memory figures start from a clean process.
            start_proxy "$target"
            if ! measure "$scenario" "$target" "$round" >> "$JSONL"; then
                say "  $scenario via $target failed"
            fi
            stop_proxy
            # Let closed connections and freed memory settle between targets.
            sleep 1
        done
    done
done

echo "loadavg at end: $(cat /proc/loadavg)" >> "$OUT/env.txt"
"$LOADGEN" table "$JSONL" > "$OUT/table.md"
cat "$OUT/table.md"
say "results in ${OUT#"$ROOT"/}"
