//! # firmware — the battery assembly's production controller
//!
//! This crate is the controller under test: the code that runs on the
//! assembly's board. Its core is `#![no_std]` (no heap) and sans-IO: it
//! never reads a clock and does no IO. `Controller::handle(now, input)` takes
//! measurements and messages, `poll_output()` yields commands,
//! `poll_timeout()` says when it next wants to run. `node` wraps it in the
//! link layer (CAN frames and P1 bytes in, command frames out). The `std`
//! feature adds the TOML configuration loader; the `runtime` feature the
//! board runtime binary `maslow-firmware` (tokio, SocketCAN/SLCAN, serial).
//!
//! Each control function is its own module with a narrow API and its own
//! unit tests; `controller` composes them. Patent claim numbers in brackets.
#![cfg_attr(not(feature = "std"), no_std)]
// Config errors carry their message inline (no heap), so they are large by
// design; they are returned once, at start-up.
#![allow(clippy::result_large_err)]

pub mod arbitration;
pub mod cluster;
pub mod config;
#[cfg(feature = "std")]
pub mod config_file;
pub mod controller;
pub mod decision;
pub mod demand;
pub mod estimation;
pub mod export;
pub mod hub;
pub mod link_config;
pub mod node;
pub mod num;
pub mod peak;
pub mod protection;
pub mod remote_config;
pub mod resilience;
pub mod scheduling;
pub mod selective;
pub mod time;
pub mod wire;

pub use config::ConfigError;
pub use controller::{Controller, ControllerConfig, Input, Output, PlantCommand};
pub use time::{LocalTime, Millis};
