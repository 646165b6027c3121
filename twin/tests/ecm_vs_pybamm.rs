//! maslow's ECM side by side with PyBaMM's `Thevenin` model on PyBaMM's own
//! `ECM_Example` parameters, same inputs. Reference data from
//! `tools/reference/pybamm_ecm.py` (committed under `twin/tests/reference`).
//!
//! Targets: terminal voltage RMSE < 0.5 mV and max error < 2 mV;
//! temperature RMSE < 0.05 K.

use std::path::PathBuf;

use twin::battery::{load_cell_params, run_cell_profile, Profile, StopReason};
use twin::params::load_numeric_csv;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Figures {
    v_rmse: f64,
    v_max: f64,
    t_rmse: f64,
    t_max: f64,
    soc_max: f64,
    n: usize,
}

/// Runs the profile through `run_cell_profile` at `dt_s` and compares with
/// the PyBaMM samples at the same times.
fn compare(case: &str, soc0: f64, dt_s: f64) -> (Figures, StopReason, f64) {
    let params =
        load_cell_params(&root().join("params/ecm_example.toml")).expect("ecm_example.toml loads");
    let reference_dir = root().join("tests/reference");
    let input = load_numeric_csv(&reference_dir.join(format!("{case}_input.csv"))).unwrap();
    let profile = Profile::from_table(&input).unwrap();
    let refpath = reference_dir.join(format!("{case}.csv"));
    let reference = load_numeric_csv(&refpath).unwrap();
    // PyBaMM's stop time, from the header comment "# stop: ... at <t> s".
    let text = std::fs::read_to_string(&refpath).unwrap();
    let stop_line = text.lines().find(|l| l.starts_with("# stop:")).unwrap();
    let ref_stop_s: f64 = stop_line
        .rsplit(" at ")
        .next()
        .unwrap()
        .trim_end_matches(" s")
        .trim()
        .parse()
        .unwrap();

    let run = run_cell_profile(&params, &profile, soc0, 25.0, dt_s).unwrap();
    let col = |n: &str| reference.column(n).unwrap();
    let (rt, rv, rs, rtc, ri) = (
        col("time_s"),
        col("voltage_v"),
        col("soc"),
        col("temperature_c"),
        col("current_a"),
    );
    let mut f = Figures {
        v_rmse: 0.0,
        v_max: 0.0,
        t_rmse: 0.0,
        t_max: 0.0,
        soc_max: 0.0,
        n: 0,
    };
    let mut j = 0;
    for k in 0..rt.len() {
        // Samples are at the same whole seconds (maybe more often if dt < 1 s).
        while j < run.samples.len() && run.samples[j].time_s < rt[k] - 1e-9 {
            j += 1;
        }
        if j >= run.samples.len() {
            break;
        }
        let s = &run.samples[j];
        assert!(
            (s.time_s - rt[k]).abs() < 1e-9,
            "time mismatch {} vs {}",
            s.time_s,
            rt[k]
        );
        assert_eq!(s.current_a, ri[k], "current at t={}", rt[k]);
        let dv = s.voltage_v - rv[k];
        let dt = s.temperature_c - rtc[k];
        f.v_rmse += dv * dv;
        f.t_rmse += dt * dt;
        f.v_max = f.v_max.max(dv.abs());
        f.t_max = f.t_max.max(dt.abs());
        f.soc_max = f.soc_max.max((s.soc - rs[k]).abs());
        f.n += 1;
    }
    f.v_rmse = (f.v_rmse / f.n as f64).sqrt();
    f.t_rmse = (f.t_rmse / f.n as f64).sqrt();
    println!(
        "{case} (dt {dt_s} s): {} samples; voltage RMSE {:.4} mV, max {:.4} mV; temperature RMSE {:.5} K, max {:.5} K; SOC max {:.2e}; stop: {} (PyBaMM {ref_stop_s:.3} s)",
        f.n,
        f.v_rmse * 1e3,
        f.v_max * 1e3,
        f.t_rmse,
        f.t_max,
        f.soc_max,
        run.stop
    );
    // At least all reference samples except possibly the last (cut-off) one.
    assert!(
        f.n + 1 >= rt.len(),
        "{} of {} samples compared",
        f.n,
        rt.len()
    );
    (f, run.stop, ref_stop_s)
}

fn assert_targets(f: &Figures) {
    assert!(
        f.v_rmse < 0.5e-3,
        "voltage RMSE {:.4} mV ≥ 0.5 mV",
        f.v_rmse * 1e3
    );
    assert!(
        f.v_max < 2e-3,
        "voltage max error {:.4} mV ≥ 2 mV",
        f.v_max * 1e3
    );
    assert!(
        f.t_rmse < 0.05,
        "temperature RMSE {:.4} K ≥ 0.05 K",
        f.t_rmse
    );
    assert!(f.soc_max < 1e-9, "SOC differs by {:e}", f.soc_max);
}

#[test]
fn constant_current_discharge_matches_pybamm() {
    // Reference: 100 A (1C) from SOC 0.999 until PyBaMM's lower cut-off.
    let (f, stop, ref_stop_s) = compare("ecm_cc_discharge", 0.999, 1.0);
    assert_targets(&f);
    match stop {
        StopReason::LowerVoltageCutoff { time_s, cutoff_v } => {
            assert_eq!(cutoff_v, 3.2);
            assert!(
                (time_s - ref_stop_s).abs() < 1.0,
                "cut-off at {time_s} s, PyBaMM {ref_stop_s} s"
            );
        }
        other => panic!("expected the lower cut-off, got {other:?}"),
    }
}

#[test]
fn pulse_profile_matches_pybamm() {
    let (f, stop, _) = compare("ecm_pulse_profile", 0.5, 1.0);
    assert_targets(&f);
    assert!(matches!(stop, StopReason::EndOfProfile { .. }), "{stop:?}");
}

#[test]
fn substeps_converge_to_the_same_answer() {
    // Half-second steps: the same samples at whole seconds, and no worse.
    let (f, _, _) = compare("ecm_pulse_profile", 0.5, 0.5);
    assert_targets(&f);
}
