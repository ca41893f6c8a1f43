# Shared set-up of run.sh and callgrind.sh, sourced by both: the cimnbd
# binary (BIN, built in release mode when empty) and a work folder (WORK,
# named after WORK_NAME) that is removed on exit, after every process in
# PIDS is stopped.
if [ -z "$BIN" ]; then
    nice -n 10 swift build -c release --product cimnbd >&2
    BIN="$(swift build -c release --show-bin-path)/cimnbd"
fi

WORK="$(mktemp -d "/tmp/$WORK_NAME.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
