//! Steps for the controller functions beyond the core library: end devices and
//! selective supply, export limiting, tariff signals, signed dispatch,
//! telemetry.
