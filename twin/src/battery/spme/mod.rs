//! The single-particle model with electrolyte (SPMe): an electrochemical
//! cell model for cell-level fidelity, the same equations and default
//! discretisation as PyBaMM's `lithium_ion.SPMe` (see [`cell`] for the
//! equations and the integrator), with a lumped thermal model coupled both
//! ways. Parameter files (`model = "spme"`, schema in
//! `twin/params/README.md`): Chen2020 (LG M50) and Prada2013 (LFP) ship in
//! `twin/params/`. Validated side by side against PyBaMM in
//! `twin/tests/spme_vs_pybamm.rs`.
//!
//! ```no_run
//! use twin::battery::spme::{load_spme_params, SpmeCell};
//! let p = load_spme_params(std::path::Path::new("twin/params/chen2020.toml")).unwrap();
//! let mut cell = SpmeCell::new(&p, 1.0, 25.0).unwrap();
//! let out = cell.step_current(5.0, 1.0);
//! println!("{} V", out.voltage_v);
//! ```

pub mod cell;
pub mod func;
pub mod pack;
pub mod params;
pub mod tridiag;

pub use cell::{
    SpmeCell, SpmeError, SpmeModel, SpmeState, StoichiometryWindow, Workspace, FARADAY,
    GAS_CONSTANT,
};
pub use func::{Builtin, Func, FuncSpec};
pub use pack::{SpmePack, SpmePackParams};
pub use params::{load_spme_params, parse_spme_params, Sei, SpmeParams, SpmeThermal};
