#!/usr/bin/env python3
"""Times PyBaMM on the experiment `cargo bench -p twin --bench spme` times in
maslow: Chen2020 SPMe, isothermal, 1C (5 A) discharge from SOC 1 to 2.5 V,
output at 1 s. Two ways:

- warm solve: `Simulation.solve` once (build, discretise, compile), then the
  median of 5 further solves of the same experiment (IDAKLU, default
  tolerances, t_interp at every second);
- step loop: `Simulation.step(1.0)` called once per second until the
  cut-off, the way a HIL loop would have to drive PyBaMM (timed from the
  first step, after one untimed warm-up run of the loop).

Writes `twin/benches/spme_pybamm_timing.json` (seconds, with the machine).
Not part of check.sh: timings differ between runs and machines.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import pybamm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "twin", "benches", "spme_pybamm_timing.json")


def sim():
    p = pybamm.ParameterValues("Chen2020")
    p.update({"Current function [A]": 5.0})
    p.set_initial_state(1.0)
    return pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=p, solver=pybamm.IDAKLUSolver())


def warm_solve():
    s = sim()
    t_eval = [0.0, 4500.0]
    t_interp = np.arange(0.0, 4500.5, 1.0)
    t0 = time.perf_counter()
    sol = s.solve(t_eval, t_interp=t_interp)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sol = s.solve(t_eval, t_interp=t_interp)
        times.append(time.perf_counter() - t0)
    return cold, statistics.median(times), float(sol["Time [s]"].entries[-1])


def step_loop():
    def run():
        s = sim()
        sol = None
        n = 0
        t0 = time.perf_counter()
        while True:
            sol = s.step(1.0, starting_solution=sol)
            n += 1
            if sol.termination != "final time" or n > 5000:
                break
        return time.perf_counter() - t0, n, float(sol["Time [s]"].entries[-1])

    run()  # warm-up (imports, caches)
    return run()


def machine():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    cold, warm, t_end = warm_solve()
    loop, n, t_loop = step_loop()
    res = {
        "pybamm_version": pybamm.__version__,
        "experiment": "Chen2020 SPMe isothermal, 1C (5 A) discharge from SOC 1 to 2.5 V, 1 s output",
        "machine": machine(),
        "first_solve_s": cold,
        "warm_solve_s": warm,
        "warm_solve_end_s": t_end,
        "step_loop_s": loop,
        "step_loop_steps": n,
        "step_loop_end_s": t_loop,
        "step_loop_per_step_s": loop / n,
    }
    with open(OUT, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    sys.exit(main())
