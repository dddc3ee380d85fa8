#!/usr/bin/env python3
"""Picks at most N inputs that cover the most edges, greedily, from a libFuzzer merge
control file (written by `-merge=1 -merge_control_file=FILE`), and copies them to OUT.

    fuzz/pick.py CONTROL_FILE OUT_DIR [N]

Used after `cargo fuzz cmin` when a target's coverage is dominated by a dependency (serde_json,
serde_yaml), where even an edge-minimal corpus has hundreds of files."""
import os, shutil, sys

ctl, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
lines = open(ctl, encoding="utf-8", errors="replace").read().splitlines()
nfiles = int(lines[0])
files = lines[2:2 + nfiles]
cov = {}
for l in lines[2 + nfiles:]:
    parts = l.split()
    if parts and parts[0] == "COV":
        cov[int(parts[1])] = set(parts[2:])
total = set().union(*cov.values()) if cov else set()
have, picked = set(), []
while len(picked) < n:
    best = max(cov, key=lambda i: len(cov[i] - have), default=None)
    if best is None or not cov[best] - have:
        break
    have |= cov.pop(best)
    picked.append(best)
os.makedirs(out, exist_ok=True)
for i in picked:
    shutil.copy(files[i], out)
print(f"{len(picked)} inputs cover {len(have)} of {len(total)} edges ({100 * len(have) / max(1, len(total)):.1f}%)")
