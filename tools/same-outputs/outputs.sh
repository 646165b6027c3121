#!/usr/bin/env bash
# Runs the outputs a refactor must keep byte-identical and writes their
# SHA-256 list.
#
#   tools/same-outputs/outputs.sh MASLOW_BIN REPO_DIR OUT_DIR
#
# MASLOW_BIN: a `maslow` binary (release); REPO_DIR: the checkout it was
# built from (feature files, rig, house, controller and fleet files are read
# from there); OUT_DIR: where the runs write (replaced). Writes
# OUT_DIR/hashes.txt: one `sha256  path` line per file, sorted by path:
#   - the feature suite on rigs/sim.toml (every scenario not @known-gap):
#     each scenario's signals.csv, can.log, p1.log, decisions.csv, events.csv;
#   - `maslow twin house --controller firmware/config/terrace.toml`, a day
#     sampled every second;
#   - `maslow fleet run rigs/fleets/two_branches.toml`: branches.csv,
#     compliance.json, compliance.csv, summary.txt.
# A failing scenario does not stop the list (its files are hashed like any
# other); the exit status of each run is written to OUT_DIR/status.txt.
set -uo pipefail
maslow="$(realpath "$1")"
repo="$(realpath "$2")"
out="$3"
rm -rf "$out"
mkdir -p "$out"
out="$(realpath "$out")"
cd "$repo" || exit 2

status() { echo "$1 exit $2" >> "$out/status.txt"; }

"$maslow" test --rig rigs/sim.toml --report-dir "$out/suite" > "$out/suite.log" 2>&1
status suite $?
mkdir -p "$out/house"
"$maslow" twin house --controller firmware/config/terrace.toml --hours 24 \
  --sample-s 1 --out "$out/house/day.csv" > "$out/house.log" 2>&1
status house $?
"$maslow" fleet run rigs/fleets/two_branches.toml --out "$out/fleet" > "$out/fleet.log" 2>&1
status fleet $?

cd "$out" || exit 2
{
  find suite/scenarios -type f \( -name signals.csv -o -name can.log -o -name p1.log \
    -o -name decisions.csv -o -name events.csv \) 2>/dev/null
  find house -type f -name '*.csv' 2>/dev/null
  find fleet -type f \( -name branches.csv -o -name 'compliance.*' -o -name summary.txt \) 2>/dev/null
} | LC_ALL=C sort | xargs -r sha256sum > hashes.txt
echo "$(wc -l < hashes.txt) files hashed in $out/hashes.txt"
cat status.txt
