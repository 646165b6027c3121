//! # The 48 V DC bus
//!
//! A nominal 48 V SELV bus joining, in droop control, any number of battery
//! converters (several battery assemblies may share one bus), a PV converter
//! and an AC/DC charger from mains, and feeding circuits that re-use
//! household lighting wiring. Each circuit has a switch, a thermal-magnetic
//! breaker and, at its far end, constant-power LED drivers, resistive and
//! constant-current loads and USB-PD sockets into which devices (phone,
//! laptop, monitor, TV — with their own batteries) are plugged.
//!
//! - [`droop`]: the sources.
//! - [`wiring`]: copper loop resistance and the exact far-end solution.
//! - [`loads`]: LED drivers (with under-voltage dropout and hysteresis),
//!   resistive and constant-current loads.
//! - [`usb_pd`]: source capabilities, contract negotiation, sockets.
//! - [`devices`]: device models and their batteries.
//! - [`breaker`]: trip curves, latching, reset.
//! - [`network`]: [`DcBus`], its configuration, inputs, outputs and the
//!   implicit (backward Euler) solver, stable at any step.
//!
//! Time is passed in: [`DcBus::step`] takes `dt_s` and a [`BusInputs`] and
//! returns [`BusOutputs`], including a per-step [`StepEnergy`] balance.
//! The step allocates nothing.

pub mod breaker;
pub mod devices;
pub mod droop;
pub mod loads;
pub mod network;
pub mod usb_pd;
pub mod wiring;

pub use breaker::{Breaker, BreakerConfig, TripCause};
pub use devices::{Device, DeviceConfig, DeviceKind, DeviceOutput};
pub use droop::{BatteryConverterConfig, ChargerConfig, PvConverterConfig};
pub use loads::{ConstantCurrentLoadConfig, LedDriverConfig, ResistiveLoadConfig};
pub use network::{
    BatteryConverterInput, BatteryConverterOutput, BusConfig, BusInputs, BusOutputs, ChargerInput,
    CircuitConfig, CircuitInput, CircuitOutput, DcBus, DeviceInput, LedOutput, PvInput,
    SocketInput, SocketOutput, SourceOutput, StepEnergy,
};
pub use usb_pd::{Contract, PdState, Pdo, UsbSocketConfig};
pub use wiring::{loop_resistance_ohm, RHO_CU_20C_OHM_MM2_PER_M};
