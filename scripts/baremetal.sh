#!/usr/bin/env bash
# Builds every bare-metal port's images and boots each under QEMU with a
# timeout; each port's run.sh checks the UART output (summary counts, test
# runner line, exit status). Exits non-zero if any port fails.
#
#   scripts/baremetal.sh [port...]     (default: every platform/*/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SLUICE_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh

ports=("$@")
if [ ${#ports[@]} -eq 0 ]; then
  for run in platform/*/run.sh; do
    ports+=("$(basename "$(dirname "$run")")")
  done
fi

failed=()
for port in "${ports[@]}"; do
  echo "=== bare metal: $port"
  if ! "platform/$port/run.sh"; then
    failed+=("$port")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "=== bare metal: FAILED: ${failed[*]}"
  exit 1
fi
echo "=== bare metal: passed: ${ports[*]}"
