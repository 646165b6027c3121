//! Classic CAN on the wire and in files: frames and their bit lengths
//! ([`frame`]), the SLCAN / Lawicel ASCII serial protocol ([`slcan`]) and
//! can-utils' candump `-L` log lines ([`candump`]). Pure codecs: no IO, no
//! clock; transports feed them bytes.

pub mod candump;
pub mod frame;
pub mod slcan;

pub use frame::{bit_length, BitLength, CanFrame, CanId, FrameError};
