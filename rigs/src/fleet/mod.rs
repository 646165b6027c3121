//! # fleet — households on feeders, their assemblies, and the remote server
//!
//! A fleet scenario ([`scenario`]) places households on copies of LV
//! feeders (each copy one **branch**); every household with a battery
//! assembly runs the real firmware core in-process against its own house
//! twin ([`site`]). Shards ([`shard`]) own some branches: each simulated
//! minute they apply the server's messages, step their households (in
//! parallel across cores) and solve each branch's power flow. The remote
//! server ([`server`]) turns each branch's requirement into signed
//! per-assembly dispatch from the assemblies' reported headroom, closed
//! loop on the measured branch load. Server and shards are sans-IO: they
//! exchange [`wire::Message`]s (schema `maslow-fleet/1`,
//! `rigs/docs/fleet-messages.md`) through any transport; [`run`] is the
//! in-process lockstep run behind `maslow fleet run`.

pub mod scenario;
pub mod site;
pub mod wire;

pub use scenario::{FleetScenario, ScenarioError};
pub use wire::{Message, WireError};
