#!/usr/bin/env bash
# The full check, as the README gives it: installs bitcoind if missing, then formatting,
# lints and every test (unit, integration and end-to-end, against real bitcoind processes).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> bitcoind"
sh scripts/install-bitcoind.sh
export BITCOIND_EXE="${BITCOIND_EXE:-$PWD/.bitcoind/bin/bitcoind}"
"$BITCOIND_EXE" -version | head -n1

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
