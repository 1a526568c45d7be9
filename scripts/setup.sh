#!/usr/bin/env bash
# Installs the Debian packages sluice's build, tests and benchmark need,
# skipping those already present. Safe to run again.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang-14 libclang-rt-14-dev        # build, sanitizers, fuzzing
  libgtest-dev libgmock-dev                                  # tests
  gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib g++-aarch64-linux-gnu  # freestanding
  qemu-system-arm                                            # bare-metal boots
  libconcurrentqueue-dev libboost-dev libatomic-queue-dev libtbb-dev libasio-dev  # peers
  python3-matplotlib                                         # benchmark plot
)

missing=()
for p in "${packages[@]}"; do
  [ "$p" = "#" ] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
