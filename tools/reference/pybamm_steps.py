"""Shared by the PyBaMM reference scripts: a piecewise-constant current
profile stepped through a `pybamm.Simulation`, segment by segment, the way a
HIL loop calls a model, stopping where PyBaMM's own events (voltage cut-off)
end a segment early."""

import numpy as np


def step_segments(sim, segments):
    """Runs `segments` ([(duration_s, current_a), ...]) through `sim` with the
    current as the input "Current function [A]", 1 s output. Returns the
    solution and why it stopped: ("end of profile", t) or (PyBaMM's
    termination, t)."""
    sol = None
    t0 = 0
    for dur, cur in segments:
        sol = sim.step(
            float(dur),
            t_eval=[0.0, float(dur)],
            t_interp=np.arange(0.0, dur + 0.5, 1.0),
            inputs={"Current function [A]": float(cur)},
            starting_solution=sol,
        )
        t_end = sol["Time [s]"].entries[-1]
        if abs(t_end - (t0 + dur)) > 1e-6:
            return sol, (str(sol.termination), float(t_end))
        t0 += dur
    return sol, ("end of profile", float(t0))
