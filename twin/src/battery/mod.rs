//! Battery models: an n-RC Thevenin equivalent-circuit cell ([`EcmCell`])
//! with OCV/R/C lookup tables over SOC, temperature and current, a lumped
//! two-mass thermal model and calendar/cycle ageing; a series × parallel
//! [`Pack`] with seeded cell-to-cell spread; parameter files
//! ([`load_cell_params`], [`load_pack_params`], schema in
//! `twin/params/README.md`); and a profile runner ([`profile`]). The
//! electrochemical alternative, an SPMe cell and pack validated against
//! PyBaMM, is in [`spme`]; files select the model with `model = "ecm" |
//! "spme"` ([`load_battery_params`], [`load_battery_pack_params`]). Both
//! models solve constant-power steps with the one solve in [`power`], and
//! both packs gather their [`PackOutput`] with one statistics fold
//! (`pack_stats`).
//!
//! Conventions (PyBaMM's): positive current and power = discharge; SOC in
//! [0, 1]; temperatures in °C; RC overpotentials negative on discharge.
//! Limits are reported as [`LimitFlags`], never as panics.
//!
//! The cell equations are exactly those of PyBaMM's
//! `pybamm.equivalent_circuit.Thevenin`; `twin/tests/ecm_vs_pybamm.rs`
//! compares the two side by side on PyBaMM's `ECM_Example` parameters.
//!
//! ```no_run
//! use twin::battery::{load_pack_params, Pack};
//! let params = load_pack_params(std::path::Path::new("twin/params/lfp_home_16s.toml")).unwrap();
//! let mut pack = Pack::new(&params, 0.6, 20.0, 42);
//! let out = pack.step_current(20.0, 1.0);
//! println!("{} V, SOC {:.3}", out.voltage_v, out.soc_mean);
//! let out = pack.step_power(-1500.0, 1.0).expect("deliverable");
//! # let _ = out;
//! ```

pub mod ageing;
pub mod cell;
mod lanes;
pub mod pack;
mod pack_stats;
pub mod params;
pub mod power;
pub mod profile;
pub mod spme;
pub mod thermal;

pub use ageing::{AgeingParams, AgeingState};
pub use cell::{CellModel, CellOutput, CellState, EcmCell, LimitFlags};
pub use pack::{Pack, PackOutput};
pub use params::{
    cell_model_of, load_battery_pack_params, load_battery_params, load_cell_params,
    load_pack_params, parse_cell_params, AxisKind, BatteryPackParams, BatteryParams, CellParams,
    PackParams, ParamTable, RcParams, Spread, MAX_RC,
};
pub use power::PowerNotDeliverable;
pub use power::MAX_CURRENT_A;
pub use profile::{
    run_cell_profile, run_profile, run_spme_profile, CellRun, CellSample, Profile, ProfileCell,
    ProfileError, ProfileKind, StopReason,
};
pub use thermal::{AmbientC, ThermalParams, ThermalPropagator};

#[cfg(test)]
mod proptests {
    use super::params::tests_support::minimal_with_entropic_and_ageing;
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn cell_params() -> CellParams {
        // The minimal cell plus ageing and an entropic table, so every path runs.
        let text = minimal_with_entropic_and_ageing();
        parse_cell_params(Path::new("prop.toml"), &text).unwrap()
    }

    fn finite_current() -> impl Strategy<Value = f64> {
        prop_oneof![
            -200.0..200.0f64,
            -1e7..1e7f64,
            Just(0.0),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(1e-300),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn cell_soc_bounded_and_outputs_finite(
            soc0 in 0.0..=1.0f64,
            t0 in -30.0..70.0f64,
            steps in prop::collection::vec(
                (finite_current(), prop_oneof![1e-3..600.0f64, Just(1e-300), Just(1e7), Just(f64::MAX)]),
                1..60,
            ),
        ) {
            let mut cell = EcmCell::new(&cell_params(), soc0, t0);
            for (i, dt) in steps {
                let o = cell.step_current(i, dt);
                prop_assert!((0.0..=1.0).contains(&o.soc), "soc {}", o.soc);
                for v in [o.voltage_v, o.ocv_v, o.temperature_c, o.jig_temperature_c, o.heat_w, o.power_w, o.soh] {
                    prop_assert!(v.is_finite(), "{o:?}");
                }
                if let Ok(o) = cell.step_power(i.clamp(-1e4, 1e4), dt) {
                    prop_assert!((0.0..=1.0).contains(&o.soc));
                    prop_assert!(o.voltage_v.is_finite() && o.current_a.is_finite());
                }
            }
        }

        #[test]
        fn pack_min_mean_max_ordered(
            series in 1usize..6,
            parallel in 1usize..4,
            seed in any::<u64>(),
            soc0 in 0.0..=1.0f64,
            steps in prop::collection::vec((-300.0..300.0f64, 0.1..120.0f64), 1..40),
        ) {
            let params = PackParams {
                name: "p".into(),
                cell: cell_params(),
                series,
                parallel,
                spread: Spread { capacity_rel_sd: 0.03, resistance_rel_sd: 0.1, initial_soc_sd: 0.02 },
            };
            let mut pack = Pack::new(&params, soc0, 25.0, seed);
            for (i, dt) in steps {
                let o = pack.step_current(i, dt);
                prop_assert!(o.soc_min <= o.soc_mean && o.soc_mean <= o.soc_max, "{o:?}");
                prop_assert!(0.0 <= o.soc_min && o.soc_max <= 1.0);
                prop_assert!(o.temperature_min_c <= o.temperature_mean_c && o.temperature_mean_c <= o.temperature_max_c);
                prop_assert!(o.cell_voltage_min_v <= o.cell_voltage_max_v);
                prop_assert!(o.cell_voltage_min_index < series && o.cell_voltage_max_index < series);
                prop_assert!(o.soh_min <= o.soh && o.soh <= 1.0);
                prop_assert!(o.voltage_v.is_finite() && o.energy_throughput_wh().is_finite());
            }
        }

        #[test]
        fn spread_reproducible_by_seed(seed in any::<u64>()) {
            let params = PackParams {
                name: "p".into(),
                cell: cell_params(),
                series: 4,
                parallel: 2,
                spread: Spread { capacity_rel_sd: 0.02, resistance_rel_sd: 0.05, initial_soc_sd: 0.01 },
            };
            let mut a = Pack::new(&params, 0.5, 25.0, seed);
            let mut b = Pack::new(&params, 0.5, 25.0, seed);
            prop_assert_eq!(a.cells(), b.cells());
            for k in 0..20 {
                let i = if k % 7 < 4 { 15.0 } else { -10.0 };
                prop_assert_eq!(a.step_current(i, 5.0), b.step_current(i, 5.0));
            }
            let c = Pack::new(&params, 0.5, 25.0, seed.wrapping_add(1));
            prop_assert_ne!(a.cells()[0].capacity_scale, c.cells()[0].capacity_scale);
        }
    }
}
