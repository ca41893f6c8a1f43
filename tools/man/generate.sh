#!/usr/bin/env bash
# Regenerates dist/man/*.1 (cimnbd.1 and one page per subcommand) from the
# CLI's own definitions, with swift-argument-parser's generate-manual plugin.
# No make, no network: the plugin builds from the already resolved checkout.
#
#   tools/man/generate.sh
#
# Run it after changing a command, an option or a help text, and commit the
# pages; DistributionTests checks every option appears on its page.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pages carry the date of the last change to the CLI, so regenerating without
# a change gives the same files.
date=$(git log -1 --format=%cs -- Sources/cimnbd 2>/dev/null || true)
[ -n "$date" ] || date=$(date -u +%F)

swift package generate-manual --multi-page --date "$date" --product cimnbd

generated=$(find .build/plugins -path '*GenerateManual*' -name cimnbd.1 -newer Package.swift -print -quit 2>/dev/null || true)
[ -n "$generated" ] || generated=$(find .build/plugins -path '*GenerateManual*' -name cimnbd.1 -print -quit)
[ -n "$generated" ] || { echo "generate-manual produced no cimnbd.1" >&2; exit 1; }
rm -rf dist/man
mkdir -p dist/man
cp "$(dirname "$generated")"/*.1 dist/man/
ls dist/man
