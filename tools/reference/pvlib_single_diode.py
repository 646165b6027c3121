#!/usr/bin/env python3
"""Reference data for maslow's PV models, generated with pvlib.

Run from the repository root:  python3 tools/reference/pvlib_single_diode.py

Writes (all floats as repr, i.e. round-trip full precision):
  twin/params/pv/modules/<name>.toml   CEC module rows exported from pvlib's
                                       copy of the SAM CEC database, keys are
                                       the database field names as they are
  twin/tests/reference/pv_singlediode.csv
        calcparams_cec + singlediode (default lambertw) on an irradiance x
        cell-temperature grid for each exported module
  twin/tests/reference/pv_singlediode_db.csv
        the same on 300 modules drawn (fixed seed) from the whole CEC
        database, one random operating point each, with pvlib's i_x
        (current at v_oc/2) and i_xx (at (v_oc+v_mp)/2)
  twin/tests/reference/pv_plant_day.csv
        the whole clear-sky chain for twin/params/pv/house_roof.toml
        (read with tomllib): solar position, Ineichen, Hay-Davies, Faiman
        (20 C air), calcparams_cec + singlediode, array MPP power, at
        1-minute steps on two days
  twin/tests/reference/pv_solarpos.csv
        solarposition.get_solarposition (default nrel_numpy SPA, pressure from
        altitude, 12 C) for a few sites and times
  twin/tests/reference/pv_irradiance.csv
        get_extra_radiation (spencer), airmass (kastenyoung1989, absolute with
        alt2pres), clearsky.ineichen (fixed Linke turbidity), erbs on a
        cloud-scaled GHI, get_total_irradiance (haydavies), temperature.faiman
        -- all fed with pvlib's own solar position so each model is checked
        on its own
"""
import math
import os
import sys
import tomllib

import numpy as np
import pandas as pd
import pvlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOD_DIR = os.path.join(ROOT, "twin", "params", "pv", "modules")
REF_DIR = os.path.join(ROOT, "twin", "tests", "reference")

MODULES = [
    "Canadian_Solar_Inc__CS1U_400MS",          # Mono-c-Si, 72-cell class
    "Canadian_Solar_Inc__CS6K_275P",           # Multi-c-Si, 60 cells
    "First_Solar__Inc__FS_6420",               # CdTe
    "Miasole_FLEX_03_300W",                    # CIGS
    "Bangkok_Solar_BS_52",                     # Thin Film (a-Si)
]
IRRADIANCE = [50.0, 100.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1100.0]
TEMPERATURE = [-10.0, 0.0, 25.0, 45.0, 65.0]

SITES = [
    # name, lat, lon, altitude (m), Linke turbidity, surface tilt, azimuth
    ("london", 51.5072, -0.1276, 20.0, 3.2, 35.0, 180.0),
    ("denver", 39.7392, -104.9903, 1609.0, 2.6, 40.0, 170.0),
    ("sydney", -33.8688, 151.2093, 50.0, 3.0, 30.0, 0.0),
    ("singapore", 1.3521, 103.8198, 15.0, 4.5, 10.0, 90.0),
    ("tromso", 69.6492, 18.9553, 100.0, 2.2, 60.0, 200.0),
]
DATES = ["2021-03-20", "2024-06-21", "2026-09-23", "2026-12-21", "2030-02-10"]


def toml_value(v):
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "nan"
    return repr(v)


def export_modules(db):
    os.makedirs(MOD_DIR, exist_ok=True)
    for name in MODULES:
        row = db[name]
        lines = [
            "# CEC module parameters exported from the SAM CEC database shipped",
            f"# with pvlib {pvlib.__version__} by tools/reference/pvlib_single_diode.py.",
            "# Do not edit by hand: keys are the database field names as they are.",
            f"Name = {toml_value(name)}",
        ]
        for key, val in row.items():
            lines.append(f"{key} = {toml_value(val)}")
        with open(os.path.join(MOD_DIR, name + ".toml"), "w") as f:
            f.write("\n".join(lines) + "\n")


def single_diode(db):
    rows = []
    for name in MODULES:
        m = db[name]
        for g in IRRADIANCE:
            for t in TEMPERATURE:
                il, io, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_cec(
                    g, t, m["alpha_sc"], m["a_ref"], m["I_L_ref"], m["I_o_ref"],
                    m["R_sh_ref"], m["R_s"], m["Adjust"])
                out = pvlib.pvsystem.singlediode(il, io, rs, rsh, nnsvth)
                rows.append([name, g, t, il, io, rs, rsh, nnsvth,
                             out["p_mp"], out["v_mp"], out["i_mp"],
                             out["v_oc"], out["i_sc"]])
    cols = ["module", "irradiance_w_m2", "temp_cell_c", "photocurrent",
            "saturation_current", "resistance_series", "resistance_shunt",
            "n_ns_vth", "p_mp", "v_mp", "i_mp", "v_oc", "i_sc"]
    write_csv(os.path.join(REF_DIR, "pv_singlediode.csv"), cols, rows)


DB_FIELDS = ["N_s", "alpha_sc", "a_ref", "I_L_ref", "I_o_ref", "R_s", "R_sh_ref", "Adjust"]


def single_diode_db_sample(db):
    rng = np.random.default_rng(424242)
    names = list(db.columns)
    picks = rng.choice(len(names), size=300, replace=False)
    rows = []
    for k in picks:
        name = names[k]
        m = db[name]
        g = float(rng.uniform(20.0, 1200.0))
        t = float(rng.uniform(-20.0, 75.0))
        il, io, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_cec(
            g, t, m["alpha_sc"], m["a_ref"], m["I_L_ref"], m["I_o_ref"],
            m["R_sh_ref"], m["R_s"], m["Adjust"])
        out = pvlib.pvsystem.singlediode(il, io, rs, rsh, nnsvth)
        rows.append([name.replace(",", " "), m["Technology"]] + [float(m[f]) for f in DB_FIELDS]
                    + [g, t, out["p_mp"], out["v_mp"], out["i_mp"], out["v_oc"],
                       out["i_sc"], out["i_x"], out["i_xx"]])
    cols = (["module", "technology"] + DB_FIELDS
            + ["irradiance_w_m2", "temp_cell_c", "p_mp", "v_mp", "i_mp", "v_oc",
               "i_sc", "i_x", "i_xx"])
    write_csv(os.path.join(REF_DIR, "pv_singlediode_db.csv"), cols, rows)


def plant_day(db):
    path = os.path.join(ROOT, "twin", "params", "pv", "house_roof.toml")
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    site, arr, temp = cfg["site"], cfg["array"], cfg["temperature"]
    name = os.path.splitext(os.path.basename(arr["module"]))[0]
    m = db[name]
    times = pd.DatetimeIndex([])
    for d in ["2026-06-21", "2026-12-21"]:
        times = times.append(pd.date_range(d + " 00:00:00", periods=24 * 60, freq="1min", tz="UTC"))
    lat, lon, alt = site["latitude_deg"], site["longitude_deg"], site["altitude_m"]
    sp = pvlib.solarposition.get_solarposition(times, lat, lon, altitude=alt)
    dni_extra = pvlib.irradiance.get_extra_radiation(times, method="spencer")
    am_abs = pvlib.atmosphere.get_absolute_airmass(
        pvlib.atmosphere.get_relative_airmass(sp["apparent_zenith"]),
        pvlib.atmosphere.alt2pres(alt))
    cs = pvlib.clearsky.ineichen(sp["apparent_zenith"], am_abs, site["linke_turbidity"],
                                 altitude=alt, dni_extra=dni_extra).fillna(0.0)
    poa = pvlib.irradiance.get_total_irradiance(
        site["tilt_deg"], site["azimuth_deg"], sp["apparent_zenith"], sp["azimuth"],
        cs["dni"], cs["ghi"], cs["dhi"], dni_extra=dni_extra, albedo=site["albedo"],
        model="haydavies").fillna(0.0)
    temp_air = 20.0
    tcell = pvlib.temperature.faiman(poa["poa_global"], temp_air, temp["wind_speed_m_s"],
                                     u0=temp["u0"], u1=temp["u1"])
    il, io, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_cec(
        poa["poa_global"], tcell, m["alpha_sc"], m["a_ref"], m["I_L_ref"], m["I_o_ref"],
        m["R_sh_ref"], m["R_s"], m["Adjust"])
    out = pvlib.pvsystem.singlediode(il, io, rs, rsh, nnsvth)
    n = arr["modules_in_series"] * arr["strings"]
    p_array = (out["p_mp"].fillna(0.0) * n).where(poa["poa_global"] > 0, 0.0)
    unix = (times - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    rows = [[unix[i], temp_air, cs["ghi"].iloc[i], poa["poa_global"].iloc[i], tcell.iloc[i],
             p_array.iloc[i]] for i in range(len(times))]
    write_csv(os.path.join(REF_DIR, "pv_plant_day.csv"),
              ["unix_s", "temp_air", "ghi", "poa_global", "temp_cell", "p_mp_array"], rows)


def write_csv(path, cols, rows):
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(x if isinstance(x, str) else repr(float(x)) for x in r) + "\n")


def times_for_site():
    times = []
    for d in DATES:
        base = pd.Timestamp(d + " 00:00:00", tz="UTC")
        # every 47 minutes over the day, so minutes and seconds vary
        for k in range(31):
            times.append(base + pd.Timedelta(minutes=47 * k, seconds=13 * k))
    return pd.DatetimeIndex(times)


def solar_and_irradiance():
    pos_rows, irr_rows = [], []
    rng = np.random.default_rng(20261126)
    for (site, lat, lon, alt, tl, tilt, az) in SITES:
        times = times_for_site()
        sp = pvlib.solarposition.get_solarposition(times, lat, lon, altitude=alt)
        unix = (times - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
        dni_extra = pvlib.irradiance.get_extra_radiation(times, method="spencer")
        am_rel = pvlib.atmosphere.get_relative_airmass(sp["apparent_zenith"])
        pressure = pvlib.atmosphere.alt2pres(alt)
        am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pressure)
        cs = pvlib.clearsky.ineichen(sp["apparent_zenith"], am_abs, tl,
                                     altitude=alt, dni_extra=dni_extra)
        cs = cs.fillna(0.0)
        # a clear-sky index per row, to exercise the decomposition
        kc = pd.Series(rng.uniform(0.1, 1.2, len(times)), index=times)
        ghi = cs["ghi"] * kc
        erbs = pvlib.irradiance.erbs(ghi, sp["zenith"], times)
        poa = pvlib.irradiance.get_total_irradiance(
            tilt, az, sp["apparent_zenith"], sp["azimuth"],
            erbs["dni"], ghi, erbs["dhi"], dni_extra=dni_extra,
            albedo=0.2, model="haydavies")
        poa = poa.fillna(0.0)
        amb = pd.Series(rng.uniform(-5.0, 35.0, len(times)), index=times)
        wind = pd.Series(rng.uniform(0.0, 8.0, len(times)), index=times)
        tcell = pvlib.temperature.faiman(poa["poa_global"], amb, wind)
        for i, t in enumerate(times):
            pos_rows.append([site, lat, lon, alt, unix[i],
                             sp["zenith"].iloc[i], sp["apparent_zenith"].iloc[i],
                             sp["azimuth"].iloc[i]])
            irr_rows.append([site, lat, lon, alt, unix[i], tl, tilt, az,
                             sp["zenith"].iloc[i], sp["apparent_zenith"].iloc[i],
                             sp["azimuth"].iloc[i], dni_extra.iloc[i],
                             0.0 if np.isnan(am_abs.iloc[i]) else am_abs.iloc[i],
                             cs["ghi"].iloc[i], cs["dni"].iloc[i], cs["dhi"].iloc[i],
                             kc.iloc[i], ghi.iloc[i], erbs["dni"].iloc[i],
                             erbs["dhi"].iloc[i], poa["poa_global"].iloc[i],
                             amb.iloc[i], wind.iloc[i], tcell.iloc[i]])
    write_csv(os.path.join(REF_DIR, "pv_solarpos.csv"),
              ["site", "latitude", "longitude", "altitude", "unix_s",
               "zenith", "apparent_zenith", "azimuth"], pos_rows)
    write_csv(os.path.join(REF_DIR, "pv_irradiance.csv"),
              ["site", "latitude", "longitude", "altitude", "unix_s",
               "linke_turbidity", "surface_tilt", "surface_azimuth",
               "zenith", "apparent_zenith", "azimuth", "dni_extra",
               "airmass_absolute", "cs_ghi", "cs_dni", "cs_dhi", "kc", "ghi",
               "erbs_dni", "erbs_dhi", "poa_global", "temp_air", "wind_speed",
               "temp_faiman"], irr_rows)


def main():
    db = pvlib.pvsystem.retrieve_sam("CECMod")
    missing = [m for m in MODULES if m not in db.columns]
    if missing:
        sys.exit(f"modules not in the CEC database: {missing}")
    os.makedirs(REF_DIR, exist_ok=True)
    export_modules(db)
    single_diode(db)
    single_diode_db_sample(db)
    plant_day(db)
    solar_and_irradiance()
    print(f"pvlib {pvlib.__version__}: wrote modules to {MOD_DIR}, references to {REF_DIR}")


if __name__ == "__main__":
    main()
