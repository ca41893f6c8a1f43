#!/bin/sh
# Builds and runs the ext4 synthesizer benchmark in release mode.
# Prints build time, RSS growth / peak RSS, bytes per file and a full
# metadata read time for 100,000 and 1,000,000-file synthetic trees.
# Extra arguments are passed through (e.g. "250000 --image /tmp/x.img").
set -e
cd "$(dirname "$0")/../../.."
swift build -c release --product ext4-bench
exec .build/release/ext4-bench "$@"
