"""Reference peer for maslow's LV feeder power flow (twin::feeder).

Builds two low-voltage feeders in pandapower, writes each out as an OpenDSS
script under twin/params/feeders/<name>/ (the subset twin::feeder::dss
reads), solves the three-phase unbalanced power flow with pandapower's
runpp_3ph and writes the results under twin/tests/reference/feeder/:

- <name>_bus.csv:   bus, vm_a_pu, va_a_deg, vm_b_pu, va_b_deg, vm_c_pu, va_c_deg
- <name>_trafo.csv: phase, p_lv_kw, q_lv_kvar (power delivered by the
  transformer into its LV bus, per phase), and a row `total_hv` with the
  power drawn at the HV terminals.

Networks:
- ieee_european_lv: pandapower.networks.ieee_european_lv_asymmetric("on_peak_566"),
  the IEEE PES European LV test feeder (906 LV buses, 55 single-phase loads).
- kerber_landnetz_freileitung_1: pandapower.networks.create_kerber_landnetz_freileitung_1(),
  made unbalanced: its 13 balanced 8 kW loads become single-phase loads
  cycling over phases a, b, c with sizes 6/8/10/12 kW at pf 0.95.

Modelling assumptions aligned between the peers (what twin::feeder models,
and what a plain OpenDSS script can express):
- Transformer: series impedance only, the same in all sequences. pandapower's
  zero-sequence magnetising branch (mag0_percent) is made negligible
  (mag0_percent=1e9) so the Dyn zero-sequence impedance is vk0 = vk, as in
  OpenDSS; the Kerber transformer's no-load losses and magnetising current
  (pfe_kw, i0_percent) are set to 0 and its vector group Dyn5 becomes Dyn
  (shift 30°: OpenDSS's delta-wye convention, LV lagging by 30°).
- Source: pandapower's ext_grid is an ideal positive-sequence source with
  its short-circuit impedance in the negative and zero sequence only; the
  script gives the OpenDSS Vsource the same impedance in all sequences. With
  s_sc = 10 GVA the difference is below 1e-5 p.u.
- Lines: sequence impedances r1/x1/r0/x0 (Kerber: zero sequence not given
  by pandapower; assumed r0 = 4 r1, x0 = 4 x1, a 4-wire overhead line whose
  neutral equals a phase conductor); no capacitance in either network.
- Loads: wye, constant P and Q (OpenDSS model=1 with vminpu=0.5,
  vmaxpu=1.5 so the constant-PQ band covers every solved voltage).

Run from the repository root: python3 tools/reference/pandapower_feeders.py
Prints pandapower's time for one runpp_3ph of each network (median of 20,
with numba=False and, when numba is installed, numba=True).
"""
import math
import os
import platform
import re
import statistics
import time
import warnings

warnings.filterwarnings("ignore")

import pandapower as pp  # noqa: E402
import pandapower.networks as pn  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PARAMS = os.path.join(ROOT, "twin", "params", "feeders")
REF = os.path.join(ROOT, "twin", "tests", "reference", "feeder")


def g(x):
    """Shortest round-trip text of a float."""
    return repr(float(x))


def clean(name):
    return re.sub(r"[^A-Za-z0-9_\-]", "_", str(name)).lower()


def bus_names(net):
    names = [clean(n) if n is not None else f"b{i}" for i, n in zip(net.bus.index, net.bus.name)]
    if len(set(names)) != len(names):
        names = [f"b{i}" for i in net.bus.index]
    return dict(zip(net.bus.index, names))


def prepare_ieee():
    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    net.trafo["mag0_percent"] = 1e9
    net.trafo["mag0_rx"] = 0.0
    return net


def prepare_kerber():
    net = pn.create_kerber_landnetz_freileitung_1()
    net.ext_grid["s_sc_max_mva"] = 10000.0
    net.ext_grid["rx_max"] = 0.1
    net.ext_grid["r0x0_max"] = 0.1
    net.ext_grid["x0x_max"] = 1.0
    t = net.trafo
    t["vector_group"] = "Dyn"
    t["shift_degree"] = 30.0
    t["pfe_kw"] = 0.0
    t["i0_percent"] = 0.0
    t["vk0_percent"] = t["vk_percent"]
    t["vkr0_percent"] = t["vkr_percent"]
    t["mag0_percent"] = 1e9
    t["mag0_rx"] = 0.0
    t["si0_hv_partial"] = 0.9
    net.line["r0_ohm_per_km"] = 4.0 * net.line["r_ohm_per_km"]
    net.line["x0_ohm_per_km"] = 4.0 * net.line["x_ohm_per_km"]
    net.line["c0_nf_per_km"] = 0.0
    loads = net.load.copy()
    net.load.drop(net.load.index, inplace=True)
    tan = math.tan(math.acos(0.95))
    for k, (i, row) in enumerate(loads.iterrows()):
        p = 0.006 + 0.002 * (k % 4)
        ph = "abc"[k % 3]
        kw = {f"p_{x}_mw": (p if x == ph else 0.0) for x in "abc"}
        kv = {f"q_{x}_mvar": (p * tan if x == ph else 0.0) for x in "abc"}
        pp.create_asymmetric_load(net, int(row.bus), name=f"house{k + 1}", type="wye", **kw, **kv)
    return net


def write_dss(net, name, title):
    out = os.path.join(PARAMS, name)
    os.makedirs(out, exist_ok=True)
    bn = bus_names(net)
    eg = net.ext_grid.iloc[0]
    hv_bus = int(eg.bus)
    vn_hv = float(net.bus.vn_kv[hv_bus])
    z1 = vn_hv**2 / float(eg.s_sc_max_mva)
    x1 = z1 / math.sqrt(1 + float(eg.rx_max) ** 2)
    r1 = float(eg.rx_max) * x1
    x0 = float(eg.x0x_max) * x1
    r0 = float(eg.r0x0_max) * x0
    assert len(net.trafo) == 1
    t = net.trafo.iloc[0]
    assert int(t.hv_bus) == hv_bus and str(t.vector_group).lower() == "dyn"
    assert float(t.shift_degree) == 30.0
    xhl = math.sqrt(float(t.vk_percent) ** 2 - float(t.vkr_percent) ** 2)
    r_each = float(t.vkr_percent) / 2.0
    lv_kv = float(t.vn_lv_kv)
    hdr = [
        f"! {title}",
        f"! Generated by tools/reference/pandapower_feeders.py from pandapower {pp.__version__}'s",
        f"! network data; the reference results are under twin/tests/reference/feeder/{name}_*.csv.",
    ]
    master = hdr + [
        "Clear",
        f"New Circuit.{name} bus1={bn[hv_bus]} basekv={g(vn_hv)} pu={g(eg.vm_pu)} angle={g(eg.va_degree)}",
        f"~ r1={g(r1)} x1={g(x1)} r0={g(r0)} x0={g(x0)}",
        f"New Transformer.{clean(t['name'])} phases=3 windings=2 buses=[{bn[int(t.hv_bus)]} {bn[int(t.lv_bus)]}]",
        f"~ conns=[delta wye] kvs=[{g(t.vn_hv_kv)} {g(lv_kv)}] kvas=[{g(t.sn_mva * 1000)} {g(t.sn_mva * 1000)}]",
        f"~ %rs=[{g(r_each)} {g(r_each)}] xhl={g(xhl)} %noloadloss=0 %imag=0",
        "Redirect linecodes.dss",
        "Redirect lines.dss",
        "Redirect loads.dss",
        f"Set voltagebases=[{g(vn_hv)} {g(lv_kv)}]",
        "Calcvoltagebases",
    ]
    codes = {}
    lines = []
    for i, ln in net.line.iterrows():
        assert int(ln.parallel) == 1 and bool(ln.in_service)
        key = tuple(
            g(ln[c])
            for c in ["r_ohm_per_km", "x_ohm_per_km", "r0_ohm_per_km", "x0_ohm_per_km", "c_nf_per_km", "c0_nf_per_km"]
        )
        if key not in codes:
            codes[key] = clean(ln.std_type) if clean(ln.std_type) not in [c for c in codes.values()] else f"code{len(codes)}"
        lname = clean(ln["name"]) if ln["name"] is not None else f"line{i}"
        lines.append(
            f"New Line.{lname} bus1={bn[int(ln.from_bus)]}.1.2.3 bus2={bn[int(ln.to_bus)]}.1.2.3 "
            f"linecode={codes[key]} length={g(ln.length_km)} units=km"
        )
    code_lines = hdr + [
        f"New LineCode.{c} nphases=3 r1={k[0]} x1={k[1]} r0={k[2]} x0={k[3]} c1={k[4]} c0={k[5]} units=km"
        for k, c in codes.items()
    ]
    load_lines = hdr[:]
    kv1 = lv_kv / math.sqrt(3)
    for i, ld in net.asymmetric_load.iterrows():
        assert ld.type == "wye" and float(ld.scaling) == 1.0
        ph = [k for k, x in enumerate("abc") if ld[f"p_{x}_mw"] != 0 or ld[f"q_{x}_mvar"] != 0]
        assert len(ph) <= 1, "only single-phase loads are exported"
        p = ph[0] if ph else 0
        x = "abc"[p]
        load_lines.append(
            f"New Load.{clean(ld['name'])} bus1={bn[int(ld.bus)]}.{p + 1} phases=1 kv={g(kv1)} "
            f"kw={g(ld[f'p_{x}_mw'] * 1000)} kvar={g(ld[f'q_{x}_mvar'] * 1000)} model=1 vminpu=0.5 vmaxpu=1.5"
        )
    for fname, body in [
        ("master.dss", master),
        ("linecodes.dss", code_lines),
        ("lines.dss", hdr + lines),
        ("loads.dss", load_lines),
    ]:
        with open(os.path.join(out, fname), "w") as f:
            f.write("\n".join(body) + "\n")


def have_numba():
    try:
        import numba  # noqa: F401

        return True
    except ImportError:
        return False


def time_runpp_3ph(net, numba, runs=20):
    """Median wall time of one runpp_3ph, s (after one warm-up run)."""
    pp.runpp_3ph(net, tolerance_mva=1e-11, max_iteration=100, numba=numba)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        pp.runpp_3ph(net, tolerance_mva=1e-11, max_iteration=100, numba=numba)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def solve_and_write(net, name):
    # The committed results come from the plain (numba=False) path, so they
    # do not depend on whether numba is installed.
    timings = {"numba=False": time_runpp_3ph(net, False)}
    if have_numba():
        timings["numba=True"] = time_runpp_3ph(net, True)
    pp.runpp_3ph(net, tolerance_mva=1e-11, max_iteration=100, numba=False)
    bn = bus_names(net)
    os.makedirs(REF, exist_ok=True)
    rb = net.res_bus_3ph
    with open(os.path.join(REF, f"{name}_bus.csv"), "w") as f:
        f.write("bus,vm_a_pu,va_a_deg,vm_b_pu,va_b_deg,vm_c_pu,va_c_deg\n")
        for i in net.bus.index:
            r = rb.loc[i]
            f.write(
                ",".join(
                    [bn[i]]
                    + [g(r[f"{c}_{x}_{u}"]) for x in "abc" for c, u in (("vm", "pu"), ("va", "degree"))]
                )
                + "\n"
            )
    rt = net.res_trafo_3ph.iloc[0]
    with open(os.path.join(REF, f"{name}_trafo.csv"), "w") as f:
        f.write("phase,p_kw,q_kvar\n")
        for x in "abc":
            f.write(f"lv_{x},{g(-rt[f'p_{x}_lv_mw'] * 1000)},{g(-rt[f'q_{x}_lv_mvar'] * 1000)}\n")
        p_hv = sum(rt[f"p_{x}_hv_mw"] for x in "abc") * 1000
        q_hv = sum(rt[f"q_{x}_hv_mvar"] for x in "abc") * 1000
        f.write(f"total_hv,{g(p_hv)},{g(q_hv)}\n")
    return timings


def main():
    report = []
    for name, build, title in [
        ("ieee_european_lv", prepare_ieee, "IEEE PES European LV test feeder (on_peak_566 snapshot)"),
        ("kerber_landnetz_freileitung_1", prepare_kerber, "Kerber Landnetz Freileitung 1, unbalanced single-phase loads"),
    ]:
        net = build()
        write_dss(net, name, title)
        t = solve_and_write(net, name)
        times = ", ".join(f"{k}: {v * 1000:.1f} ms" for k, v in t.items())
        report.append(f"{name}: {len(net.bus)} buses, runpp_3ph median of 20: {times}")
    print(f"pandapower {pp.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}")
    for r in report:
        print(r)


if __name__ == "__main__":
    main()
