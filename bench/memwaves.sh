#!/usr/bin/env bash
# Memory of one ssegate (or nginx) process over successive waves of fan-out streams: what one
# open stream costs in a fresh process, and whether the memory comes back when streams end.
#
#   bench/memwaves.sh ssegate|nginx STREAMS WAVES [BINARY]
#
# Every wave opens STREAMS streams (8 events, 1 s apart, starts spread over 2 s) and prints the
# proxy's RSS before the wave, at its peak and at its end. Uses ports 27200-27209. Extra
# environment for ssegate (e.g. MALLOC_ARENA_MAX=1) is passed through as is. Needs
# bench/loadgen built (bench/run.sh builds it).
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
KIND=${1:?ssegate or nginx}
STREAMS=${2:?streams per wave}
WAVES=${3:?number of waves}
BIN=${4:-$ROOT/target/release/ssegate}
LOADGEN=$BENCH/target/release/loadgen
RUN=$BENCH/run/memwaves
mkdir -p "$RUN/nginx-tmp"
ulimit -n "$(ulimit -Hn)"

fill() {
    sed -e "s#@RUN@#$RUN#g" -e "s#@NOFILE@#$(ulimit -n)#g" -e "s#@UPSTREAM@#27200#g" \
        -e "s#@PORT@#27201#g" -e "s#@ADMIN@#27209#g" "$BENCH/conf/$1" > "$RUN/$1"
}

"$LOADGEN" upstream --listen 127.0.0.1:27200 --max-time 30m 2> "$RUN/upstream.log" &
UP=$!
case "$KIND" in
    ssegate) fill ssegate.yaml; RUST_LOG=warn "$BIN" run -c "$RUN/ssegate.yaml" 2> "$RUN/proxy.log" & ;;
    nginx) fill nginx.conf; nginx -c "$RUN/nginx.conf" 2> "$RUN/proxy.log" & ;;
    *) echo "memwaves.sh: ssegate or nginx, not $KIND" >&2; kill "$UP"; exit 2 ;;
esac
PROXY=$!
trap 'kill -TERM "$PROXY" "$UP" 2>/dev/null; wait 2>/dev/null' EXIT
"$LOADGEN" wait --target 127.0.0.1:27201 --timeout 30s

for wave in $(seq "$WAVES"); do
    "$LOADGEN" client --target 127.0.0.1:27201 --mode fanout --streams "$STREAMS" --events 8 \
        --interval 1s --ramp 2s --pids "$PROXY" --label "$KIND" --round "$wave" > "$RUN/wave.json"
    python3 - "$RUN/wave.json" "$KIND" "$wave" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
n = d["streams"]
print(f"{sys.argv[2]} wave {sys.argv[3]}: {d['streams_completed']}/{n} streams completed; "
      f"RSS before {d['proxy_rss_start_kib'] / 1024:.1f} MiB, peak {d['proxy_rss_peak_kib'] / 1024:.1f} MiB, "
      f"end {d['proxy_rss_end_kib'] / 1024:.1f} MiB; peak/stream {d['proxy_rss_peak_kib'] / n:.1f} KiB, "
      f"(peak - before)/stream {(d['proxy_rss_peak_kib'] - d['proxy_rss_start_kib']) / n:.1f} KiB")
EOF
done
