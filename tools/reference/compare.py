"""Compare two trees of generated reference files: CSV and TOML tables
numerically (relative 1e-7, absolute 1e-12; numbers inside comment lines
too), everything else byte for byte.

Why 1e-7: the peers' results are not bit-reproducible across CPUs. numpy
picks its SIMD kernels at run time (AVX-512 where the CPU has it, AVX2 where
not), and the same pinned packages then move results in the 9th digit:
measured up to 7.5e-9 relative (pandapower's feeder voltages, whose own
convergence tolerance is 1e-8 MVA), 2.6e-9 (PyBaMM's SEI cycles), 2.1e-9
(pvlib's single-diode points). A changed peer or model moves them by far
more; the twin's tests judge against these references at 1e-6 and coarser.

Usage: python3 compare.py SAVED_DIR REGENERATED_DIR
Exits 1 and names every file and cell that differs beyond tolerance.
"""
import math
import os
import re
import sys

REL, ABS = 1e-7, 1e-12
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def cells(line):
    """A table line's cells; a comment line's words and numbers, apart."""
    if line.lstrip().startswith("#"):
        words = NUMBER.split(line)
        return words + NUMBER.findall(line)
    return [c.strip() for c in line.replace("=", ",").replace("[", ",").replace("]", ",").split(",")]


def close(a, b):
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    if math.isnan(x) and math.isnan(y):
        return True
    return abs(x - y) <= ABS + REL * max(abs(x), abs(y))


def compare(saved, fresh):
    problems = []
    for root, _, files in os.walk(saved):
        for name in files:
            a = os.path.join(root, name)
            rel = os.path.relpath(a, saved)
            b = os.path.join(fresh, rel)
            if not os.path.exists(b):
                problems.append(f"{rel}: no longer generated")
                continue
            if name.endswith((".csv", ".toml")):
                la = open(a).read().splitlines()
                lb = open(b).read().splitlines()
                if len(la) != len(lb):
                    problems.append(f"{rel}: {len(la)} lines committed, {len(lb)} regenerated")
                    continue
                for n, (x, y) in enumerate(zip(la, lb), 1):
                    if x == y:
                        continue
                    cx, cy = cells(x), cells(y)
                    if len(cx) != len(cy) or not all(close(p, q) for p, q in zip(cx, cy)):
                        problems.append(f"{rel}: line {n} differs:\n  committed:   {x}\n  regenerated: {y}")
                        break
            elif open(a, "rb").read() != open(b, "rb").read():
                problems.append(f"{rel}: differs")
    return problems


if __name__ == "__main__":
    found = compare(sys.argv[1], sys.argv[2])
    for p in found:
        print("reference drift:", p)
    if found:
        sys.exit(1)
    print(f"reference data matches its peers (PyBaMM, pvlib, pandapower) within {REL:g} relative")
