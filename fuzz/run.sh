#!/usr/bin/env bash
# Runs one fuzz target on its committed seeds, one job, for a set time (default 600 s).
#
#   fuzz/run.sh TARGET [SECONDS]       TARGET: sse_parser | observer | dialect | config_parse | nginx_convert | h1_wire
#
# New inputs go to fuzz/work/TARGET (not committed); crashes to fuzz/artifacts/TARGET/.
# libFuzzer's own log is fuzz/work/TARGET.log. Needs cargo-fuzz (cargo install cargo-fuzz);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take the sanitizer flags cargo-fuzz passes.
set -euo pipefail
FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
secs=${2:-600}
case "$target" in
    sse_parser|observer) dict=sse.dict ;;
    h1_wire) dict=http.dict ;;
    dialect) dict=dialect.dict ;;
    config_parse) dict=config.dict ;;
    nginx_convert) dict=nginx.dict ;;
    *) dict= ;;
esac
mkdir -p "$FUZZ/work/$target"
cd "$FUZZ/work"
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir "$FUZZ" "$target" \
    "$FUZZ/work/$target" "$FUZZ/corpus/$target" -- \
    -max_total_time="$secs" -jobs=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    ${dict:+-dict="$FUZZ/dict/$dict"}
# -jobs=1 runs one worker process whose output is fuzz-0.log in the current directory.
mv -f fuzz-0.log "$target.log" 2>/dev/null || true
tail -n 20 "$target.log" 2>/dev/null || true
