//! links — classic CAN between maslow's plant and controller, on the wire
//! and in files.
//!
//! Pure codecs, no IO and no clock: frames and their bit lengths
//! ([`frame`]), the SLCAN / Lawicel ASCII serial protocol ([`slcan`]) and
//! can-utils' candump `-L` log lines ([`candump`]).
//!
//! Used by both the rig (`rigs`, re-exported there as `rigs::can`) and the
//! firmware's board runtime, so this crate depends on neither.

pub mod candump;
pub mod frame;
pub mod slcan;

pub use frame::{bit_length, BitLength, CanFrame, CanId, FrameError};
