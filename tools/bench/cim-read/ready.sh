#!/bin/bash
# Mount -> export ready: the time (and peak RSS) from opening a CIM to the
# first read the ext4 volume can serve, beside `mke2fs -t ext4 -d TREE` on the
# same tree, in one run. Two trees: 100,000 files totalling 1 GiB, and
# 1,000,000 small files (sparse content: a line of text, then a hole; the CIMs
# are real, written by `cimnbd cim create`). Each figure is the median of RUNS
# fresh processes (page cache warm for both sides); the ratio is peer/cimnbd
# for time (above 1: cimnbd is faster) and cimnbd/peer for RSS.
# Usage: [TREE_CACHE=DIR] tools/bench/cim-read/ready.sh [RUNS [FILES...]]
#        (defaults 3, 100000 1000000). Release build. Needs /usr/bin/time.
set -euo pipefail
runs=${1:-3}
counts=("${@:2}")
[ ${#counts[@]} -gt 0 ] || counts=(100000 1000000)
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
# SKIP_BUILD=1 uses the release binaries as they are.
[ -n "${SKIP_BUILD:-}" ] || swift build -c release --product cimnbd >/dev/null
[ -n "${SKIP_BUILD:-}" ] || swift build -c release --product cim-bench >/dev/null
work=$(mktemp -d /tmp/cim-ready-bench-XXXXXX)
peer=$(mktemp -d /dev/shm/cim-ready-peer-XXXXXX)
trap 'rm -rf "$work" "$peer"' EXIT

# tree DIR FILES TOTAL_BYTES: FILES files, 1000 per directory, sizes summing to TOTAL_BYTES.
tree() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
top, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base, extra = divmod(total, files)
for f in range(files):
    d = os.path.join(top, "d%d" % (f // 1000))
    if f % 1000 == 0:
        os.makedirs(d)
    size = base + (1 if f < extra else 0)
    with open(os.path.join(d, "file-%d.dat" % f), "wb") as out:
        head = b"%d\n" % f
        out.write(head[:size])
        if size > len(head):
            out.truncate(size)
PY
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-34s %10s %10s %12s %12s %8s %8s\n' "tree" "cimnbd s" "mke2fs s" "cimnbd MiB" "mke2fs MiB" "time x" "RSS x"
for files in "${counts[@]}"; do
    total=$((1 << 30))
    label="$files files / $((total >> 20)) MiB"
    # TREE_CACHE=DIR keeps DIR/tree-FILES and DIR/img-FILES between runs
    # (made here when missing); without it both are made afresh in $work.
    cache=${TREE_CACHE:-$work}
    src="$cache/tree-$files"; img="$cache/img-$files"
    if [ ! -d "$src" ] || [ ! -f "$img/bench.cim" ]; then
        rm -rf "$src" "$img"; mkdir -p "$src" "$img"
        tree "$src" "$files" "$total"
        .build/release/cimnbd cim create "$src" "$img/bench.cim" >/dev/null
    fi
    cat "$img"/* >/dev/null
    ours_s=(); ours_m=(); peer_s=(); peer_m=()
    for ((r = 0; r < runs; r++)); do
        line=$(.build/release/cim-bench --ready "$img/bench.cim")
        ours_s+=("$(awk '{ print $2 }' <<<"$line")")
        ours_m+=("$(awk '{ print $5 }' <<<"$line")")
        # mke2fs gets the inode count it needs and room for the data.
        # Every file takes whole blocks; inode tables take 256 bytes per inode.
        blocks=$(( files * ((total / files + 4095) / 4096 + 1) + files / 16 + 65536 ))
        out=$(/usr/bin/time -f "%e %M" mke2fs -q -F -t ext4 -b 4096 -N $((files + 1000)) -d "$src" "$peer/peer.ext4" "$blocks" 2>&1 >/dev/null | tail -1)
        rm -f "$peer/peer.ext4"
        peer_s+=("$(awk '{ print $1 }' <<<"$out")")
        peer_m+=("$(awk '{ printf "%.1f", $2 / 1024 }' <<<"$out")")
        echo "  run $((r + 1)): cimnbd ${ours_s[-1]} s ${ours_m[-1]} MiB; mke2fs -d ${peer_s[-1]} s ${peer_m[-1]} MiB" >&2
    done
    os=$(printf '%s\n' "${ours_s[@]}" | median); om=$(printf '%s\n' "${ours_m[@]}" | median)
    ps=$(printf '%s\n' "${peer_s[@]}" | median); pm=$(printf '%s\n' "${peer_m[@]}" | median)
    printf '%-34s %10.3f %10.3f %12.1f %12.1f %8.2f %8.2f\n' "$label" "$os" "$ps" "$om" "$pm" \
        "$(awk -v a="$ps" -v b="$os" 'BEGIN { print a / b }')" "$(awk -v a="$om" -v b="$pm" 'BEGIN { print a / b }')"
done
echo "cimnbd: open CIM + build ext4 Volume + first read (median of $runs fresh processes, cim-bench --ready)"
echo "mke2fs: mke2fs -q -t ext4 -b 4096 -N FILES+1000 -d TREE onto tmpfs (median of $runs, /usr/bin/time)"
echo "time x = mke2fs s / cimnbd s; RSS x = cimnbd MiB / mke2fs MiB; $(nproc) cores, $(date -u +%F)"
