#!/usr/bin/env bash
# Installs the Debian packages convkit's build, tests and benchmarks need, if any are missing.
# Usage: bash cmake/install-deps.sh [extra packages...]   (as root on Debian; otherwise it only checks)
set -euo pipefail
packages=(cmake make g++ pkg-config libfftw3-dev catch2 libbenchmark-dev libopenblas-dev clang clang-format libclang-rt-14-dev
  libopenmpi-dev openmpi-bin libpng-dev libjpeg-dev libtiff-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "convkit needs these Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
