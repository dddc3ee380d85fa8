#!/usr/bin/env bash
# ssegate soak: stream churn (completions, client aborts, upstream crashes, idle timeouts,
# heartbeats, plain requests, refused upstreams) against a release build for a set time,
# reporting resident memory, open file descriptors and ssegate_streams_active over time.
#
#   bench/soak.sh [--minutes N] [--workers N] [--sample-secs N] [--warmup-secs N] [--out DIR]
#
# Defaults: 30 minutes, 48 concurrent clients, a sample every 10 s, warm-up 20% of the run
# (30..180 s). Passes (exit 0) when memory after warm-up stays within 5% of the warm-up
# peak, the gauge returns to 0, the fd count returns to its value before the first request,
# ssegate neither dies nor panics, and every client got the answer its scenario expects.
# SSEGATE_BIN=/path/to/ssegate runs that binary instead of building this tree's.
# Output: the table on stdout, and DIR/soak.csv + DIR/soak.txt (default bench/soak/results/).
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
MINUTES=30
WORKERS=48
SAMPLE=10
WARMUP=()
OUT=$BENCH/soak/results

while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --sample-secs) SAMPLE=$2; shift 2 ;;
        --warmup-secs) WARMUP=(--warmup-secs "$2"); shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "${SSEGATE_BIN:-}" ]; then
    echo "soak.sh: building ssegate (release)" >&2
    cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin ssegate >&2
    SSEGATE_BIN=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/ssegate
fi
echo "soak.sh: building the driver" >&2
cargo build --release --manifest-path "$BENCH/soak/Cargo.toml" \
    --target-dir "$BENCH/soak/target" >&2

mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true
{
    echo "# ssegate soak $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# binary: $SSEGATE_BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "# host: $(nproc) cores, $(uname -r)"
} > "$OUT/soak.txt"
set +e
"$BENCH/soak/target/release/soak" --ssegate "$SSEGATE_BIN" --minutes "$MINUTES" \
    --workers "$WORKERS" --sample-secs "$SAMPLE" "${WARMUP[@]}" --csv "$OUT/soak.csv" \
    | tee -a "$OUT/soak.txt"
status=${PIPESTATUS[0]}
set -e
echo "soak.sh: results in $OUT (exit $status)" >&2
exit "$status"
