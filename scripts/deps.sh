#!/usr/bin/env bash
# Installs what building and testing imagegate needs, idempotently:
# the wasm32-wasip1 Rust target and Debian's binaryen (wasm-opt, which
# shrinks the built module) and, for the end-to-end tests, Debian's
# docker-registry (OCI registry) and notary (notary-server, notary-signer, CLI).
set -euo pipefail
what="${1:-all}"   # all | build | playground

# Installs the Debian packages among "$@" that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
apt_install binaryen
[ "$what" = build ] && exit 0

# The browser playground (`make playground`, `make playground-test`): the
# wasm32-unknown-unknown target, wasm-bindgen-cli at exactly the version of
# the wasm-bindgen crate in Cargo.lock (the CLI refuses any other), and
# Debian's chromium + chromedriver for the headless browser test. Not part
# of `all`: building wasm-bindgen-cli cold takes about 5 minutes.
if [ "$what" = playground ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
  lock="$(dirname "$0")/../Cargo.lock"
  want=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$lock")
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
  if [ -z "$want" ]; then
    echo "deps.sh: no wasm-bindgen in $lock" >&2; exit 1
  fi
  if [ "$have" != "$want" ]; then
    # Not --locked: wasm-bindgen-cli 0.2.130's own lock file pins a yanked
    # webpki-roots, which cargo then refuses to select.
    cargo install wasm-bindgen-cli --version "=$want"
  fi
  apt_install chromium chromium-driver
  exit 0
fi

apt_install docker-registry notary
