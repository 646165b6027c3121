//! Wire formats the controller reads and writes, in the smoltcp `wire` style:
//! typed values, a checked `parse` from bytes and an `emit` to bytes that
//! round-trip, no IO and no heap. Framing of byte streams is sans-IO: the
//! caller pushes the bytes it read and pulls decoded values. Nothing here
//! uses the control functions (`cluster`, `controller`, ...): they use it.
//!
//! - [`can`] — the plant ↔ controller CAN contract, generated from
//!   `can/maslow.dbc` at build time.
//! - [`cluster_report`] — an assembly's report of its part in the branch's
//!   resource (SOC, reserve, limits, dispatch in force, message counters),
//!   first byte `0xA1`, sent to the server when it asks.
//! - [`e2e`] — alive counter and CRC-8 of safety-relevant CAN frames.
//! - [`p1`] — the smart meter's DSMR 5.0 P1 port: telegrams of OBIS lines
//!   closed by a CRC-16, and a `Framer` for the serial byte stream.
//! - [`signed`] — what the remote server's signed messages share: the
//!   header (addressing, key, sequence, validity window) and the
//!   signature framing (Ed25519 over everything before the signature).
//! - [`dispatch`] — signed dispatch commands: Sink, Source, Cancel,
//!   Heartbeat (`firmware/docs/dispatch.md`).
//! - [`config_message`] — signed configuration messages, first byte `0xC1`
//!   (`firmware/docs/config-message.md`).

pub mod can;
pub mod cluster_report;
pub mod config_message;
pub mod dispatch;
pub mod e2e;
pub mod p1;
pub mod signed;
