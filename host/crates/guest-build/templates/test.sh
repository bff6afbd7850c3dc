#!/bin/sh
# Builds {{name}} and runs it on a small table through wasm-run, as a pipeline would.
set -eu
cd "$(dirname "$0")"
wasm-run build .
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'name,value\na,1.5\nb,2\nc,3.5\n' > "$tmp/table.csv"
wasm-run run target/weft/{{name}}.wasm --input table="$tmp/table.csv" -o totals \
  --output-dir "$tmp/out" -p column=value --json > "$tmp/outcome.json"
grep -q '"value": 7' "$tmp/outcome.json" \
  || { echo "FAIL: expected the total 7 in $(cat "$tmp/outcome.json")"; exit 1; }
echo "ok: {{name}} summed the column to 7"
