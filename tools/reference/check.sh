#!/usr/bin/env bash
# Re-runs the reference peers (PyBaMM, pvlib, pandapower) and checks that the committed
# reference data and generated parameter files are what they produce today.
# The working tree is restored afterwards, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."

dirs=(twin/tests/reference twin/params)
saved=$(mktemp -d)
fresh=$(mktemp -d)
for d in "${dirs[@]}"; do mkdir -p "$saved/$d"; cp -a "$d/." "$saved/$d/"; done
restore() {
  for d in "${dirs[@]}"; do rm -rf "$d"; mkdir -p "$d"; cp -a "$saved/$d/." "$d/"; done
  rm -rf "$saved" "$fresh"
}
trap restore EXIT

python3 tools/reference/pybamm_ecm.py
python3 tools/reference/pybamm_spme.py
python3 tools/reference/pybamm_spme_sei.py
python3 tools/reference/pvlib_single_diode.py
python3 tools/reference/pandapower_feeders.py
for d in "${dirs[@]}"; do mkdir -p "$fresh/$d"; cp -a "$d/." "$fresh/$d/"; done
python3 tools/reference/compare.py "$saved" "$fresh"
