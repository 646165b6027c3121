//! Dispatch-to-acknowledged latency over MQTT for a branch of 1,000
//! assemblies, each its own MQTT client connection (a tokio task), each
//! verifying the signed 144-byte dispatch with the real
//! `firmware::cluster::Cluster` before it acknowledges.
//!
//! The server publishes one branch-wide dispatch (QoS 1) and timestamps each
//! assembly's ack as it arrives: per-assembly latency = ack received − dispatch
//! published, time-to-all = the last one. Repeated for `ROUNDS` dispatches
//! (new sequence numbers), over the embedded broker and, when
//! `/usr/sbin/mosquitto` is installed, over a Mosquitto started for the run.
//!
//! `cargo bench -p rigs --bench mqtt_latency` (MASLOW_BENCH_ASSEMBLIES and
//! MASLOW_BENCH_ROUNDS override the defaults, 1000 and 20).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use firmware::cluster::{Cluster, ClusterConfig, DispatchContext, Envelope, PublicKeyHex, Verdict};
use firmware::remote_config::RemoteConfigBounds;
use firmware::wire::dispatch::{
    encode, Command as DispatchCommand, Dispatch, Requirement, RequirementKind,
};
use firmware::Millis;
use rigs::mqtt::{
    BrokerUrl, ClientOptions, EmbeddedBroker, EmbeddedBrokerConfig, Message, MqttClient,
};

const BRANCH: u32 = 17;
const UTC0: u64 = 1_790_000_000;
const HANG: Duration = Duration::from_secs(120);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster(site_id: u32, key: &SigningKey) -> Cluster {
    let mut trusted_keys = heapless::Vec::new();
    let _ = trusted_keys.push(PublicKeyHex(key.verifying_key().to_bytes()));
    Cluster::new(ClusterConfig {
        site_id,
        branch_id: BRANCH,
        trusted_keys,
        envelope: Envelope::default(),
        server_silence_s: 180,
        remote_config: RemoteConfigBounds::default(),
    })
    .expect("valid cluster config")
}

/// One assembly: receives dispatches, verifies them in the firmware core,
/// acks with (sequence, accepted).
async fn assembly(
    url: BrokerUrl,
    site: u32,
    key: SigningKey,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut c = cluster(site, &key);
    let mut opts = ClientOptions::new(format!("bench-site-{site}"));
    opts.clean_session = true;
    opts.connect_timeout = Duration::from_secs(60);
    let (client, mut rx) = MqttClient::connect(
        &url,
        opts,
        &[format!("maslow/bench/branch/{BRANCH}/dispatch")],
    )
    .await
    .unwrap_or_else(|e| panic!("site {site}: {e}"));
    let _ = ready.send(());
    let mut now = 0u64;
    while let Some(m) = rx.recv().await {
        if m.payload == b"stop" {
            break;
        }
        now += 1000;
        let verdict = c.handle(
            Millis(now),
            UTC0 + now / 1000,
            &m.payload,
            DispatchContext::default(),
        );
        let accepted = matches!(verdict, Verdict::Accepted(_));
        let seq = u64::from_be_bytes(m.payload[44..52].try_into().unwrap_or([0; 8]));
        let mut ack = seq.to_be_bytes().to_vec();
        ack.push(accepted as u8);
        client
            .publish(Message {
                topic: format!("maslow/bench/site/{site}/ack"),
                payload: ack,
                retain: false,
            })
            .await
            .expect("ack published");
    }
    client.disconnect().await;
}

struct Figures {
    per_assembly_ms: Vec<f64>,
    time_to_all_ms: Vec<f64>,
    connect_s: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(url: BrokerUrl, n: usize, rounds: usize) -> Figures {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let (server, mut acks) = MqttClient::connect(
        &url,
        {
            let mut o = ClientOptions::new("bench-server");
            o.clean_session = true;
            o
        },
        &["maslow/bench/site/+/ack".to_owned()],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let t_connect = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(tokio::spawn(assembly(
            url.clone(),
            i as u32 + 1,
            key.clone(),
            ready_tx.clone(),
        )));
    }
    for _ in 0..n {
        tokio::time::timeout(HANG, ready_rx.recv())
            .await
            .expect("every assembly connects within the hang timeout");
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    let mut per_assembly_ms = Vec::with_capacity(n * rounds);
    let mut time_to_all_ms = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let d = Dispatch {
            branch_id: BRANCH,
            site_id: 0,
            sequence: 100 + r as u64,
            issued_at_s: UTC0,
            expires_at_s: UTC0 + 600,
            command: DispatchCommand::Source {
                power_w: 1500,
                duration_s: 1800,
            },
            requirement: Some(Requirement {
                kind: RequirementKind::PeakDemand,
                reference: 1,
            }),
        };
        let bytes = encode(&d, &key).to_vec();
        assert_eq!(bytes.len(), 144);
        let t0 = Instant::now();
        server
            .publish(Message {
                topic: format!("maslow/bench/branch/{BRANCH}/dispatch"),
                payload: bytes,
                retain: false,
            })
            .await
            .unwrap();
        let mut got = 0;
        let mut last = 0.0;
        while got < n {
            let m = tokio::time::timeout(HANG, acks.recv())
                .await
                .expect("acks within the hang timeout")
                .expect("ack channel open");
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let seq = u64::from_be_bytes(m.payload[..8].try_into().expect("ack has a sequence"));
            if seq != d.sequence {
                continue; // a late ack of an earlier round (cannot happen with QoS 1 in order)
            }
            assert_eq!(m.payload[8], 1, "{} did not accept the dispatch", m.topic);
            per_assembly_ms.push(ms);
            last = ms;
            got += 1;
        }
        time_to_all_ms.push(last);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
        .publish(Message {
            topic: format!("maslow/bench/branch/{BRANCH}/dispatch"),
            payload: b"stop".to_vec(),
            retain: false,
        })
        .await
        .unwrap();
    for t in tasks {
        let _ = tokio::time::timeout(HANG, t).await;
    }
    server.disconnect().await;
    per_assembly_ms.sort_by(f64::total_cmp);
    time_to_all_ms.sort_by(f64::total_cmp);
    Figures {
        per_assembly_ms,
        time_to_all_ms,
        connect_s,
    }
}

fn print(name: &str, n: usize, f: &Figures) {
    let a = &f.per_assembly_ms;
    let t = &f.time_to_all_ms;
    println!(
        "{name:<10} {n:>5} assemblies, {} dispatches: per-assembly p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; time-to-all p50 {:.2} ms, max {:.2} ms; {n} connections in {:.2} s",
        t.len(),
        pct(a, 0.5),
        pct(a, 0.99),
        a.last().copied().unwrap_or(f64::NAN),
        pct(t, 0.5),
        t.last().copied().unwrap_or(f64::NAN),
        f.connect_s
    );
}

struct MosquittoProc {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for MosquittoProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> Option<MosquittoProc> {
    let bin = std::path::Path::new("/usr/sbin/mosquitto");
    if !bin.is_file() {
        println!("mosquitto: not installed (apt-get install mosquitto), embedded broker only");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n"),
    )
    .ok()?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(20) {
            println!("mosquitto: did not listen within 20 s, skipped");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(MosquittoProc {
        child,
        _dir: dir,
        port,
    })
}

fn main() {
    // `cargo test --benches` runs bench binaries with no `--bench`: a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n = env_or("MASLOW_BENCH_ASSEMBLIES", if smoke { 20 } else { 1000 });
    let rounds = env_or("MASLOW_BENCH_ROUNDS", if smoke { 2 } else { 20 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "mqtt_latency: {n} assemblies, one MQTT connection each, {rounds} signed branch dispatches, QoS 1, {} CPUs",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let broker = EmbeddedBroker::start(EmbeddedBrokerConfig::default()).expect("embedded broker");
    let f = rt.block_on(run(broker.url(), n, rounds));
    print("embedded", n, &f);
    broker.shutdown();
    if let Some(m) = mosquitto() {
        let f = rt.block_on(run(BrokerUrl::loopback(m.port), n, rounds));
        print("mosquitto", n, &f);
    }
}
