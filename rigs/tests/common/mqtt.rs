//! What the MQTT tests share: numbered messages, collecting them, and a
//! Mosquitto started for one test on a free loopback port.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rigs::mqtt::{Message, MqttClient};
use tokio::sync::mpsc::UnboundedReceiver;

/// Only to stop a hang: a test that needs this long has failed.
pub const HANG: Duration = Duration::from_secs(60);

/// Publishes messages whose payload is their id, `ids` in order.
pub async fn publish_numbered(c: &MqttClient, topic: &str, ids: Range<u64>) {
    for i in ids {
        c.publish(Message {
            topic: topic.to_owned(),
            payload: i.to_be_bytes().to_vec(),
            retain: false,
        })
        .await
        .expect("publish");
    }
}

/// How many times each id was received in `msgs`.
pub fn numbered(msgs: &[Message]) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for msg in msgs {
        let id = u64::from_be_bytes(msg.payload[..8].try_into().expect("8-byte id"));
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

/// Receives until `n` distinct ids have arrived (then drains what is
/// already queued); id → times received.
pub async fn collect(rx: &mut UnboundedReceiver<Message>, n: usize) -> BTreeMap<u64, u64> {
    collect_more(rx, BTreeMap::new(), n).await
}

/// As [`collect`], counting on from `seen` until `n` distinct ids in all.
pub async fn collect_more(
    rx: &mut UnboundedReceiver<Message>,
    seen: BTreeMap<u64, u64>,
    n: usize,
) -> BTreeMap<u64, u64> {
    let mut all = Vec::new();
    let merged = |all: &[Message]| {
        let mut m = seen.clone();
        for (k, c) in numbered(all) {
            *m.entry(k).or_insert(0) += c;
        }
        m
    };
    let t0 = Instant::now();
    loop {
        if merged(&all).len() >= n {
            break;
        }
        let left = HANG.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => all.push(m),
            Ok(None) => panic!("receiver closed after {} of {n} ids", numbered(&all).len()),
            Err(_) => panic!(
                "only {} of {n} distinct ids within {HANG:?}",
                numbered(&all).len()
            ),
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    while let Ok(m) = rx.try_recv() {
        all.push(m);
    }
    merged(&all)
}

/// The mosquitto binary, or `None` (printing why) where it is missing;
/// with `MASLOW_REQUIRE_MOSQUITTO=1` a missing broker fails the test.
pub fn mosquitto_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MASLOW_MOSQUITTO_BIN").map(PathBuf::from),
        Some(PathBuf::from("/usr/sbin/mosquitto")),
        Some(PathBuf::from("/usr/local/sbin/mosquitto")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    match found {
        Some(p) => Some(p),
        None if std::env::var("MASLOW_REQUIRE_MOSQUITTO").as_deref() == Ok("1") => panic!(
            "mosquitto is not installed but MASLOW_REQUIRE_MOSQUITTO=1 (.ci/run installs it: apt-get install mosquitto)"
        ),
        None => {
            eprintln!("mosquitto: skipped: /usr/sbin/mosquitto is not installed (apt-get install mosquitto; MASLOW_REQUIRE_MOSQUITTO=1 makes this a failure)");
            None
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto broker for one test: its own config, port, persistence
/// directory and log, stopped (SIGTERM, so it saves its sessions) on drop.
pub struct Mosquitto {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts mosquitto listening on 127.0.0.1 with `listener_extra` lines
    /// (TLS, authentication) under its listener; persistence on.
    pub fn start(bin: &Path, listener_extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!(
            "per_listener_settings true\n\
             user root\n\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             max_inflight_messages 200\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type error\nlog_type warning\nlog_type notice\n\
             listener {port} 127.0.0.1\n\
             set_tcp_nodelay true\n\
             {listener_extra}\n",
            dir = dir.path().display()
        );
        std::fs::write(&conf, text).unwrap();
        let mut m = Mosquitto {
            bin: bin.to_owned(),
            dir,
            port,
            conf,
            child: None,
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited with {status}; log:\n{}", self.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "mosquitto did not listen on {} within 20 s; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn url(&self) -> rigs::mqtt::BrokerUrl {
        rigs::mqtt::BrokerUrl::loopback(self.port)
    }

    /// SIGTERM (Mosquitto writes its persistence file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if t0.elapsed() > Duration::from_secs(20) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stops and starts again on the same port with the same persistence.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        self.launch();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
