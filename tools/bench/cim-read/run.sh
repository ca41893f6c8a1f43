#!/bin/bash
# Reader and translator benchmark on a 100,000-file CIM image, beside peers
# doing the same job on the same tree: `find -printf` (walk + stat of the
# Linux tree) and `mkfs.ext4 -d` (an ext4 image of the tree, data copied).
# Usage: tools/bench/cim-read/run.sh [FILES]   (default 100000)
set -euo pipefail
files=${1:-100000}
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
swift build -c release --product cimnbd >/dev/null
swift build -c release --product cim-bench >/dev/null
work=$(mktemp -d /tmp/cim-read-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree" "$work/images"
for ((d = 0; d < (files + 999) / 1000; d++)); do
    mkdir "$work/tree/d$d"
    (cd "$work/tree/d$d" && for ((f = 0; f < 1000 && d * 1000 + f < files; f++)); do echo "$d/$f" > "f$f"; done)
done
.build/release/cimnbd cim create "$work/tree" "$work/images/bench.cim" >/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
echo "== cimnbd ($files files; release build)"
.build/release/cim-bench "$work/images/bench.cim"
echo "== peers on the same tree"
/usr/bin/time -f "find -printf (walk+stat)  %e s   peak RSS %M KiB" find "$work/tree" -printf '%s %T@ %n\n' >/dev/null
/usr/bin/time -f "mkfs.ext4 -d (ext4 image) %e s   peak RSS %M KiB" mkfs.ext4 -q -F -b 4096 -N $((files + 1000)) -d "$work/tree" "$work/peer.ext4" 1G
/usr/bin/time -f "cimnbd export (whole file) %e s   peak RSS %M KiB" .build/release/cimnbd export "$work/images/bench.cim" -o "$work/ours.ext4"
