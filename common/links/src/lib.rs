//! links — classic CAN between maslow's plant and controller, on the wire
//! and in files.
//!
//! Pure codecs, no IO and no clock: frames and their bit lengths
//! ([`frame`]), the SLCAN / Lawicel ASCII serial protocol ([`slcan`]), SLCAN
//! open/answer state machines ([`session`]) and can-utils' candump `-L` log
//! lines ([`candump`]).
//!
//! Transports behind one async trait, [`CanBus`] ([`bus`]):
//! [`InProcessBus`] (lockstep runs), [`SlcanBus`] (SLCAN over a serial port
//! or a pty pair, either side), [`SocketCanBus`] (Linux). Wrappers:
//! [`FaultyBus`] (seeded fault injection) and [`TracedBus`] (candump
//! traces). [`SerialLink`] carries raw bytes (the P1 meter port).
//!
//! Used by both the rig (`rigs`) and the
//! firmware's board runtime, so this crate depends on neither.

pub mod bus;
pub mod candump;
pub mod faulty;
pub mod frame;
pub mod in_process;
pub mod session;
pub mod slcan;
pub mod trace;

#[cfg(unix)]
pub mod serial;
#[cfg(unix)]
pub mod slcan_bus;
#[cfg(target_os = "linux")]
pub mod socketcan_bus;

pub use bus::{CanBus, LinkError, LinkStats, TryRecvError};
pub use faulty::{FaultPlan, FaultRates, FaultyBus};
pub use frame::{bit_length, BitLength, CanFrame, CanId, FrameError};
pub use in_process::InProcessBus;
#[cfg(unix)]
pub use serial::{Pty, SerialLink};
#[cfg(unix)]
pub use slcan_bus::SlcanBus;
#[cfg(target_os = "linux")]
pub use socketcan_bus::SocketCanBus;
pub use trace::{CandumpWriter, TracedBus};
