#!/usr/bin/env bash
# Instructions per 4 KiB read, counted by callgrind (repeatable on a noisy
# machine, unlike time): the server runs under `valgrind --tool=callgrind`;
# after a warm-up, its counters are zeroed (`callgrind_control -z`), fio sends
# REQUESTS 4 KiB random reads (nbd engine), and the counters are dumped
# (`callgrind_control -d`). Total Ir of that dump / REQUESTS is the figure; the
# idle baseline (a dump over the same wall time with no client) is subtracted.
# The same for `nbdkit file` on the exported volume, as the peer.
#
# Usage: tools/bench/nbd/callgrind.sh [BINARY]   (default: the release build)
#   REQUESTS=20000 IODEPTH=16 PORT_BASE=21100 (environment)
# Prints one line per server and leaves the dumps in $KEEP (default /tmp) for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../../.."
REQUESTS="${REQUESTS:-20000}"
IODEPTH="${IODEPTH:-16}"
PORT_BASE="${PORT_BASE:-21100}"
KEEP="${KEEP:-/tmp}"
export PATH="$PATH:/opt/swift/usr/bin"
BIN="${1:-}"
WORK_NAME=cimnbd-callgrind
. tools/bench/nbd/common.sh

# A smaller tree than run.sh's (the same kinds of files): random reads land
# in file data, as they do there.
mkdir -p "$WORK/tree/big" "$WORK/tree/small" "$WORK/images"
python3 - "$WORK/tree" <<'EOF'
import sys, random
root = sys.argv[1]
rng = random.Random(10)
for i in range(2):
    with open(f"{root}/big/file{i}.bin", "wb") as f:
        f.write(rng.randbytes(64 << 20))
for i in range(200):
    with open(f"{root}/small/s{i:04}.bin", "wb") as f:
        f.write(rng.randbytes(20000))
EOF
"$BIN" cim create "$WORK/tree" "$WORK/images/bench.cim" >&2
"$BIN" export "$WORK/images/bench.cim" -o "$WORK/volume.ext4" >&2
cat "$WORK"/images/* "$WORK/volume.ext4" > /dev/null

total_ir() {  # the summary of the newest dump file of callgrind PID
    local file
    file="$(ls -t "$KEEP/callgrind.$1".out.* 2>/dev/null | head -1)"
    awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

fio_requests() {  # URI COUNT
    fio --output=/dev/null --output-format=terse --name=cg --ioengine=nbd --uri="$1" --rw=randread --bs=4k \
        --iodepth="$IODEPTH" --number_ios="$2" --randseed=10 > /dev/null
}

# measure NAME URI PID: prints "NAME: Ir per request (idle baseline subtracted)"
measure() {
    local name="$1" uri="$2" pid="$3" start end idle busy
    for _ in $(seq 300); do nbdinfo --size "$uri" > /dev/null 2>&1 && break; sleep 0.2; done
    fio_requests "$uri" 2000   # warm-up: caches, allocator pools, lazy setup
    callgrind_control -z "$pid" > /dev/null
    start="$(date +%s.%N)"
    fio_requests "$uri" "$REQUESTS"
    end="$(date +%s.%N)"
    callgrind_control -d "$pid" > /dev/null
    busy="$(total_ir "$pid")"
    callgrind_control -z "$pid" > /dev/null
    sleep "$(echo "$start $end" | awk '{print $2 - $1}')"
    callgrind_control -d "$pid" > /dev/null
    idle="$(total_ir "$pid")"
    echo "$name $busy $idle" | awk -v n="$REQUESTS" -v d="$IODEPTH" \
        '{printf "%s: %.0f instructions per 4 KiB read (iodepth %d, %d requests; %s Ir busy, %s Ir idle over the same time)\n", $1, ($2 - $3) / n, d, n, $2, $3}'
}

# cimnbd NAME PORT [SERVE_OPTION...]: a daemon under callgrind, measured
cimnbd() {
    local name="$1" port="$2" pid guid
    shift 2
    mkdir -p "$WORK/$name"
    valgrind --tool=callgrind --callgrind-out-file="$KEEP/callgrind.%p.out" \
        "$BIN" serve --listen "127.0.0.1:$port" --control "$WORK/$name/control.sock" \
        --state "$WORK/$name/mounts.json" --no-demo "$@" 2> "$WORK/$name/serve.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 3000); do [ -S "$WORK/$name/control.sock" ] && break; sleep 0.2; done
    guid="$("$BIN" mount --control "$WORK/$name/control.sock" "$WORK/images" bench.cim | head -1 | awk '{print $1}')"
    measure "$name" "nbd://127.0.0.1:$port/$guid" "$pid"
    echo "  dumps: $KEEP/callgrind.$pid.out.*"
    kill "$pid"
}
# The default (page-cached reads on the event loop) and the I/O-pool path
# every read took before.
cimnbd cimnbd "$((PORT_BASE + 1))"
cimnbd cimnbd-io-pool "$((PORT_BASE + 3))" --reads-on-io-pool

valgrind --tool=callgrind --callgrind-out-file="$KEEP/callgrind.%p.out" \
    nbdkit --read-only --foreground --ipaddr 127.0.0.1 --port "$((PORT_BASE + 2))" \
    file "$WORK/volume.ext4" 2> "$WORK/nbdkit.log" &
NBDKIT_PID=$!
PIDS+=("$NBDKIT_PID")
measure nbdkit "nbd://127.0.0.1:$((PORT_BASE + 2))/" "$NBDKIT_PID"
echo "  dumps: $KEEP/callgrind.$NBDKIT_PID.out.*"
