#!/usr/bin/env bash
# The NBD read-path benchmark of issue 10, in one run and one table:
# `cimnbd serve` (from a CIM) against `nbdkit file` and `qemu-nbd` (read-only,
# on the ext4 volume `cimnbd export` writes from the same CIM), page cache warm.
#
#   - nbdcopy to null:, 4 and 1 connections (GiB/s)
#   - fio nbd engine, 4 KiB randread, iodepth 16 and 1 (IOPS, p99 latency), and
#     iodepth 1 once more with fio and the server pinned to core 0 (taskset)
#   - server CPU per 4 KiB read: utime+stime (/proc/PID/stat) over the
#     iodepth-16 fio run divided by the requests fio completed
#   - server thread migrations per read at iodepth 1 (perf stat, when perf is installed)
#   - cimnbd's RSS at the start and end of a 60 s fio run
# Medians of ROUNDS rounds (each server measured once per round, in turn);
# ratios are cimnbd / the best peer.
#
# Usage: tools/bench/nbd/run.sh [OUTPUT_FILE]
#   ROUNDS=3 FIO_SECONDS=8 RSS_SECONDS=60 PORT_BASE=21000 CIMNBD=binary (environment)
# Needs: nbdkit, qemu-nbd (qemu-utils), nbdcopy/nbdinfo (libnbd-bin), fio, jq.
# Loopback only, ports PORT_BASE+1..+3. Takes about 10 minutes plus the build.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS="${ROUNDS:-3}"
FIO_SECONDS="${FIO_SECONDS:-8}"
RSS_SECONDS="${RSS_SECONDS:-60}"
PORT_BASE="${PORT_BASE:-21000}"
OUT="${1:-}"
export PATH="$PATH:/opt/swift/usr/bin"

BIN="${CIMNBD:-}"   # a cimnbd binary to use instead of building one
WORK_NAME=cimnbd-nbd-bench
. tools/bench/nbd/common.sh

# --- The tree, the CIM, the exported volume ---------------------------------
echo "building the tree (8 x 256 MiB + 2,000 x 20 kB)..." >&2
mkdir -p "$WORK/tree/big" "$WORK/tree/small" "$WORK/images"
python3 - "$WORK/tree" <<'EOF'
import os, sys, random
root = sys.argv[1]
rng = random.Random(10)
for i in range(8):
    with open(f"{root}/big/file{i}.bin", "wb") as f:
        for _ in range(256):
            f.write(rng.randbytes(1 << 20))
for i in range(2000):
    with open(f"{root}/small/s{i:04}.bin", "wb") as f:
        f.write(rng.randbytes(20000))
EOF
"$BIN" cim create "$WORK/tree" "$WORK/images/bench.cim" >&2
rm -rf "$WORK/tree"
# One volume GUID (it is the ext4 UUID) for the mount and the export, so
# that all three servers serve the same bytes.
GUID=0a10be0c-0000-4000-8000-00000000b10c
"$BIN" export "$WORK/images/bench.cim" -o "$WORK/volume.ext4" --volume-id "$GUID" >&2

warm() { cat "$WORK"/images/* "$WORK/volume.ext4" > /dev/null 2>&1 || true; }

# --- The servers --------------------------------------------------------------
"$BIN" serve --listen "127.0.0.1:$((PORT_BASE + 1))" --control "$WORK/control.sock" \
    --state "$WORK/mounts.json" --no-demo 2> "$WORK/serve.log" &
CIMNBD_PID=$!
PIDS+=("$CIMNBD_PID")
for _ in $(seq 100); do [ -S "$WORK/control.sock" ] && break; sleep 0.1; done
"$BIN" mount --control "$WORK/control.sock" "$WORK/images" bench.cim --volume-id "$GUID" > /dev/null
CIMNBD_URI="nbd://127.0.0.1:$((PORT_BASE + 1))/$GUID"

nbdkit --read-only --foreground --exit-with-parent --ipaddr 127.0.0.1 --port "$((PORT_BASE + 2))" \
    --pidfile "$WORK/nbdkit.pid" file "$WORK/volume.ext4" &
PIDS+=($!)
NBDKIT_URI="nbd://127.0.0.1:$((PORT_BASE + 2))/"

qemu-nbd --read-only --persistent --shared=16 --format=raw --bind=127.0.0.1 --port="$((PORT_BASE + 3))" \
    "$WORK/volume.ext4" &
QEMU_PID=$!
PIDS+=("$QEMU_PID")
QEMU_URI="nbd://127.0.0.1:$((PORT_BASE + 3))/"

for uri in "$CIMNBD_URI" "$NBDKIT_URI" "$QEMU_URI"; do
    for _ in $(seq 100); do nbdinfo --size "$uri" > /dev/null 2>&1 && break; sleep 0.1; done
done
NBDKIT_PID="$(cat "$WORK/nbdkit.pid")"
SIZE="$(nbdinfo --size "$CIMNBD_URI")"
[ "$SIZE" = "$(nbdinfo --size "$NBDKIT_URI")" ] || { echo "volume sizes differ" >&2; exit 1; }
# The same bytes from every server (a benchmark of a wrong answer is worthless).
for uri in "$CIMNBD_URI" "$NBDKIT_URI" "$QEMU_URI"; do
    nbdcopy "$uri" - | md5sum | cut -d' ' -f1
done | sort -u | wc -l | grep -qx 1 || { echo "servers disagree on the volume's bytes" >&2; exit 1; }

# --- Measurements -------------------------------------------------------------
# perf, when installed (Debian's linux-perf), counts how often the server's
# threads change cores: the figure behind the free-running iodepth-1 row.
PERF="$(command -v perf || true)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
TICK="$(getconf CLK_TCK)"

# nbdcopy URI CONNECTIONS -> GiB/s
copy_rate() {
    local start end
    start="$(date +%s.%N)"
    nbdcopy --connections="$2" "$1" null:
    end="$(date +%s.%N)"
    echo "$SIZE $start $end" | awk '{printf "%.3f\n", $1 / ($3 - $2) / 1073741824}'
}

# fio URI IODEPTH SECONDS PID [CPUS] [COUNT_MIGRATIONS]
#   -> "IOPS P99_US CPU_US_PER_REQUEST MIGRATIONS_PER_REQUEST"
# (with CPUS, fio runs on those cores only). With COUNT_MIGRATIONS (any
# non-empty word) and perf installed, the migrations are those of the
# server's threads over the run (the ones it starts for the connection
# included), as `perf stat -e cpu-migrations` counts them; else, or when
# perf cannot count them, -1.
fio_run() {
    local before after pin=() perf_pid="" migrations=-1
    [ -n "${5:-}" ] && pin=(taskset -c "$5")
    if [ -n "$PERF" ] && [ -n "${6:-}" ]; then
        # Counts until SIGINT, which it answers by writing the counts.
        "$PERF" stat -x, -e cpu-migrations -p "$4" -o "$WORK/migrations.csv" &
        perf_pid=$!
        # Time to attach: it follows only threads started after it has (such
        # as nbdkit's for the connection), and says nothing when it has.
        sleep 0.2
    fi
    before="$(cpu_ticks "$4")"
    # --output: fio prints "connected to NBD server" on stdout.
    "${pin[@]}" fio --output="$WORK/fio.json" --output-format=json --name=randread --ioengine=nbd --uri="$1" --rw=randread --bs=4k \
        --iodepth="$2" --runtime="$3" --time_based --norandommap --randrepeat=0 --percentile_list=99
    after="$(cpu_ticks "$4")"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true  # 130: stopped by the SIGINT
        migrations="$(awk -F, '$3 == "cpu-migrations" {print $1}' "$WORK/migrations.csv")"
        [[ "$migrations" =~ ^[0-9]+$ ]] || migrations=-1  # "<not supported>", "<not counted>"
    fi
    jq -r --argjson ticks "$((after - before))" --argjson hz "$TICK" --argjson migrations "$migrations" \
        '.jobs[0].read | "\(.iops) \(.clat_ns.percentile["99.000000"] / 1000) \($ticks / $hz * 1e6 / .total_ios) \(if $migrations < 0 then -1 else $migrations / .total_ios end)"' "$WORK/fio.json"
}

# Every figure is measured once per server per round, the servers taking
# turns, so that a noisy minute of this shared machine falls on all of them
# rather than on whichever server happened to be measured then.
SERVERS=(cimnbd nbdkit qemu-nbd)
declare -A URI=([cimnbd]="$CIMNBD_URI" [nbdkit]="$NBDKIT_URI" [qemu-nbd]="$QEMU_URI")
declare -A PID=([cimnbd]="$CIMNBD_PID" [nbdkit]="$NBDKIT_PID" [qemu-nbd]="$QEMU_PID")
declare -A SAMPLES RESULT
# sample NAME KEY IODEPTH [CPUS]: one fio run of server NAME; its IOPS, p99
# and CPU per read are added to the samples iopsKEY, p99_KEY and cpuKEY, and
# for KEY 1 (free-running iodepth 1, the one figure they explain) its thread
# migrations per read to migr1.
sample() {
    local iops p99 cpu migrations count=""
    [ "$2" = 1 ] && count=migrations
    read -r iops p99 cpu migrations < <(fio_run "${URI[$1]}" "$3" "$FIO_SECONDS" "${PID[$1]}" "${4:-}" "$count")
    SAMPLES[$1,iops$2]+="$iops"$'\n'
    SAMPLES[$1,p99_$2]+="$p99"$'\n'
    SAMPLES[$1,cpu$2]+="$cpu"$'\n'
    if [ -n "$count" ]; then SAMPLES[$1,migr1]+="$migrations"$'\n'; fi
}
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
warm
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS..." >&2
    for connections in 4 1; do
        for name in "${SERVERS[@]}"; do
            SAMPLES[$name,copy$connections]+="$(copy_rate "${URI[$name]}" "$connections")"$'\n'
        done
    done
    for depth in 16 1; do
        for name in "${SERVERS[@]}"; do sample "$name" "$depth" "$depth"; done
    done
    # iodepth 1 again with fio and every thread of the server on core 0: one
    # request at a time is mostly two wake-ups, and on this virtual machine a
    # wake-up across cores costs some 30 µs, so the free-running figure says
    # how often the scheduler happened to put client and server together.
    for name in "${SERVERS[@]}"; do
        taskset -a -p -c 0 "${PID[$name]}" > /dev/null
        sample "$name" 1pin 1 0
        taskset -a -p -c "0-$(($(nproc) - 1))" "${PID[$name]}" > /dev/null
    done
done
for key in "${!SAMPLES[@]}"; do
    RESULT[$key]="$(echo -n "${SAMPLES[$key]}" | median)"
done

echo "cimnbd RSS over a ${RSS_SECONDS} s fio run..." >&2
RSS_START="$(rss_kib "$CIMNBD_PID")"
fio_run "$CIMNBD_URI" 16 "$RSS_SECONDS" "$CIMNBD_PID" > /dev/null
RSS_END="$(rss_kib "$CIMNBD_PID")"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- The table ----------------------------------------------------------------
best() {  # KEY [min] -> the best peer's value (max, or min with "min")
    local a="${RESULT[nbdkit,$1]}" b="${RESULT[qemu-nbd,$1]}"
    if [ "${2:-max}" = min ]; then awk -v a="$a" -v b="$b" 'BEGIN {print (a < b ? a : b)}'
    else awk -v a="$a" -v b="$b" 'BEGIN {print (a > b ? a : b)}'; fi
}
row() {  # LABEL KEY FORMAT [min]
    local c="${RESULT[cimnbd,$2]}" k="${RESULT[nbdkit,$2]}" q="${RESULT[qemu-nbd,$2]}" peer
    peer="$(best "$2" "${4:-max}")"
    awk -v l="$1" -v f="$3" -v c="$c" -v k="$k" -v q="$q" -v p="$peer" -v m="${4:-max}" 'BEGIN {
        r = (m == "min") ? p / c : c / p
        printf "| %s | " f " | " f " | " f " | %.2f |\n", l, c, k, q, r }'
}
{
    echo "# NBD read path, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD)"
    echo
    echo "Volume: $SIZE bytes (8 x 256 MiB + 2,000 x 20 kB files), page cache warm;"
    echo "medians of $ROUNDS rounds, the servers taking turns within each; fio runs ${FIO_SECONDS} s each. Load average at start: $LOAD_START, at end: $LOAD_END."
    echo
    echo "| figure | cimnbd | nbdkit | qemu-nbd | cimnbd / best peer |"
    echo "|---|---|---|---|---|"
    row "nbdcopy, 4 connections (GiB/s)" copy4 "%.2f"
    row "nbdcopy, 1 connection (GiB/s)" copy1 "%.2f"
    row "fio nbd, 4 KiB randread, iodepth 16 (IOPS)" iops16 "%.0f"
    row "same, iodepth 1 (IOPS)" iops1 "%.0f"
    row "p99 latency, iodepth 16 (µs; ratio best peer / cimnbd)" p99_16 "%.0f" min
    row "p99 latency, iodepth 1 (µs; ratio best peer / cimnbd)" p99_1 "%.0f" min
    row "server CPU per 4 KiB read, iodepth 16 (µs; ratio cimnbd / nbdkit below)" cpu16 "%.2f" min
    row "server CPU per 4 KiB read, iodepth 1 (µs)" cpu1 "%.2f" min
    row "iodepth 1, fio and server on one core (IOPS)" iops1pin "%.0f"
    row "p99 latency, iodepth 1, one core (µs; ratio best peer / cimnbd)" p99_1pin "%.0f" min
    row "server CPU per 4 KiB read, iodepth 1, one core (µs)" cpu1pin "%.2f" min
    echo
    awk -v c="${RESULT[cimnbd,cpu16]}" -v k="${RESULT[nbdkit,cpu16]}" \
        'BEGIN {printf "Server CPU per 4 KiB read at iodepth 16, cimnbd / nbdkit: %.2f (target <= 0.8)\n", c / k}'
    awk -v c="${RESULT[cimnbd,cpu1]}" -v k="${RESULT[nbdkit,cpu1]}" \
        'BEGIN {printf "Server CPU per 4 KiB read at iodepth 1, cimnbd / nbdkit: %.2f\n", c / k}'
    # Not a target: it says how often the scheduler moved a server's threads
    # (for example onto the core of the client that woke them), which is what
    # the free-running iodepth-1 figures above depend on.
    if [ "${RESULT[cimnbd,migr1]}" != -1 ]; then
        echo
        awk -v c="${RESULT[cimnbd,migr1]}" -v k="${RESULT[nbdkit,migr1]}" -v q="${RESULT[qemu-nbd,migr1]}" \
            'BEGIN {printf "Server thread migrations per read, iodepth 1, free-running (perf stat): cimnbd %.3f, nbdkit %.3f, qemu-nbd %.3f\n\n", c, k, q}'
    fi
    echo "cimnbd RSS over a ${RSS_SECONDS} s fio run (iodepth 16): start ${RSS_START} KiB, end ${RSS_END} KiB"
} | tee ${OUT:+"$OUT"}
