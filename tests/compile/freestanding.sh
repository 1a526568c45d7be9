#!/usr/bin/env bash
# Compiles every core header alone for Cortex-M4 and AArch64, freestanding,
# compiles the engines in src/ that must run without an OS, then links
# freestanding_main.cpp with those engines and -nostdlib for both.
set -euo pipefail
root=$1
out=$2
mkdir -p "$out"
common=(-std=c++20 -ffreestanding -fno-exceptions -fno-rtti -Wall -Wextra -Wpedantic -Werror
        -Os -I"$root/include")
arm=(arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -mfloat-abi=soft)
a64=(aarch64-linux-gnu-g++ -mno-outline-atomics -mgeneral-regs-only)

fail=0
headers=$(cd "$root/include" && find sluice -maxdepth 2 -name '*.hpp' -not -path '*/hosted/*' | sort)
for h in $headers; do
  for target in arm a64; do
    if [ "$target" = arm ]; then cc=("${arm[@]}"); else cc=("${a64[@]}"); fi
    # -nostdinc++ is not used: the freestanding subset of libstdc++ is
    # allowed; OS headers are caught by the link below and by review.
    if ! printf '#include <%s>\n' "$h" |
        "${cc[@]}" "${common[@]}" -x c++ -c - -o "$out/$(echo "$h" | tr / _).$target.o"; then
      echo "FAIL: $h does not compile freestanding for $target"
      fail=1
    fi
  done
done

# Compiled engines that must run without an operating system.
engines=(src/packet_buffer.cpp)
for e in "${engines[@]}"; do
  for target in arm a64; do
    if [ "$target" = arm ]; then cc=("${arm[@]}"); else cc=("${a64[@]}"); fi
    if ! "${cc[@]}" "${common[@]}" -c "$root/$e" -o "$out/$(basename "$e" .cpp).$target.o"; then
      echo "FAIL: $e does not compile freestanding for $target"
      fail=1
    fi
  done
done

for target in arm a64; do
  if [ "$target" = arm ]; then cc=("${arm[@]}"); else cc=("${a64[@]}"); fi
  if ! "${cc[@]}" "${common[@]}" -nostdlib -static -Wl,-e,_start -Wl,--gc-sections \
      -ffunction-sections -fdata-sections \
      "$root/tests/compile/freestanding_main.cpp" "$root/platform/baremetal/runtime.cpp" \
      "${engines[@]/#/$root/}" \
      -o "$out/freestanding_main.$target.elf"; then
    echo "FAIL: freestanding program does not link for $target"
    fail=1
  else
    # No symbol of the hosted C or C++ runtime may have crept in.
    if nm -u "$out/freestanding_main.$target.elf" | grep -q .; then
      echo "FAIL: unresolved symbols in the freestanding program for $target:"
      nm -u "$out/freestanding_main.$target.elf"
      fail=1
    fi
  fi
done

n=$(echo "$headers" | wc -w)
if [ $fail -ne 0 ]; then
  echo "freestanding: failures (checked $n headers)"
  exit 1
fi
echo "freestanding: $n headers and ${#engines[@]} engine(s) x 2 targets compiled, program linked for 2 targets"
