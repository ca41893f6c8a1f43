#!/bin/bash
# How much damage `cimnbd cim verify` lets through: flips one random byte
# (seeded, so runs compare) in each object-id file and each region file of
# every fixture image, FLIPS times per file, and counts the mutated images
# that verify still calls clean (exit 0). Bytes no check can see exist
# (reserved header fields, padding between aligned objects), so the region
# figure does not go to zero; the object-id figure should.
# Usage: tools/bench/verify-mutations/run.sh [CIMNBD_BINARY] [FLIPS]
#        (default .build/debug/cimnbd, 24 flips per file)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
binary=$(realpath "${1:-$root/.build/debug/cimnbd}")
flips=${2:-24}
work=$(mktemp -d /tmp/verify-mutations-XXXXXX)
trap 'rm -rf "$work"' EXIT
RANDOM=8

flip() {  # flip FILE: XORs one random byte with a random non-zero value
    local file=$1 size position old new
    size=$(stat -c %s "$file")
    position=$(( ((RANDOM << 15) | RANDOM) % size ))
    old=$(od -An -tu1 -j "$position" -N1 "$file" | tr -d ' ')
    new=$(( old ^ (1 + RANDOM % 255) ))
    printf "\\x$(printf %02x "$new")" | dd of="$file" bs=1 seek="$position" conv=notrunc status=none
}

declare -A passed total
for folder in "$root"/Tests/Fixtures/*/*/; do
    # The image with the longest header lists every region set of the folder (a fork's child).
    image=$(ls -S "$folder"*.cim | head -1)
    collection=$(basename "$(dirname "$folder")")
    "$binary" cim verify "$image" >/dev/null 2>&1 || { echo "skipped (does not verify clean unmutated): $image"; continue; }
    for file in "$folder"objectid_* "$folder"region_*; do
        kind=${file##*/}; kind="$collection/ ${kind%%_*}"
        for ((i = 0; i < flips; i++)); do
            rm -rf "$work/img" && cp -r "$folder" "$work/img" && chmod -R u+w "$work/img"
            flip "$work/img/${file##*/}"
            total[$kind]=$(( ${total[$kind]:-0} + 1 ))
            if timeout 60 "$binary" cim verify "$work/img/${image##*/}" >/dev/null 2>&1; then
                passed[$kind]=$(( ${passed[$kind]:-0} + 1 ))
            fi
        done
    done
done
for kind in $(printf '%s\n' "${!total[@]}" | sed 's/ /+/' | sort); do
    kind=${kind/+/ }
    echo "$kind files: ${passed[$kind]:-0} of ${total[$kind]} mutated images pass verify"
done
