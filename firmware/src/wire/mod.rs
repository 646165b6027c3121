//! Wire formats the controller reads and writes, in the smoltcp `wire` style:
//! typed values, a checked `parse` from bytes and an `emit` to bytes that
//! round-trip, no IO and no heap. Framing of byte streams is sans-IO: the
//! caller pushes the bytes it read and pulls decoded values.
//!
//! - [`can`] — the plant ↔ controller CAN contract, generated from
//!   `can/maslow.dbc` at build time.
//! - [`e2e`] — alive counter and CRC-8 of safety-relevant CAN frames.
//! - [`p1`] — the smart meter's DSMR 5.0 P1 port: telegrams of OBIS lines
//!   closed by a CRC-16, and a `Framer` for the serial byte stream.

pub mod can;
pub mod e2e;
pub mod p1;
