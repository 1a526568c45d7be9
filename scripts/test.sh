#!/usr/bin/env bash
# Builds and runs every test: GCC debug (with the freestanding cross-compile
# checks), Clang debug, ASan+UBSan and TSan; builds the release tree
# (benchmark included) so it stays warning-free and runs the packet buffer's
# release stress (millions of packets); then builds the bare-metal
# images and boots each under QEMU (scripts/baremetal.sh). Exits non-zero on
# any failure.
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
  if ! ctest --preset "$preset" -j "$jobs"; then
    # Repeat what the failures printed last, where a log's tail shows it.
    echo "=== $preset: FAILED; what the failing tests reported:"
    grep -h -E -A3 "Failure$|FAILED|Expected|Which is|Value of|watchdog|ERROR: |Sanitizer|Assertion .* failed" \
      "build/$preset/Testing/Temporary/LastTest.log" | tail -n 80 || true
    exit 1
  fi
done

echo "=== release: build (benchmark runner included)"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
echo "=== release: packet buffer stress, millions of packets per policy"
build/release/tests/sluice_stress_tests --gtest_filter='PacketBufferStress.*'
echo "=== bare metal: build and boot every port's images under QEMU"
SLUICE_SKIP_SETUP=1 scripts/baremetal.sh
echo "=== all test presets passed: ${presets[*]}; bare-metal images passed"
