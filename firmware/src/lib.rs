//! # firmware — the battery assembly's production controller
//!
//! This crate is the controller under test: the code that runs on the
//! assembly's board. Its core is `#![no_std]` and sans-IO: it never reads a
//! clock and does no IO; `Controller::handle(now, input)` takes measurements
//! and messages, `poll_output()` yields commands. The host runtime (tokio,
//! SocketCAN, serial, MQTT) lives behind the `std` feature in a binary.
//!
//! The control functions (state estimation, charge scheduling, assured peak
//! reduction, demand management, resilience, selective supply, export
//! control, protection, cluster participation) land with issue 3; until then
//! the only thing here is the shape of the contract the twin and rigs will
//! drive: [`Millis`] time stamps passed in by the caller.
#![cfg_attr(not(feature = "std"), no_std)]

/// Controller time: milliseconds since the controller started, always passed
/// in by the caller (a rig in virtual time, or the board runtime's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);
