//! An MQTT client for the fleet: `rumqttc` (MQTT 3.1.1, async) over TCP or
//! TLS (rustls with ring), QoS 1 both ways, a persistent session by default
//! (`clean_session = false`: QoS 1 messages queued while the client was away
//! are delivered when it comes back), reconnection with backoff and
//! re-subscription when the broker lost the session, seeded fault injection
//! on what it publishes, and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use super::faults::{Fate, FaultInjector, Faults};
use super::url::{BrokerUrl, Credentials, TlsFiles};
use super::{message_key, Message};

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// MQTT client id: unique per broker; a persistent session is keyed by it.
    pub client_id: String,
    pub credentials: Option<Credentials>,
    /// For `mqtts://` URLs.
    pub tls: TlsFiles,
    /// `false` (default): the broker keeps the session (subscriptions,
    /// queued QoS 1 messages) while the client is away.
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// QoS 1 publishes awaiting the broker's ack at once.
    pub inflight: u16,
    /// Largest packet sent or received, bytes.
    pub max_packet_size: usize,
    /// How long [`MqttClient::connect`] waits for the broker's CONNACK and SUBACK.
    pub connect_timeout: Duration,
    /// Faults injected on what this client publishes.
    pub faults: Faults,
    /// Acknowledge a received QoS 1 message only when [`MqttClient::ack`]
    /// is called (after the receiver has made it durable), so a crash before
    /// that gets it redelivered.
    pub manual_acks: bool,
}

impl ClientOptions {
    pub fn new(client_id: impl Into<String>) -> Self {
        ClientOptions {
            client_id: client_id.into(),
            credentials: None,
            tls: TlsFiles::default(),
            clean_session: false,
            keep_alive: Duration::from_secs(10),
            inflight: 200,
            max_packet_size: 1 << 20,
            connect_timeout: Duration::from_secs(20),
            faults: Faults::none(),
            manual_acks: false,
        }
    }
}

/// Why a client could not connect or publish. Each message names the
/// broker and what to check.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("cannot reach the MQTT broker at {url}: {reason} (is a broker running there? check --broker)")]
    Unreachable { url: String, reason: String },
    #[error("the MQTT broker at {url} refused client {client_id:?}: {code} (check --broker-user and the password in MASLOW_BROKER_PASSWORD or --broker-password-file)")]
    NotAuthorized {
        url: String,
        client_id: String,
        code: String,
    },
    #[error("the MQTT broker at {url} refused client {client_id:?}: {code}")]
    Refused {
        url: String,
        client_id: String,
        code: String,
    },
    #[error("TLS to the MQTT broker at {url}: {reason} (check --broker-ca, --broker-cert, --broker-key and that the broker's certificate names the host)")]
    Tls { url: String, reason: String },
    #[error("TLS file {path}: {reason}")]
    TlsFile { path: String, reason: String },
    #[error("the MQTT broker at {url} did not answer within {secs} s ({what})")]
    Timeout {
        url: String,
        what: &'static str,
        secs: u64,
    },
    #[error("the MQTT broker at {url} refused the subscription to {filter:?} (check the user's ACL on the broker)")]
    SubscribeRefused { url: String, filter: String },
    #[error("MQTT client {client_id:?} is closed")]
    Closed { client_id: String },
    #[error("MQTT client {client_id:?}: {what} not done within {secs} s ({detail})")]
    FlushTimeout {
        client_id: String,
        what: &'static str,
        secs: u64,
        detail: String,
    },
}

#[derive(Debug, Default)]
struct Counters {
    /// Received publishes awaiting [`MqttClient::ack`] (manual acks only).
    unacked: Mutex<HashMap<(u64, u64), Vec<Publish>>>,
    manual_acks: bool,
    published: AtomicU64,
    acked: AtomicU64,
    received: AtomicU64,
    reconnects: AtomicU64,
    connection_errors: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    in_delay: AtomicU64,
    undeliverable: AtomicU64,
}

/// The client's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountersSnapshot {
    /// QoS 1 publishes handed to the connection (duplicates included).
    pub published: u64,
    /// Publishes the broker acknowledged (PUBACK).
    pub acked: u64,
    /// Messages received on the subscriptions.
    pub received: u64,
    /// Successful reconnections after a lost connection.
    pub reconnects: u64,
    /// Connection attempts or connections that failed.
    pub connection_errors: u64,
    /// Messages dropped by fault injection (never sent).
    pub dropped: u64,
    /// Messages sent twice by fault injection.
    pub duplicated: u64,
    /// Messages held back by fault injection.
    pub delayed: u64,
    /// Received messages nobody was reading any more.
    pub undeliverable: u64,
}

/// A connected client. Messages on its subscriptions arrive on the receiver
/// that [`MqttClient::connect`] returns.
pub struct MqttClient {
    client: AsyncClient,
    url: BrokerUrl,
    client_id: String,
    counters: Arc<Counters>,
    faults: Option<Arc<Mutex<FaultInjector>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn refused(url: &BrokerUrl, client_id: &str, code: ConnectReturnCode) -> MqttError {
    let (url, client_id, c) = (url.to_string(), client_id.to_owned(), format!("{code:?}"));
    match code {
        ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
            MqttError::NotAuthorized {
                url,
                client_id,
                code: c,
            }
        }
        _ => MqttError::Refused {
            url,
            client_id,
            code: c,
        },
    }
}

fn connection_error(url: &BrokerUrl, client_id: &str, e: ConnectionError) -> MqttError {
    match e {
        ConnectionError::ConnectionRefused(code) => refused(url, client_id, code),
        ConnectionError::Tls(t) => MqttError::Tls {
            url: url.to_string(),
            reason: t.to_string(),
        },
        ConnectionError::NetworkTimeout => MqttError::Timeout {
            url: url.to_string(),
            what: "TCP/TLS connect",
            secs: 0,
        },
        other => MqttError::Unreachable {
            url: url.to_string(),
            reason: other.to_string(),
        },
    }
}

fn tls_file_error(path: &std::path::Path, reason: impl std::fmt::Display) -> MqttError {
    MqttError::TlsFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A rustls client configuration (ring provider) from PEM files.
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca {
        Some(p) => {
            let iter = CertificateDer::pem_file_iter(p).map_err(|e| tls_file_error(p, e))?;
            for cert in iter {
                let cert = cert.map_err(|e| tls_file_error(p, e))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_file_error(p, format!("not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(tls_file_error(p, "holds no PEM certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::TlsFile {
            path: "-".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
    match (&files.client_cert, &files.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .map_err(|e| tls_file_error(c, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_file_error(c, e))?;
            let key = PrivateKeyDer::from_pem_file(k).map_err(|e| tls_file_error(k, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_file_error(c, e))
        }
        (Some(c), None) | (None, Some(c)) => Err(tls_file_error(
            c,
            "a client certificate needs its key: give both --broker-cert and --broker-key",
        )),
    }
}

fn filters(list: &[String]) -> Vec<SubscribeFilter> {
    list.iter()
        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
        .collect()
}

/// What the event loop does with one event; `true` when it was a CONNACK
/// with no session on the broker (subscriptions must be made again).
fn on_event(
    event: &Event,
    tx: &mpsc::UnboundedSender<Message>,
    counters: &Counters,
) -> Option<bool> {
    match event {
        Event::Incoming(Packet::Publish(p)) => {
            counters.received.fetch_add(1, Ordering::Relaxed);
            let msg = Message {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
                retain: p.retain,
            };
            if counters.manual_acks {
                if let Ok(mut u) = counters.unacked.lock() {
                    u.entry(message_key(&msg)).or_default().push(p.clone());
                }
            }
            if tx.send(msg).is_err() {
                counters.undeliverable.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        Event::Incoming(Packet::PubAck(_)) => {
            counters.acked.fetch_add(1, Ordering::Relaxed);
            None
        }
        Event::Incoming(Packet::ConnAck(ack)) => Some(!ack.session_present),
        _ => None,
    }
}

impl MqttClient {
    /// Connects to the broker at `url`, subscribes to `subscriptions` (QoS 1)
    /// and returns when the broker has acknowledged both; then keeps the
    /// connection in a task on the current tokio runtime, reconnecting with
    /// backoff after a loss.
    pub async fn connect(
        url: &BrokerUrl,
        opts: ClientOptions,
        subscriptions: &[String],
    ) -> Result<(MqttClient, mpsc::UnboundedReceiver<Message>), MqttError> {
        let mut mo = MqttOptions::new(opts.client_id.clone(), url.host.clone(), url.port);
        mo.set_clean_session(opts.clean_session)
            .set_keep_alive(opts.keep_alive)
            .set_inflight(opts.inflight.max(1))
            .set_max_packet_size(opts.max_packet_size, opts.max_packet_size)
            .set_pending_throttle(Duration::ZERO)
            .set_manual_acks(opts.manual_acks);
        if let Some(c) = &opts.credentials {
            mo.set_credentials(c.user.clone(), c.password().to_owned());
        }
        if url.is_tls() {
            let cfg = tls_config(&opts.tls)?;
            mo.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(cfg),
            )));
        }
        let (client, mut eventloop) = AsyncClient::new(mo, 4096);
        let mut net = eventloop.network_options();
        net.set_connection_timeout(opts.connect_timeout.as_secs().max(1));
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);

        let counters = Arc::new(Counters {
            manual_acks: opts.manual_acks,
            ..Counters::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let timeout = |what| MqttError::Timeout {
            url: url.to_string(),
            what,
            secs: opts.connect_timeout.as_secs(),
        };

        // First CONNACK: errors here are the user's to fix, not to retry.
        let deadline = Instant::now() + opts.connect_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = tokio::time::timeout(left, eventloop.poll())
                .await
                .map_err(|_| timeout("CONNACK"))?
                .map_err(|e| connection_error(url, &opts.client_id, e))?;
            if on_event(&ev, &tx, &counters).is_some() {
                break;
            }
        }
        // Subscribe (again) and wait for the SUBACK, forwarding anything a
        // persistent session delivers meanwhile.
        if !subscriptions.is_empty() {
            client
                .subscribe_many(filters(subscriptions))
                .await
                .map_err(|_| MqttError::Closed {
                    client_id: opts.client_id.clone(),
                })?;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let ev = tokio::time::timeout(left, eventloop.poll())
                    .await
                    .map_err(|_| timeout("SUBACK"))?
                    .map_err(|e| connection_error(url, &opts.client_id, e))?;
                if let Event::Incoming(Packet::SubAck(ack)) = &ev {
                    for (i, code) in ack.return_codes.iter().enumerate() {
                        if *code == SubscribeReasonCode::Failure {
                            return Err(MqttError::SubscribeRefused {
                                url: url.to_string(),
                                filter: subscriptions.get(i).cloned().unwrap_or_default(),
                            });
                        }
                    }
                    break;
                }
                on_event(&ev, &tx, &counters);
            }
        }

        let task = tokio::spawn(run(
            eventloop,
            client.clone(),
            subscriptions.to_vec(),
            tx,
            counters.clone(),
        ));
        let faults = (!opts.faults.is_none())
            .then(|| Arc::new(Mutex::new(opts.faults.injector(&opts.client_id))));
        Ok((
            MqttClient {
                client,
                url: url.clone(),
                client_id: opts.client_id,
                counters,
                faults,
                task: Some(task),
            },
            rx,
        ))
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// Publishes `msg` at QoS 1, through the fault injector. Returns once
    /// the message is queued on the connection (or dropped/held back by a
    /// fault); it is delivered across reconnections.
    pub async fn publish(&self, msg: Message) -> Result<(), MqttError> {
        let fate = match &self.faults {
            None => Fate::Send {
                delay: Duration::ZERO,
                copies: 1,
            },
            Some(f) => match f.lock() {
                Ok(mut inj) => inj.next_fate(),
                Err(_) => Fate::Send {
                    delay: Duration::ZERO,
                    copies: 1,
                },
            },
        };
        let (delay, copies) = match fate {
            Fate::Drop => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Fate::Send { delay, copies } => (delay, copies),
        };
        if copies > 1 {
            self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        if delay.is_zero() {
            for _ in 0..copies {
                send(&self.client, &self.counters, &self.client_id, &msg).await?;
            }
            return Ok(());
        }
        self.counters.delayed.fetch_add(1, Ordering::Relaxed);
        self.counters.in_delay.fetch_add(1, Ordering::Relaxed);
        let (client, counters, id) = (
            self.client.clone(),
            self.counters.clone(),
            self.client_id.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for _ in 0..copies {
                let _ = send(&client, &counters, &id, &msg).await;
            }
            counters.in_delay.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(())
    }

    /// With [`ClientOptions::manual_acks`]: acknowledges every received
    /// copy of `msg` (same topic and payload) to the broker. Without: nothing.
    pub async fn ack(&self, msg: &Message) -> Result<(), MqttError> {
        let copies = match self.counters.unacked.lock() {
            Ok(mut u) => u.remove(&message_key(msg)).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for p in copies {
            self.client.ack(&p).await.map_err(|_| MqttError::Closed {
                client_id: self.client_id.clone(),
            })?;
        }
        Ok(())
    }

    pub fn counters(&self) -> CountersSnapshot {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            published: g(&c.published),
            acked: g(&c.acked),
            received: g(&c.received),
            reconnects: g(&c.reconnects),
            connection_errors: g(&c.connection_errors),
            dropped: g(&c.dropped),
            duplicated: g(&c.duplicated),
            delayed: g(&c.delayed),
            undeliverable: g(&c.undeliverable),
        }
    }

    /// Waits until every message published so far (delayed ones included)
    /// has been acknowledged by the broker, at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), MqttError> {
        let t0 = Instant::now();
        loop {
            let c = self.counters();
            let in_delay = self.counters.in_delay.load(Ordering::Relaxed);
            if in_delay == 0 && c.acked >= c.published {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(MqttError::FlushTimeout {
                    client_id: self.client_id.clone(),
                    what: "flush",
                    secs: timeout.as_secs(),
                    detail: format!(
                        "{} published, {} acknowledged, {in_delay} held back by faults",
                        c.published, c.acked
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends DISCONNECT (the broker keeps a persistent session) and stops.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        if let Some(t) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                // The task is aborted by Drop.
            }
        }
    }

    /// Stops at once without DISCONNECT, as a killed process would.
    pub fn abort(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn send(
    client: &AsyncClient,
    counters: &Counters,
    client_id: &str,
    msg: &Message,
) -> Result<(), MqttError> {
    client
        .publish(
            msg.topic.clone(),
            QoS::AtLeastOnce,
            msg.retain,
            msg.payload.clone(),
        )
        .await
        .map_err(|_| MqttError::Closed {
            client_id: client_id.to_owned(),
        })?;
    counters.published.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The connection's life after the first CONNACK: forward messages, count,
/// reconnect with backoff (50 ms doubling to 2 s), subscribe again when the
/// broker comes back without the session.
async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    tx: mpsc::UnboundedSender<Message>,
    counters: Arc<Counters>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut lost = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(ev) => {
                if let Some(no_session) = on_event(&ev, &tx, &counters) {
                    if lost {
                        counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        lost = false;
                    }
                    backoff = Duration::from_millis(50);
                    if no_session && !subscriptions.is_empty() {
                        let _ = client.try_subscribe_many(filters(&subscriptions));
                    }
                }
            }
            Err(ConnectionError::RequestsDone) => return,
            Err(_) => {
                counters.connection_errors.fetch_add(1, Ordering::Relaxed);
                lost = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
