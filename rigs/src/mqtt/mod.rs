//! The fleet's MQTT transport: an embedded broker ([`EmbeddedBroker`],
//! `rumqttd` in-process on loopback), a client ([`MqttClient`], `rumqttc`
//! over TCP or TLS, with credentials, persistent sessions, reconnection and
//! counters) and seeded fault injection at the transport edge ([`Faults`]).
//!
//! This module moves [`Message`]s (topic, payload, retain) and never reads a
//! payload: what the topics and payloads mean is the fleet's contract
//! (`rigs::fleet::wire`, `rigs/docs/fleet-messages.md`). Tokio and sockets
//! live here, at the edge; the fleet's server and shards stay sans-IO.

mod broker;
pub mod cli;
mod client;
mod faults;
pub mod lockstep;
mod url;

pub use broker::{BrokerError, EmbeddedBroker, EmbeddedBrokerConfig};
pub use client::{ClientOptions, CountersSnapshot, MqttClient, MqttError};
pub use faults::{DelayDistribution, Fate, FaultInjector, Faults, FaultsError};
pub use url::{BrokerUrl, Credentials, Scheme, TlsFiles, UrlError, PASSWORD_ENV};

/// One message on the fleet transport (the fleet's contract type).
pub use crate::fleet::wire::Message;

/// A 128-bit digest of a message's topic and payload (identical messages,
/// identical keys): what duplicate detection and manual acks go by.
pub(crate) fn message_key(m: &Message) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let h = |salt: u8| {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut s);
        m.topic.hash(&mut s);
        m.payload.hash(&mut s);
        s.finish()
    };
    (h(1), h(2))
}
