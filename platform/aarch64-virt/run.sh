#!/usr/bin/env bash
# Builds the AArch64 images (demo and unit tests) for QEMU's virt machine,
# boots each on four Cortex-A53 cores with a timeout, and checks what they
# print on the PL011 UART:
#   demo   two summary lines, mode=overwrite then mode=no-overwrite, each with
#          sent == received > 0, produced == claimed + dropped > 0, tasks > 0
#          and as many `log seq=` lines since the previous summary as claimed;
#          `demo: PASS`, no `demo: FAIL`, and QEMU's exit status 0 (the
#          image's semihosting exit status);
#   tests  exactly one closing line `N passed, M failed` with M = 0 and N =
#          the number of TEST_CASEs in tests/baremetal (none skipped or lost),
#          one `ok` line per test, no `FAIL` line, exit status 0.
# Exits non-zero on any failure, a missing line, a fault or a hang.
#
#   platform/aarch64-virt/run.sh [build-dir]   (default: build/aarch64-virt)
# Needs: cmake, ninja, aarch64-linux-gnu-g++ (g++-aarch64-linux-gnu),
# qemu-system-aarch64 (qemu-system-arm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/aarch64-virt}
demo_timeout=${SLUICE_BOOT_TIMEOUT:-60}
tests_timeout=${SLUICE_TESTS_TIMEOUT:-120}

for tool in cmake ninja aarch64-linux-gnu-g++ qemu-system-aarch64; do
  if ! command -v "$tool" >/dev/null; then
    echo "aarch64-virt: $tool not found (scripts/setup.sh installs it)" >&2
    exit 1
  fi
done

cmake -S "$here" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j2

fail() {
  echo "aarch64-virt: FAIL: $*" >&2
  exit 1
}

# boot IMAGE LOG TIMEOUT: boots, prints the output but the log lines, sets
# `status` to QEMU's exit status.
boot() {
  status=0
  local start end
  start=$(date +%s.%N)
  timeout "$3" qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 4 -m 128M \
    -nographic -monitor none -semihosting -nic none \
    -kernel "$1" >"$2" 2>&1 || status=$?
  end=$(date +%s.%N)
  grep -v '^log seq=' "$2" || true
  echo "aarch64-virt: $(basename "$1") ran $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s, exit status $status (log: $2)"
  if [ "$status" -eq 124 ]; then fail "$(basename "$1") did not exit within $3 s (hang)"; fi
  if grep -q '^\(fault\|panic\):' "$2"; then fail "$(basename "$1") faulted or panicked"; fi
}

# ---- the demo ----------------------------------------------------------------------
log="$build/demo.uart.log"
boot "$build/demo.elf" "$log" "$demo_timeout"
"$root/platform/baremetal/check_demo.sh" "$log" || fail "the demo output does not check out (see above)"
if [ "$status" -ne 0 ]; then fail "demo.elf exited with status $status"; fi
echo "aarch64-virt: demo PASS"

# ---- the unit tests ------------------------------------------------------------------
expected=$(cat "$root"/tests/baremetal/*.cpp | grep -c '^TEST_CASE(' || true)
log="$build/tests.uart.log"
boot "$build/tests.elf" "$log" "$tests_timeout"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" || true)
if [ "$(echo "$summary" | grep -c . || true)" -ne 1 ]; then
  fail "expected one 'N passed, M failed' line"
fi
passed=${summary%% passed*}
failed=${summary#*, }
failed=${failed%% failed}
oks=$(grep -c '^ok   ' "$log" || true)
if grep -q '^FAIL ' "$log" || [ "$failed" -ne 0 ]; then fail "$failed test(s) failed"; fi
if [ "$passed" -ne "$expected" ] || [ "$oks" -ne "$expected" ]; then
  fail "$passed passed and $oks ok lines, expected $expected tests"
fi
if [ "$status" -ne 0 ]; then fail "tests.elf exited with status $status"; fi
echo "aarch64-virt: tests PASS ($passed passed, 0 failed)"
