#!/usr/bin/env bash
# Installs the Debian 12 packages seqgrad builds with, plus any named as arguments, if any is
# missing. Quick and silent when everything is there; needs root (or sudo) only to install.
set -euo pipefail

packages=(build-essential cmake libxsimd-dev libfmt-dev catch2 libbenchmark-dev nlohmann-json3-dev libcli11-dev pkg-config
          libopenmpi-dev openmpi-bin iproute2 "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "seqgrad: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "seqgrad: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
