#!/usr/bin/env bash
# Payment throughput of micronode against ldk-node 0.7.1, one right after the other on this
# machine, with the same method (docs/benchmarks.md, "Payment throughput"), and their ratio.
#
#   scripts/bench-vs-ldk-node.sh            # 3,000 payments of 1,000 sat and of 1 sat
#   BENCH_AMOUNTS="1000" BENCH_PAYMENTS=600 scripts/bench-vs-ldk-node.sh
#
# micronode runs `cargo bench -p micronode-node --bench throughput`; ldk-node runs
# `ldk-throughput` from interop/ldk-peer (its own cargo project: ldk-node's rusqlite conflicts
# with ours), built in release. Each starts its own regtest bitcoind. BENCH_WORKERS and
# BENCH_PAYMENTS apply to both.
set -euo pipefail
cd "$(dirname "$0")/.."

sh scripts/install-bitcoind.sh >/dev/null
export BITCOIND_EXE="${BITCOIND_EXE:-$PWD/.bitcoind/bin/bitcoind}"
amounts="${BENCH_AMOUNTS:-1000 1}"

echo "==> building both (release)"
cargo bench -p micronode-node --bench throughput --no-run 2>&1 | tail -n 1
cargo build --release --locked --manifest-path interop/ldk-peer/Cargo.toml \
    --target-dir interop/ldk-peer/target --bin ldk-throughput 2>&1 | tail -n 1
ldk_exe="$PWD/interop/ldk-peer/target/release/ldk-throughput"

# The "payments/s" figure of a benchmark's output.
rate() { awk '/payments\/s/ { print $2 }' "$1" | tail -n 1; }

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
summary=()
for amount in $amounts; do
    echo "==> micronode, ${amount} sat"
    BENCH_AMOUNT_SAT="$amount" cargo bench -p micronode-node --bench throughput 2>/dev/null \
        | tee "$log_dir/micronode-$amount"
    echo "==> ldk-node 0.7.1, ${amount} sat"
    BENCH_AMOUNT_SAT="$amount" "$ldk_exe" | tee "$log_dir/ldk-node-$amount"
    ours="$(rate "$log_dir/micronode-$amount")"
    theirs="$(rate "$log_dir/ldk-node-$amount")"
    ratio="$(awk -v a="$ours" -v b="$theirs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
    summary+=("${amount} sat: micronode ${ours}/s, ldk-node ${theirs}/s, ratio ${ratio}")
done

echo "==> side by side (same machine, one after the other)"
printf '  %s\n' "${summary[@]}"
