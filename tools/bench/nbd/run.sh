#!/usr/bin/env bash
# Benchmarks the NBD server: nbdcopy throughput from cimnbd's NBDServer with
# sendfile (FileRegion), with plain buffer copies, and from `nbdkit file` on the
# same bytes. Everything runs on 127.0.0.1.
#
# Usage: tools/bench/nbd/run.sh [MiB] [rounds]
#   CONFIG=release tools/bench/nbd/run.sh   # optimised build (slow first build)
# Needs: nbdcopy (libnbd-bin), nbdkit.
set -euo pipefail
cd "$(dirname "$0")/../../.."
MIB="${1:-512}"
ROUNDS="${2:-3}"
CONFIG="${CONFIG:-debug}"
extra=()
if [ "$CONFIG" = release ]; then
    # The benchmark lives in the test bundle; release tests need testability.
    extra=(-c release -Xswiftc -enable-testing)
fi
NBD_BENCH=1 NBD_BENCH_MIB="$MIB" NBD_BENCH_ROUNDS="$ROUNDS" \
    swift test "${extra[@]}" --filter 'NBDBenchmarkTests' 2>&1 | grep -E '^(BENCH|nbdcopy)|error|failed' || true
