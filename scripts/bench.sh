#!/usr/bin/env bash
# The main job: builds in release and runs the benchmark runner against the
# peers, printing the comparison table and writing CSV and a PNG plot under
# out/bench/. Extra arguments go to the runner (see sluice_bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target sluice_bench
mkdir -p out/bench
./build/release/bench/sluice_bench --out out/bench "$@"
