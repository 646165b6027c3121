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

pub mod run;
pub mod scenario;
pub mod server;
pub mod shard;
pub mod signatures;
pub mod site;
pub mod wire;

pub use scenario::{FleetScenario, ScenarioError};
pub use server::FleetServer;
pub use shard::Shard;
pub use wire::{Message, WireError};

/// MQTT topic filters a shard subscribes to.
pub fn topic_filters_for_shard(run_id: &str, shard: &Shard) -> Vec<String> {
    wire::topic_filters_for_branches(run_id, &shard.branch_ids())
}

pub use wire::topic_filters_for_server;
