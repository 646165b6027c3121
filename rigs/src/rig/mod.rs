//! Rigs: the twin against a controller, as a rig file says.
//!
//! - [`config`]: rig files (`rigs/sim.toml`, `rigs/sil.toml`,
//!   `rigs/bench.example.toml`), strictly parsed.
//! - [`run`]: the [`Session`] every house run is — a plant stepped against
//!   a [`ControllerSide`]: frames to a controller end ([`FramedEnd`]), the
//!   firmware core directly ([`direct::DirectEnd`]), or none
//!   ([`OwnPolicy`]) — in lockstep or real time; [`run`] runs a rig file.
//! - [`plant`]: the twin house ([`plant::HousePlant`]) and, for framed
//!   ends, its link ([`plant::PlantSide`]), shared by every session.
//! - [`direct`]: the direct controller end (no frames): `maslow twin house
//!   --controller` and fleet households.
//! - [`error`]: what stops a run ([`RigError`]) or a direct session
//!   ([`DirectError`]).
//! - [`ends`]: where a framed controller runs — in this process
//!   ([`ends::InProcessEnd`], the firmware [`Node`](firmware::node::Node)
//!   on the in-process bus) or behind real transports
//!   ([`ends::LinkedEnd`]: SLCAN over pseudo-terminals to a
//!   `maslow-firmware` child process, or SocketCAN/serial to a board).
//!
//! Time modes:
//! - **lockstep**: after each plant step the plant sends the step's status
//!   frames and P1 telegrams, then a `TimeSync`; the controller answers
//!   with its commands and a `CtrlHeartbeat` echoing the sync time; only
//!   then does the plant step again. Virtual time, reproducible by seed,
//!   as fast as the link allows.
//! - **realtime**: the plant is paced against the wall clock at its fixed
//!   step (default 10 ms); frames flow as they are due; the summary gives
//!   step jitter p50/p99/max and overruns.

pub mod config;
pub mod direct;
pub mod ends;
pub mod error;
pub mod plant;
pub mod run;

pub use config::{CanTransport, ControllerLocation, MeterTransport, Rig, RigFileError, TimeMode};
pub use ends::{Reply, UplinkMessage};
pub use error::{DirectError, RigError};
pub use run::{
    run, ControllerSide, FramedEnd, LinkFaultCounts, LinkFaults, OwnPolicy, RunOptions, RunSummary,
    Session, UplinkReply,
};
