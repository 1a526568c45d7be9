#!/usr/bin/env bash
# Instructions per packet of the packet buffer's single-thread cycle (alloc,
# fill, commit, claim, check, free), counted by callgrind: a figure that does
# not move with the machine's load, for comparing changes to the fast paths.
# Builds the release preset's sluice_cycle_count, runs it for 50,000 and
# 100,000 cycles per case and prints the difference over 50,000 (start-up
# cancels out). Needs valgrind (Debian: valgrind).
#   scripts/cycle_instructions.sh [SIZE]   buffer size in words (default 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-4096}"
command -v valgrind >/dev/null || { echo "cycle_instructions: needs valgrind" >&2; exit 2; }
cmake --preset release >/dev/null
cmake --build --preset release --target sluice_cycle_count >/dev/null
bin=build/release/bench/sluice_cycle_count
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {  # words policy cycles -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$1" "$2" "$3" "$size" 2>&1 \
    >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-10s %8s %8s %8s %8s   (instructions per packet, buffer of %s words)\n' \
  policy w1 w4 w16 w64 "$size"
for policy in reject drop; do
  line=$(printf '%-10s' "$policy")
  for words in 1 4 16 64; do
    a=$(count "$words" "$policy" 50000)
    b=$(count "$words" "$policy" 100000)
    line+=$(printf ' %8d' $(((b - a) / 50000)))
  done
  echo "$line"
done
