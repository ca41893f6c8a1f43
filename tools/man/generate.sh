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

# The plugin builds its generate-manual tool (and the package) and runs it;
# the tool is then called on the debug binary itself, into dist/man.
swift package generate-manual --multi-page --date "$date" >/dev/null 2>&1 || true
swift build --product cimnbd
tool=$(find .build -name generate-manual-tool -type f -perm -u+x -print -quit)
[ -n "$tool" ] || { echo "the generate-manual plugin did not build its tool" >&2; exit 1; }
rm -rf dist/man
mkdir -p dist/man
"$tool" "$(swift build --show-bin-path)/cimnbd" --multi-page --date "$date" --output-directory dist/man
# Blank lines are not mdoc (groff warns on each); the generator keeps those of the help texts.
sed -i "/^$/d" dist/man/*.1
ls dist/man
