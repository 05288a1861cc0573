#!/usr/bin/env bash
# The full check, as the README gives it: installs bitcoind (and, for the browser wallet's
# test, Debian's Chromium and the web app's npm packages) if missing, starts a throwaway
# PostgreSQL cluster unless MICRONODE_TEST_DATABASE_URL names one, then formatting, lints and
# every test (unit, integration and end-to-end, against real bitcoind processes and a real
# browser).
set -euo pipefail
cd "$(dirname "$0")/.."
# A full check builds everything once: incremental-compilation caches would only take disk
# (several GB across ~90 test binaries) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "==> bitcoind"
sh scripts/install-bitcoind.sh
export BITCOIND_EXE="${BITCOIND_EXE:-$PWD/.bitcoind/bin/bitcoind}"
"$BITCOIND_EXE" -version | head -n1

echo "==> PostgreSQL (the fleet store's tests)"
. scripts/test-postgres.sh
trap stop_test_postgres EXIT
start_test_postgres

echo "==> chromium (the browser wallet's end-to-end test drives Debian's Chromium)"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
"$CHROMIUM" --version

echo "==> web wallet: npm ci, typecheck, unit tests, reproducible build equal to the committed web/dist"
bash scripts/web-build.sh --check

echo "==> interop/l402-client: npm ci"
(cd interop/l402-client && npm ci --no-audit --no-fund)

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> interop/ldk-peer: fmt, clippy, build (an ldk-node peer, its own cargo project)"
cargo fmt --manifest-path interop/ldk-peer/Cargo.toml -- --check
cargo clippy --locked --manifest-path interop/ldk-peer/Cargo.toml -- -D warnings
cargo build --locked --manifest-path interop/ldk-peer/Cargo.toml --target-dir interop/ldk-peer/target
export LDK_PEER_EXE="$PWD/interop/ldk-peer/target/debug/ldk-peer"

echo "==> cargo test"
cargo test --workspace "$@"
