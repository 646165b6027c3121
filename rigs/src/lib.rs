//! rigs — maslow's wiring: the `maslow` command line, user input tables,
//! real-time pacing, and (as they land) rig files, transports, instruments
//! and Gherkin steps. The only crate that does IO with hardware and the
//! wall clock.

pub mod busload;
/// Classic CAN codecs and transports: the [`links`] crate, under its old
/// path so `rigs::can::…` keeps working.
pub use links as can;
pub mod cli;
pub mod closed_loop;
pub mod fleet;
pub mod input;
pub mod instrument;
pub mod mqtt;
pub mod pacing;
pub mod plant_link;
pub mod rig;
pub mod scenario;
