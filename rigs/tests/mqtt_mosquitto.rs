//! The fleet's MQTT client against a real Mosquitto (the Debian package) on
//! loopback, started by each test with its own configuration: plain
//! publish/subscribe, a persistent session, broker credentials (a password
//! file made with `mosquitto_passwd`), TLS with a test CA made here with
//! rcgen, and a broker restart in the middle of a stream.
//!
//! Skipped, with the reason printed, where mosquitto is missing, unless
//! `MASLOW_REQUIRE_MOSQUITTO=1` (as in CI): then a missing broker fails.
//! `MASLOW_MOSQUITTO=PORT` additionally runs the round trip against a
//! Mosquitto someone already runs on that loopback port.

#[path = "common/mqtt.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::{collect, collect_more, mosquitto_binary, publish_numbered, Mosquitto, HANG};
use rigs::mqtt::{BrokerUrl, ClientOptions, Credentials, MqttClient, MqttError, TlsFiles};

async fn roundtrip(url: &BrokerUrl, opts: impl Fn(&str) -> ClientOptions, tag: &str) {
    let topic = format!("maslow/{tag}/x");
    let (rxc, mut rx) = MqttClient::connect(
        url,
        opts(&format!("{tag}-rx")),
        &[format!("maslow/{tag}/#")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (tx, _) = MqttClient::connect(url, opts(&format!("{tag}-tx")), &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    publish_numbered(&tx, &topic, 0..300).await;
    tx.flush(HANG).await.unwrap();
    let got = collect(&mut rx, 300).await;
    assert_eq!(got.len(), 300);
    assert!(got.values().all(|&n| n == 1), "exactly once without faults");
    assert_eq!(rxc.counters().received, 300);
    tx.disconnect().await;
    rxc.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_roundtrip_and_persistent_session() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let m = Mosquitto::start(&bin, "allow_anonymous true");
    let url = m.url();
    roundtrip(&url, |id| ClientOptions::new(id), "plain").await;

    // Away while messages are published: delivered on return.
    let filters = ["maslow/away/#".to_owned()];
    let (away, _) = MqttClient::connect(&url, ClientOptions::new("m-away"), &filters)
        .await
        .unwrap();
    away.disconnect().await;
    let (tx, _) = MqttClient::connect(&url, ClientOptions::new("m-tx"), &[])
        .await
        .unwrap();
    publish_numbered(&tx, "maslow/away/y", 0..100).await;
    tx.flush(HANG).await.unwrap();
    let (back, mut rx) = MqttClient::connect(&url, ClientOptions::new("m-away"), &filters)
        .await
        .unwrap();
    assert_eq!(collect(&mut rx, 100).await.len(), 100);
    back.disconnect().await;

    if let Ok(port) = std::env::var("MASLOW_MOSQUITTO") {
        let port: u16 = port
            .parse()
            .unwrap_or_else(|_| panic!("MASLOW_MOSQUITTO={port:?} is not a port number"));
        roundtrip(
            &BrokerUrl::loopback(port),
            |id| ClientOptions::new(id),
            "external",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_credentials_accepted_and_refused() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("passwd");
    let out = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pwfile)
        .args(["fleet", "correct horse"])
        .output()
        .expect("mosquitto_passwd runs (apt-get install mosquitto)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Mosquitto::start(
        &bin,
        &format!("allow_anonymous false\npassword_file {}", pwfile.display()),
    );
    let url = m.url();
    let good = Credentials::new("fleet", "correct horse");
    roundtrip(
        &url,
        |id| {
            let mut o = ClientOptions::new(id);
            o.credentials = Some(good.clone());
            o
        },
        "auth",
    )
    .await;
    for creds in [Some(Credentials::new("fleet", "wrong")), None] {
        let mut o = ClientOptions::new("intruder");
        o.credentials = creds;
        match MqttClient::connect(&url, o, &[]).await {
            Err(e @ MqttError::NotAuthorized { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("--broker-user") && !text.contains("wrong"),
                    "{text}"
                );
            }
            Err(e) => panic!("expected NotAuthorized, got {e}"),
            Ok(_) => panic!("the broker let a client in without the right password"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_tls_with_a_test_ca() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    // A CA and a broker certificate for localhost and 127.0.0.1.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "maslow test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("broker.pem"), cert.pem()).unwrap();
    std::fs::write(p("broker.key"), key.serialize_pem()).unwrap();
    let m = Mosquitto::start(
        &bin,
        &format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}",
            p("ca.pem").display(),
            p("broker.pem").display(),
            p("broker.key").display()
        ),
    );
    let url = BrokerUrl::parse(&format!("mqtts://127.0.0.1:{}", m.port)).unwrap();
    let ca_file = p("ca.pem");
    roundtrip(
        &url,
        |id| {
            let mut o = ClientOptions::new(id);
            o.tls = TlsFiles {
                ca: Some(ca_file.clone()),
                ..TlsFiles::default()
            };
            o
        },
        "tls",
    )
    .await;
    // The system trust store does not know the test CA: a clear TLS error.
    let mut o = ClientOptions::new("untrusting");
    o.connect_timeout = Duration::from_secs(10);
    match MqttClient::connect(&url, o, &[]).await {
        Err(e @ MqttError::Tls { .. }) => assert!(e.to_string().contains("--broker-ca"), "{e}"),
        Err(e) => panic!("expected a TLS error, got {e}"),
        Ok(_) => panic!("connected with a certificate nobody trusts"),
    }
    // A missing CA file names the file.
    let mut o = ClientOptions::new("nofile");
    o.tls.ca = Some(p("missing.pem"));
    match MqttClient::connect(&url, o, &[]).await {
        Err(e @ MqttError::TlsFile { .. }) => assert!(e.to_string().contains("missing.pem"), "{e}"),
        Err(e) => panic!("expected a TLS file error, got {e}"),
        Ok(_) => panic!("connected without a CA file"),
    }
}

/// Mosquitto is stopped (SIGTERM: it saves its sessions) and started again
/// on the same port in the middle of a stream: every QoS 1 message arrives,
/// redelivered copies are recognised by their id and executed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_mid_stream_loses_nothing() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let mut m = Mosquitto::start(&bin, "allow_anonymous true");
    let url = m.url();
    let (rxc, mut rx) =
        MqttClient::connect(&url, ClientOptions::new("r-rx"), &["maslow/r/#".to_owned()])
            .await
            .unwrap();
    let (tx, _) = MqttClient::connect(&url, ClientOptions::new("r-tx"), &[])
        .await
        .unwrap();
    const N: u64 = 3000;
    publish_numbered(&tx, "maslow/r/a", 0..N / 2).await;
    let first = collect(&mut rx, 100).await;
    m.restart(Duration::from_millis(300));
    publish_numbered(&tx, "maslow/r/a", N / 2..N).await;
    let got = collect_more(&mut rx, first, N as usize).await;
    tx.flush(HANG).await.unwrap();
    let duplicates: u64 = got.values().map(|n| n - 1).sum();
    assert_eq!(
        got.len() as u64,
        N,
        "every id executed once ({duplicates} duplicates ignored)"
    );
    assert!(tx.counters().reconnects >= 1, "{:?}", tx.counters());
    assert!(rxc.counters().reconnects >= 1, "{:?}", rxc.counters());
    eprintln!(
        "mosquitto restart: {N} ids executed once, {duplicates} duplicates; tx {:?}; rx {:?}",
        tx.counters(),
        rxc.counters()
    );
}
