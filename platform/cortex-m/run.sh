#!/usr/bin/env bash
# Builds the Cortex-M demo image (release, -Os), boots it on QEMU's
# mps2-an385 with a timeout, and checks what it prints on UART0:
#   - two summary lines, mode=overwrite then mode=no-overwrite, each with
#     sent == received, produced == claimed + dropped, tasks > 0, and as many
#     `log seq=` lines before it (since the previous summary) as claimed;
#   - `demo: PASS` and QEMU's exit status 0 (the image's semihosting exit);
# then prints the size report (size_report.sh), which fails if sluice's code
# is over its bar. Exits non-zero on any failure, a missing line or a hang.
#
#   platform/cortex-m/run.sh [build-dir]      (default: build/cortex-m)
# Needs: cmake, ninja, arm-none-eabi-g++ (gcc-arm-none-eabi,
# libstdc++-arm-none-eabi-newlib), qemu-system-arm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/cortex-m}
boot_timeout=${SLUICE_BOOT_TIMEOUT:-60}

for tool in cmake ninja arm-none-eabi-g++ qemu-system-arm; do
  if ! command -v "$tool" >/dev/null; then
    echo "cortex-m: $tool not found (scripts/setup.sh installs it)" >&2
    exit 1
  fi
done

cmake -S "$here" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j2

log="$build/demo.uart.log"
status=0
timeout "$boot_timeout" qemu-system-arm -M mps2-an385 -nographic -monitor none \
  -semihosting-config enable=on,target=native \
  -kernel "$build/demo.elf" >"$log" 2>&1 || status=$?
grep -v '^log seq=' "$log" || true
echo "cortex-m: $(grep -c '^log seq=' "$log" || true) log lines (in $log)"

fail() {
  echo "cortex-m: FAIL: $*" >&2
  exit 1
}
if [ "$status" -eq 124 ]; then fail "the image did not exit within ${boot_timeout}s (hang)"; fi

"$root/platform/baremetal/check_demo.sh" "$log" || fail "the output does not check out (see above)"
if [ "$status" -ne 0 ]; then fail "QEMU exited with status $status"; fi
echo "cortex-m: demo PASS (exit status 0)"

"$here/size_report.sh" "$build/demo.elf"
