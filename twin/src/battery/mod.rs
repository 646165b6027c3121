//! Battery models: an n-RC Thevenin equivalent-circuit cell ([`EcmCell`])
//! with OCV/R/C lookup tables over SOC, temperature and current, a lumped
//! two-mass thermal model and calendar/cycle ageing; a series × parallel
//! [`Pack`] with seeded cell-to-cell spread; parameter files
//! ([`load_cell_params`], [`load_pack_params`], schema in
//! `twin/params/README.md`); and a profile runner ([`profile`]).
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
pub mod pack;
pub mod params;
pub mod profile;
pub mod thermal;

pub use ageing::{AgeingParams, AgeingState};
pub use cell::{
    CellModel, CellOutput, CellState, EcmCell, LimitFlags, PowerNotDeliverable, MAX_CURRENT_A,
};
pub use pack::{Pack, PackOutput};
pub use params::{
    load_cell_params, load_pack_params, parse_cell_params, AxisKind, CellParams, PackParams,
    ParamTable, RcParams, Spread, MAX_RC,
};
pub use profile::{
    run_cell_profile, CellRun, CellSample, Profile, ProfileError, ProfileKind, StopReason,
};
pub use thermal::{ThermalParams, ThermalPropagator};
