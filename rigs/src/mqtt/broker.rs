//! The embedded broker: `rumqttd` in this process, reached on a loopback
//! port, so one command runs a fleet with nothing installed.
//!
//! rumqttd 0.20 binds its own listener and has no stop call. The broker
//! therefore listens on an internal loopback port, and clients reach it
//! through a small relay on the public port that this module owns. The relay
//! gives what rumqttd lacks: the public port may be 0 (any free port) and is
//! known after [`EmbeddedBroker::start`]; [`EmbeddedBroker::shutdown`] closes
//! the public port and every client connection; and
//! [`EmbeddedBroker::outage`] cuts every connection and refuses new ones
//! for a while — a broker restart as clients see it, with the sessions
//! (subscriptions, QoS 1 messages queued for clients that are away) kept, as
//! a broker with persistent storage keeps them across a restart. After
//! shutdown, rumqttd's threads stay idle until the process exits.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::url::BrokerUrl;

/// Sizes of the embedded broker, chosen for fleets of thousands of clients
/// and bursts of a message per client at once.
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerConfig {
    /// Public loopback port; 0 picks a free one.
    pub port: u16,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Largest MQTT payload accepted, bytes.
    pub max_payload_size: usize,
    /// QoS 1 messages in flight to one client before the broker waits for acks.
    pub max_inflight_count: usize,
    /// Bytes of one segment of a topic filter's log, and how many segments
    /// are kept: what a persistent session away from the broker can catch
    /// up on.
    pub max_segment_size: usize,
    pub max_segment_count: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            port: 0,
            max_connections: 16_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 1_000,
            max_segment_size: 16 << 20,
            max_segment_count: 8,
        }
    }
}

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker: cannot listen on 127.0.0.1:{port}: {source} (choose another port, or 0 for any free one)")]
    Bind { port: u16, source: std::io::Error },
    #[error("embedded broker: {0}")]
    Start(String),
}

struct Shared {
    /// `true` while the broker is down (an outage) or shut down.
    down: watch::Sender<bool>,
    /// Bumped to cut every open connection.
    generation: watch::Sender<u64>,
    accepted: AtomicU64,
    live: Mutex<HashMap<u64, ()>>,
}

/// A running embedded broker. Dropping it shuts it down.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    relay: Option<std::thread::JoinHandle<()>>,
}

/// Where rumqttd is to listen. rumqttd binds its own listener, so the port
/// is found free and then released before it binds: another process (a
/// second broker, mosquitto, a client's ephemeral port) may take it in
/// between, and rumqttd's bind failure is only logged in its thread. On
/// Linux every 127/8 address is loopback, so the internal listener gets an
/// address of its own (from the process id and a counter): nothing else in
/// a test run binds there.
fn internal_address() -> std::io::Result<SocketAddr> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ip = if cfg!(target_os = "linux") {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Ipv4Addr::new(
            127,
            64 + (n % 64) as u8,
            (pid >> 8) as u8,
            (pid as u8).max(1),
        )
    } else {
        Ipv4Addr::LOCALHOST
    };
    let l = StdListener::bind(SocketAddrV4::new(ip, 0))?;
    l.local_addr()
}

/// Whether an MQTT broker answers at `addr`: a CONNECT (MQTT 3.1.1, clean
/// session) gets an accepting CONNACK. A bare TCP connect is not enough:
/// it succeeds against whatever else took the port, and on Linux a connect
/// to a free loopback port can connect to itself.
fn answers_mqtt(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    if s.local_addr().ok() == Some(addr) {
        return false;
    }
    let id = b"maslow-broker-probe";
    let mut connect = vec![
        0x10,
        12 + id.len() as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        10,
    ];
    connect.extend_from_slice(&[0, id.len() as u8]);
    connect.extend_from_slice(id);
    let mut connack = [0u8; 4];
    s.set_read_timeout(Some(Duration::from_secs(2))).is_ok()
        && s.write_all(&connect).is_ok()
        && s.read_exact(&mut connack).is_ok()
        && connack == [0x20, 0x02, 0x00, 0x00]
}

fn rumqttd_config(c: &EmbeddedBrokerConfig, internal: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 30_000,
        max_payload_size: c.max_payload_size,
        max_inflight_count: c.max_inflight_count,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "maslow-v4".to_owned(),
        listen: internal,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: c.max_connections,
            max_outgoing_packet_count: 10_000,
            max_segment_size: c.max_segment_size,
            max_segment_count: c.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

impl EmbeddedBroker {
    /// Starts rumqttd and the relay; returns when both accept connections.
    pub fn start(config: EmbeddedBrokerConfig) -> Result<Self, BrokerError> {
        let public = StdListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, config.port))
            .map_err(|source| BrokerError::Bind {
                port: config.port,
                source,
            })?;
        let addr = public
            .local_addr()
            .map_err(|e| BrokerError::Start(format!("public port: {e}")))?;
        public
            .set_nonblocking(true)
            .map_err(|e| BrokerError::Start(format!("public port: {e}")))?;
        let internal =
            internal_address().map_err(|e| BrokerError::Start(format!("internal port: {e}")))?;

        let mut broker = rumqttd::Broker::new(rumqttd_config(&config, internal));
        std::thread::Builder::new()
            .name("maslow-rumqttd".to_owned())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    eprintln!("embedded broker (rumqttd) stopped: {e}");
                }
            })
            .map_err(|e| BrokerError::Start(format!("cannot start the broker thread: {e}")))?;
        // rumqttd binds in its own thread: wait until it answers.
        let t0 = Instant::now();
        while !answers_mqtt(internal) {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(BrokerError::Start(format!(
                    "rumqttd did not answer on {internal} within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }

        let (down, _) = watch::channel(false);
        let (generation, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            down,
            generation,
            accepted: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("maslow-broker-relay")
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Start(format!("relay runtime: {e}")))?;
        let relay_shared = shared.clone();
        let relay = std::thread::Builder::new()
            .name("maslow-broker-relay".to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(public) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("embedded broker relay: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = accept_loop(listener, internal, relay_shared) => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels every relayed connection.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| BrokerError::Start(format!("cannot start the relay thread: {e}")))?;
        Ok(EmbeddedBroker {
            addr,
            shared,
            stop: Some(stop_tx),
            relay: Some(relay),
        })
    }

    /// The public address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> BrokerUrl {
        BrokerUrl::loopback(self.addr.port())
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> usize {
        self.shared.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Takes the broker down: every connection is cut and new ones are
    /// refused until [`EmbeddedBroker::recover`]. Sessions are kept.
    pub fn go_down(&self) {
        self.shared.down.send_replace(true);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Brings the broker back after [`EmbeddedBroker::go_down`].
    pub fn recover(&self) {
        self.shared.down.send_replace(false);
    }

    /// A broker restart as clients see it: down for `down_for`, then back.
    pub fn outage(&self, down_for: Duration) {
        self.go_down();
        std::thread::sleep(down_for);
        self.recover();
    }

    /// Closes the public port and every client connection.
    pub fn shutdown(mut self) {
        self.stop_relay();
    }

    fn stop_relay(&mut self) {
        self.go_down();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.relay.take() {
            let _ = h.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop_relay();
    }
}

async fn accept_loop(listener: TcpListener, internal: SocketAddr, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of descriptors or similar: back off, keep serving.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if *shared.down.borrow() {
            drop(client); // refused: the broker is down
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        next_id += 1;
        let id = next_id;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Ok(mut l) = shared.live.lock() {
                l.insert(id, ());
            }
            relay(client, internal, &shared).await;
            if let Ok(mut l) = shared.live.lock() {
                l.remove(&id);
            }
        });
    }
}

async fn relay(mut client: TcpStream, internal: SocketAddr, shared: &Shared) {
    let mut cut = shared.generation.subscribe();
    cut.mark_unchanged();
    let Ok(mut upstream) = TcpStream::connect(internal).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start-up probe tells a broker from anything else on the port:
    /// a listener that accepts and says nothing, and a free port, are not
    /// brokers; a started broker is.
    #[test]
    fn the_probe_tells_a_broker_from_a_port_that_merely_accepts() {
        let silent = StdListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let silent_addr = silent.local_addr().unwrap();
        assert!(!answers_mqtt(silent_addr), "a silent listener is no broker");
        drop(silent);
        let free = internal_address().unwrap();
        assert!(
            !answers_mqtt(free),
            "nothing listens on a fresh internal address"
        );
        let broker = EmbeddedBroker::start(EmbeddedBrokerConfig::default()).unwrap();
        assert!(answers_mqtt(broker.addr()), "through the relay");
    }

    /// Brokers started one after another get internal addresses of their
    /// own, so two in one test run never share rumqttd's port.
    #[test]
    fn internal_addresses_differ_between_brokers() {
        let a = internal_address().unwrap();
        let b = internal_address().unwrap();
        assert_ne!(a, b);
    }
}
