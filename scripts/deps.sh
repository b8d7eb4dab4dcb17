#!/usr/bin/env bash
# Installs what building and testing imagegate needs, idempotently:
# the wasm32-wasip1 Rust target and Debian's binaryen (wasm-opt, which
# shrinks the built module) and, for the end-to-end tests, Debian's
# docker-registry (OCI registry), notary (notary-server, notary-signer, CLI)
# redis-server (the shared cache of `imagegate serve`) and a project-local
# Python venv (.venv) with kubernetes-validate, which checks the scaffolded
# Kubernetes objects against the API schemas.
set -euo pipefail
what="${1:-all}"   # all | build | playground | playground-test | image
root="$(cd "$(dirname "$0")/.." && pwd)"
KUBERNETES_VALIDATE_VERSION=1.37.0

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

# The browser playground. `make playground`: the wasm32-unknown-unknown
# target and wasm-bindgen-cli at exactly the version of the wasm-bindgen
# crate in Cargo.lock (the CLI refuses any other). `make playground-test`
# also needs Debian's chromium + chromedriver for the headless browser test.
# Not part of `all`: building wasm-bindgen-cli cold takes minutes.
if [ "$what" = playground ] || [ "$what" = playground-test ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
  lock="$(dirname "$0")/../Cargo.lock"
  want=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$lock")
  if [ -z "$want" ]; then
    echo "deps.sh: no wasm-bindgen in $lock" >&2; exit 1
  fi
  # Not installed yet is the usual case on a fresh machine: no version, not
  # an error (under pipefail a missing command would end the script).
  have=""
  if command -v wasm-bindgen >/dev/null 2>&1; then
    have=$(wasm-bindgen --version | awk '{print $2}')
  fi
  if [ "$have" != "$want" ]; then
    # Not --locked: wasm-bindgen-cli 0.2.130's own lock file pins a yanked
    # webpki-roots, which cargo then refuses to select. Built in cargo's own
    # temporary directory, not the project's target dir (deleted afterwards).
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "=$want"
    have=$(command -v wasm-bindgen >/dev/null 2>&1 && wasm-bindgen --version | awk '{print $2}' || true)
    if [ "$have" != "$want" ]; then
      echo "deps.sh: wasm-bindgen $want was installed into ${CARGO_HOME:-$HOME/.cargo}/bin, but the wasm-bindgen on PATH is ${have:-missing}: put that directory first on PATH" >&2
      exit 1
    fi
  fi
  if [ "$what" = playground-test ]; then
    apt_install chromium chromium-driver
  fi
  exit 0
fi

# The container image (`make image`, `make image-test`): a static binary
# needs the musl target and Debian's musl-gcc (aws-lc-sys compiles C with
# it); the image ships the build machine's CA bundle. Not part of `all`:
# the static build is a second cold build of the whole dependency graph.
if [ "$what" = image ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
  fi
  apt_install musl-tools ca-certificates
  exit 0
fi

apt_install docker-registry notary redis-server python3-venv
venv="$root/.venv"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
