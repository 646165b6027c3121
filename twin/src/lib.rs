//! # twin — maslow's plant
//!
//! Plant models and the simulation engine for a home battery assembly:
//! battery cells and packs ([`battery`]), photovoltaics ([`pv`]), the 48 V DC
//! bus with its circuits, loads and USB-PD sockets ([`bus`]), mains, household
//! AC demand, inverter and meter ([`grid`]), the whole household ([`house`])
//! and the fixed-step, multi-rate engine with its signal registry
//! ([`engine`]).
//!
//! Invariants (see `ARCHITECTURE.md`):
//! - **Time is passed in.** No model reads a clock; every `step` takes `dt`
//!   (and where it matters, the simulated time) as an argument.
//! - **No IO in models.** Parameter files are read only by the `load_*`
//!   helpers in [`params`]; models take typed, validated parameters.
//! - **Deterministic by seed.** Every random process draws from a
//!   [`rand_chacha::ChaCha8Rng`] seeded from the scenario seed.
//! - **Limits are signals, not panics.** A cell at its cut-off voltage reports
//!   it; it does not abort.

pub mod battery;
pub mod bus;
pub mod engine;
pub mod feeder;
pub mod grid;
pub mod house;
pub mod interp;
pub mod params;
pub mod pv;
pub mod time;
