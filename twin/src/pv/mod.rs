//! Photovoltaics: the single-diode module model with CEC parameters,
//! strings and arrays, solar position, clear-sky irradiance, a seeded cloud
//! process, transposition to the plane of array, module temperature, and
//! an MPPT converter onto the DC bus with rating and curtailment, put
//! together as a [`PvPlant`] for the house model.
//!
//! Validated against pvlib (`tools/reference/pvlib_single_diode.py`,
//! `twin/tests/pv_vs_pvlib.rs`).

pub mod lambertw;
pub mod module;
pub mod single_diode;

pub use module::CecModule;
pub use single_diode::{calcparams_cec, DiodeParams, IvSummary};
pub mod array;
pub mod clearsky;
pub mod clouds;
pub mod mppt;
pub mod plant;
pub mod solar;
pub mod temperature;
pub mod transposition;

pub use array::{ArrayIv, PvArray};
pub use mppt::{ConverterConfig, ConverterOutput, Limit, MpptConverter};
pub use plant::{
    module_mpp_table, ModuleMppRow, PvError, PvPlant, PvPlantConfig, PvStep, SiteConfig, Weather,
};
