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
//!
//! ## Use
//!
//! ```
//! use twin::bus::{BusConfig, DcBus};
//! #[derive(serde::Deserialize)]
//! struct House { bus: BusConfig }
//! let house: House = toml::from_str(r#"
//!     [bus]
//!     capacitance_f = 0.01
//!     [[bus.battery_converters]]
//!     name = "assembly-1"
//!     setpoint_v = 50.0
//!     droop_v_per_a = 0.02
//!     discharge_limit_a = 60.0
//!     charge_limit_a = 40.0
//!     efficiency = 0.97
//!     [[bus.circuits]]
//!     name = "desk"
//!     length_m = 12.0
//!     cross_section_mm2 = 1.5
//!     breaker = { rating_a = 10.0 }
//!     led_drivers = [{ name = "lamp", power_w = 12.0, min_input_v = 36.0 }]
//!     usb_sockets = [{ name = "desk-left", budget_w = 65.0 }]
//!     [[bus.devices]]
//!     name = "laptop"
//!     kind = "laptop"
//! "#).unwrap();
//! let mut bus = DcBus::new(house.bus).unwrap();
//! let mut inputs = bus.default_inputs();       // build once, edit in place
//! let (socket, laptop) = (bus.socket_index("desk-left").unwrap(), bus.device_index("laptop").unwrap());
//! inputs.sockets[socket].device = Some(laptop); // plug in
//! inputs.devices[laptop].on = true;
//! for _ in 0..100 {
//!     // The battery pack tells the converter what it can do ...
//!     inputs.battery[0].battery_discharge_limit_w = 3000.0;
//!     let out = bus.step(0.01, &inputs);
//!     // ... and is then stepped with the battery-side power (+ = discharge).
//!     let _pack_power_w = out.battery[0].battery_power_w;
//!     assert!(out.energy.imbalance_j().abs() < 1e-9 * out.energy.scale_j() + 1e-9);
//! }
//! assert_eq!(bus.outputs().sockets[socket].contract.unwrap().voltage_v, 20.0);
//! inputs.circuits[0].fault_ohm = Some(0.01);    // short at the load end
//! bus.step(0.01, &inputs);
//! assert!(bus.breaker(0).tripped().is_some());  // latched ...
//! inputs.circuits[0].fault_ohm = None;
//! inputs.circuits[0].reset_breaker = true;      // ... until reset
//! bus.step(0.01, &inputs);
//! assert!(bus.breaker(0).is_closed());
//! ```

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
pub use loads::{
    ConstantCurrentLoadConfig, InverterPortConfig, LedDriverConfig, ResistiveLoadConfig,
};
pub use network::{
    BatteryConverterInput, BatteryConverterOutput, BusConfig, BusInputs, BusOutputs, ChargerInput,
    CircuitConfig, CircuitInput, CircuitOutput, DcBus, DeviceInput, InverterPortInput,
    InverterPortOutput, LedOutput, PvInput, SocketInput, SocketOutput, SourceOutput, StepEnergy,
};
pub use usb_pd::{Contract, PdState, Pdo, UsbSocketConfig};
pub use wiring::{loop_resistance_ohm, RHO_CU_20C_OHM_MM2_PER_M};
