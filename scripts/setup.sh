#!/usr/bin/env bash
# Installs exactly the Debian packages mpitrain needs to build, test and run,
# and only the ones that are missing (idempotent; no network but Debian's).
set -euo pipefail

packages=(
  g++ make cmake pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libopenblas-dev
  libboost-program-options-dev
  libgtest-dev
  zlib1g-dev
  iproute2
  python3-numpy python3-matplotlib python3-pytest
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
