#!/bin/sh
# The README's layer table comes from the registry (cnnviz-dump --list-layers).
#   readme_layers.sh TOOL          exit 1 if README.md is out of date
#   readme_layers.sh TOOL --write  rewrite the table in README.md
set -eu
tool=$1
table=$(mktemp)
trap 'rm -f "$table" "$table.new"' EXIT
{
	echo "| Keras class | runs as |"
	echo "|---|---|"
	"$tool" --list-layers | awk '{printf "| %s | %s |\n", $1, $2}'
} > "$table"
awk -v t="$table" '
	/<!-- layers:begin -->/ { print; while ((getline l < t) > 0) print l; skip = 1; next }
	/<!-- layers:end -->/ { skip = 0 }
	!skip { print }' README.md > "$table.new"
if [ "${2:-}" = "--write" ]; then
	cp "$table.new" README.md
elif ! cmp -s "$table.new" README.md; then
	echo "README.md: the layer table is out of date; run: make readme" >&2
	exit 1
fi
