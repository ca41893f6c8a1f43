#!/bin/bash
# Times `cimnbd cim create`, `cim verify` and `cim extract` on a generated tree.
# Usage: tools/bench/cim-tree/run.sh [FILES] [BIG_FILE_MIB]   (defaults: 20000 files, 256 MiB)
# Uses the release binary if built (swift build -c release), else the debug one.
set -euo pipefail
files=${1:-20000}
big_mib=${2:-256}
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin="$root/.build/release/cimnbd"
[ -x "$bin" ] || bin="$root/.build/debug/cimnbd"
work=$(mktemp -d /tmp/cim-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/out"
for ((d = 0; d < (files + 999) / 1000; d++)); do
    mkdir "$work/src/d$d"
    for ((f = 0; f < 1000 && d * 1000 + f < files; f++)); do echo "file $d/$f" > "$work/src/d$d/f$f"; done
done
head -c $((big_mib << 20)) /dev/urandom > "$work/src/big.bin"
truncate -s 4G "$work/src/sparse.img"
echo "tree: $files small files, ${big_mib} MiB random file, 4 GiB sparse file; binary $bin"
time "$bin" cim create "$work/src" "$work/out/bench.cim"
time "$bin" cim verify "$work/out/bench.cim"
time "$bin" cim extract "$work/out/bench.cim" "$work/extracted"
du -sh "$work/out"
