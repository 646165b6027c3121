//! rigs — maslow's wiring: the `maslow` command line, rig files, the plant's
//! side of the links, instruments, real-time pacing, Gherkin steps, fleets
//! and their MQTT transport. The only crate that does IO with hardware and
//! the wall clock (the CAN and serial transports themselves are the
//! `links` crate, which the firmware's board runtime uses too).

pub mod busload;
pub mod cli;
pub mod cli_error;
pub mod fleet;
pub mod fleet_args;
pub mod input;
pub mod instrument;
pub mod mqtt;
pub mod pacing;
pub mod plant_link;
pub mod plant_port;
pub mod rig;
pub mod sabotage;
pub mod scenario;
