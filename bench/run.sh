#!/usr/bin/env bash
# One command for every benchmark of issue 4: builds `sop` (release), installs the peers
# from crates.io into bench/tools/ (git-ignored), compiles the floor/HTTP helper, runs
# bench/bench.py and writes bench/RESULTS.md. Options go to bench.py (`--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
child=""
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

cargo build --release --locked -p sop-cli
mkdir -p bench/tools
if [ ! -x bench/tools/bin/just ] || [ ! -x bench/tools/bin/pueued ]; then
  cargo install --locked --root bench/tools just pueue \
    || echo "warning: installing just/pueue failed; those baselines are skipped" >&2
fi
rustc -O --edition 2021 -o bench/tools/benchtool bench/src/benchtool.rs
python3 bench/bench.py "$@" &
child=$!
wait "$child"
child=""
