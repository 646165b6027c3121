//! maslow's SPMe side by side with PyBaMM's `lithium_ion.SPMe` on PyBaMM's
//! own Chen2020 and Prada2013 parameter sets, same inputs, same mesh.
//! Reference data from `tools/reference/pybamm_spme.py` (committed under
//! `twin/tests/reference/spme`). maslow runs at a fixed 1 s step.
//!
//! Targets:
//! - Chen2020 isothermal CC discharge at 0.5C, 1C, 2C from full to 2.5 V:
//!   voltage RMSE < 5 mV excluding the last 30 s, discharge time within 0.5 %;
//! - Chen2020 seeded 1 h dynamic profile: voltage RMSE < 10 mV;
//! - Chen2020 lumped thermal 1C: temperature RMSE < 0.2 K;
//! - Prada2013 1C: voltage RMSE < 10 mV.

use std::path::PathBuf;

use twin::battery::spme::{load_spme_params, SpmeModel};
use twin::battery::{run_spme_profile, Profile, StopReason};
use twin::params::load_numeric_csv;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
struct Figures {
    /// Voltage RMSE over all samples up to 30 s before PyBaMM's cut-off.
    v_rmse: f64,
    v_max: f64,
    t_rmse: f64,
    /// maslow's stop time and PyBaMM's (s).
    stop_s: f64,
    ref_stop_s: f64,
    stop: StopReason,
}

impl Figures {
    fn stop_rel(&self) -> f64 {
        (self.stop_s - self.ref_stop_s).abs() / self.ref_stop_s
    }
}

fn header_value(text: &str, prefix: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line"))
        .to_string()
}

fn compare(case: &str, params_file: &str, soc0: f64, dt_s: f64) -> Figures {
    let params = load_spme_params(&root().join("params").join(params_file)).unwrap();
    let dir = root().join("tests/reference/spme");
    let input = load_numeric_csv(&dir.join(format!("{case}_input.csv"))).unwrap();
    let profile = Profile::from_table(&input).unwrap();
    let refpath = dir.join(format!("{case}.csv"));
    let reference = load_numeric_csv(&refpath).unwrap();
    let text = std::fs::read_to_string(&refpath).unwrap();
    let ref_stop_s: f64 = header_value(&text, "# stop:")
        .rsplit(" at ")
        .next()
        .unwrap()
        .trim_end_matches(" s")
        .trim()
        .parse()
        .unwrap();
    let ended_by_cutoff = header_value(&text, "# stop:").contains("Minimum voltage");

    let run = run_spme_profile(&params, &profile, soc0, 25.0, dt_s).unwrap();
    let col = |n: &str| reference.column(n).unwrap();
    let (rt, rv, rtc, ri) = (
        col("time_s"),
        col("voltage_v"),
        col("temperature_c"),
        col("current_a"),
    );
    let last_s = if ended_by_cutoff {
        ref_stop_s - 30.0
    } else {
        f64::INFINITY
    };
    let (mut v2, mut vmax, mut t2, mut n) = (0.0, 0.0f64, 0.0, 0usize);
    let mut j = 0;
    for k in 0..rt.len() {
        if rt[k] > last_s {
            break;
        }
        while j < run.samples.len() && run.samples[j].time_s < rt[k] - 1e-9 {
            j += 1;
        }
        assert!(
            j < run.samples.len(),
            "{case}: maslow stopped early at {}",
            run.stop
        );
        let s = &run.samples[j];
        assert!(
            (s.time_s - rt[k]).abs() < 1e-9,
            "time {} vs {}",
            s.time_s,
            rt[k]
        );
        assert!((s.current_a - ri[k]).abs() < 1e-9, "current at t={}", rt[k]);
        let dv = s.voltage_v - rv[k];
        let dt = s.temperature_c - rtc[k];
        v2 += dv * dv;
        t2 += dt * dt;
        vmax = vmax.max(dv.abs());
        n += 1;
    }
    let f = Figures {
        v_rmse: (v2 / n as f64).sqrt(),
        v_max: vmax,
        t_rmse: (t2 / n as f64).sqrt(),
        stop_s: run.stop.time_s(),
        ref_stop_s,
        stop: run.stop,
    };
    println!(
        "{case} (dt {dt_s} s): {n} samples; voltage RMSE {:.3} mV, max {:.3} mV; temperature RMSE {:.4} K; \
         stop {} vs PyBaMM {ref_stop_s:.2} s ({:.3} %)",
        f.v_rmse * 1e3,
        f.v_max * 1e3,
        f.t_rmse,
        f.stop,
        f.stop_rel() * 100.0
    );
    f
}

fn assert_cc(f: &Figures) {
    assert!(
        matches!(f.stop, StopReason::LowerVoltageCutoff { .. }),
        "{:?}",
        f.stop
    );
    assert!(f.v_rmse < 5e-3, "voltage RMSE {:.3} mV", f.v_rmse * 1e3);
    assert!(
        f.stop_rel() < 0.005,
        "discharge time off by {:.3} %",
        f.stop_rel() * 100.0
    );
}

#[test]
fn chen2020_cc_half_c_matches_pybamm() {
    assert_cc(&compare(
        "chen2020_cc_0p5c",
        "chen2020_isothermal.toml",
        1.0,
        1.0,
    ));
}

#[test]
fn chen2020_cc_1c_matches_pybamm() {
    assert_cc(&compare(
        "chen2020_cc_1c",
        "chen2020_isothermal.toml",
        1.0,
        1.0,
    ));
}

#[test]
fn chen2020_cc_2c_matches_pybamm() {
    assert_cc(&compare(
        "chen2020_cc_2c",
        "chen2020_isothermal.toml",
        1.0,
        1.0,
    ));
}

#[test]
fn initial_stoichiometries_match_pybamm() {
    let p = load_spme_params(&root().join("params/chen2020_isothermal.toml")).unwrap();
    let m = SpmeModel::new(&p).unwrap();
    let st = m.initial_state(1.0, 25.0);
    let text =
        std::fs::read_to_string(root().join("tests/reference/spme/chen2020_cc_1c.csv")).unwrap();
    let line = header_value(&text, "# initial stoichiometry");
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let x = st.c_n[0] / p.negative.max_concentration_mol_m3;
    let y = st.c_p[0] / p.positive.max_concentration_mol_m3;
    println!("stoichiometry at SOC 1: maslow {x} {y}, PyBaMM {nums:?}");
    // PyBaMM solves its electrode-SOH problem to a tolerance of 1e-6.
    assert!((x - nums[0]).abs() < 1e-5, "{x} vs {}", nums[0]);
    assert!((y - nums[1]).abs() < 1e-5, "{y} vs {}", nums[1]);
}

#[test]
fn chen2020_dynamic_profile_matches_pybamm() {
    let f = compare("chen2020_dynamic", "chen2020_isothermal.toml", 0.6, 1.0);
    assert!(
        matches!(f.stop, StopReason::EndOfProfile { .. }),
        "{:?}",
        f.stop
    );
    assert!(f.v_rmse < 10e-3, "voltage RMSE {:.3} mV", f.v_rmse * 1e3);
}

#[test]
fn chen2020_lumped_thermal_1c_matches_pybamm() {
    let f = compare("chen2020_thermal_1c", "chen2020.toml", 1.0, 1.0);
    assert!(f.t_rmse < 0.2, "temperature RMSE {:.4} K", f.t_rmse);
    assert!(f.v_rmse < 5e-3, "voltage RMSE {:.3} mV", f.v_rmse * 1e3);
    assert!(
        f.stop_rel() < 0.005,
        "discharge time off by {:.3} %",
        f.stop_rel() * 100.0
    );
}

#[test]
fn prada2013_cc_1c_matches_pybamm() {
    let f = compare("prada2013_cc_1c", "prada2013.toml", 1.0, 1.0);
    assert!(f.v_rmse < 10e-3, "voltage RMSE {:.3} mV", f.v_rmse * 1e3);
}

/// Runs `cell` at `current_a` until the voltage crosses `limit_v` (the last
/// step shortened so that it lands on the limit, as PyBaMM's event); returns
/// the charge moved (Ah).
fn run_until(cell: &mut twin::battery::spme::SpmeCell, current_a: f64, limit_v: f64) -> f64 {
    let crossed = |v: f64| {
        if current_a > 0.0 {
            v <= limit_v
        } else {
            v >= limit_v
        }
    };
    let mut ah = 0.0;
    cell.set_instant_current(current_a);
    for _ in 0..100_000 {
        let before = cell.clone();
        let v0 = cell.output().voltage_v;
        let v1 = cell.step_current(current_a, 1.0).voltage_v;
        if !crossed(v1) {
            ah += current_a / 3600.0;
            continue;
        }
        // Shorten the step to land on the limit (secant on the step length).
        let (mut lo, mut hi, mut vlo, mut vhi) = (0.0, 1.0, v0, v1);
        let mut dt = 1.0;
        for _ in 0..30 {
            dt = lo + (hi - lo) * (vlo - limit_v) / (vlo - vhi);
            *cell = before.clone();
            let v = cell.step_current(current_a, dt).voltage_v;
            if (v - limit_v).abs() < 1e-9 {
                break;
            }
            if crossed(v) {
                hi = dt;
                vhi = v;
            } else {
                lo = dt;
                vlo = v;
            }
        }
        return ah + current_a * dt / 3600.0;
    }
    panic!("no cut-off reached");
}

#[test]
fn sei_capacity_loss_over_100_cycles_matches_pybamm() {
    let p = load_spme_params(&root().join("params/chen2020_sei.toml")).unwrap();
    let mut cell = twin::battery::spme::SpmeCell::new(&p, 1.0, 25.0).unwrap();
    let reference =
        load_numeric_csv(&root().join("tests/reference/spme/chen2020_sei_100_cycles.csv")).unwrap();
    let rq = reference.column("discharge_capacity_ah").unwrap();
    let rli = reference.column("lithium_lost_to_sei_mol").unwrap();
    let mut q = Vec::new();
    for _ in 0..rq.len() {
        q.push(run_until(&mut cell, 5.0, 2.5));
        run_until(&mut cell, -5.0, 4.2);
    }
    // Cycle 1 starts from SOC 1; cycles 2.. from the 1C (CC) charge to
    // 4.2 V, so the fade is measured from cycle 2 to the last.
    let n = rq.len() - 1;
    let lost = q[1] - q[n];
    let ref_lost = rq[1] - rq[n];
    let li = cell.state().sei_lithium_mol;
    let rel = (lost - ref_lost).abs() / ref_lost;
    let rel_li = (li - rli[n]).abs() / rli[n];
    println!(
        "SEI, {} cycles: capacity lost (cycle 2 to {}) {:.6} Ah ({:.6} -> {:.6}) vs PyBaMM {:.6} Ah \
         ({:.6} -> {:.6}): {:.2} %; lithium to SEI {:.6e} vs {:.6e} mol ({:.2} %); \
         first discharge {:.5} vs {:.5} Ah; SOH {:.5}",
        rq.len(),
        rq.len(),
        lost,
        q[1],
        q[n],
        ref_lost,
        rq[1],
        rq[n],
        rel * 100.0,
        li,
        rli[n],
        rel_li * 100.0,
        q[0],
        rq[0],
        cell.output().soh
    );
    assert!(rel < 0.05, "capacity lost differs by {:.2} %", rel * 100.0);
    assert!(
        rel_li < 0.05,
        "lithium lost differs by {:.2} %",
        rel_li * 100.0
    );
}
