#!/usr/bin/env bash
# Installs what building and testing imagegate needs, idempotently:
# the wasm32-wasip1 Rust target and, for the end-to-end tests, Debian's
# docker-registry (OCI registry), notary (notary-server, notary-signer, CLI)
# and binaryen (wasm-opt, only to report the optimized module size).
set -euo pipefail
what="${1:-all}"   # all | build

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
[ "$what" = build ] && exit 0

missing=()
for pkg in docker-registry notary binaryen; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
