#!/usr/bin/env bash
# Builds and runs every test: GCC debug (with the freestanding cross-compile
# checks), Clang debug, ASan+UBSan and TSan, and builds the release tree
# (benchmark included) so it stays warning-free. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=${SLUICE_JOBS:-$(nproc)}
presets=(${SLUICE_TEST_PRESETS:-debug clang-debug asan tsan})

for preset in "${presets[@]}"; do
  echo "=== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== $preset: test"
  ctest --preset "$preset" -j "$jobs"
done

echo "=== release: build (benchmark runner included)"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
echo "=== all test presets passed: ${presets[*]}"
