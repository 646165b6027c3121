//! The fleet's MQTT transport against the embedded broker (rumqttd in this
//! process): publish/subscribe, persistent sessions, a broker outage in the
//! middle of a stream with no QoS 1 message lost, seeded faults, clear
//! errors, many clients. No timed assertions: timeouts only stop a hang.

#[path = "common/mqtt.rs"]
mod common;

use std::time::Duration;

use common::{collect, collect_more, publish_numbered, HANG};
use rigs::mqtt::{
    BrokerUrl, ClientOptions, EmbeddedBroker, EmbeddedBrokerConfig, Faults, Message, MqttClient,
    MqttError,
};

fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start(EmbeddedBrokerConfig::default()).expect("the embedded broker starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_roundtrip_with_counters() {
    let b = broker();
    let url = b.url();
    let (rx_client, mut rx) =
        MqttClient::connect(&url, ClientOptions::new("rx"), &["maslow/t/#".to_owned()])
            .await
            .unwrap();
    let (tx_client, _) = MqttClient::connect(&url, ClientOptions::new("tx"), &[])
        .await
        .unwrap();
    publish_numbered(&tx_client, "maslow/t/a", 0..200).await;
    tx_client.flush(HANG).await.unwrap();
    let got = collect(&mut rx, 200).await;
    assert_eq!(got.len(), 200);
    // One publisher, one topic: in order, exactly once.
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    assert!(got.values().all(|&n| n == 1));
    let c = tx_client.counters();
    assert_eq!((c.published, c.acked, c.dropped), (200, 200, 0));
    assert_eq!(rx_client.counters().received, 200);
    rx_client.disconnect().await;
    tx_client.disconnect().await;
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_what_was_published_while_away() {
    let b = broker();
    let url = b.url();
    let filters = ["maslow/away/#".to_owned()];
    let (away, _rx) = MqttClient::connect(&url, ClientOptions::new("away"), &filters)
        .await
        .unwrap();
    away.disconnect().await;
    let (tx, _) = MqttClient::connect(&url, ClientOptions::new("tx2"), &[])
        .await
        .unwrap();
    publish_numbered(&tx, "maslow/away/x", 0..50).await;
    tx.flush(HANG).await.unwrap();
    let (back, mut rx) = MqttClient::connect(&url, ClientOptions::new("away"), &filters)
        .await
        .unwrap();
    let got = collect(&mut rx, 50).await;
    assert_eq!(got.len(), 50, "queued QoS 1 messages delivered on return");
    back.disconnect().await;
}

/// A broker outage in the middle of a stream: every connection is cut,
/// new ones refused for a while, then the broker is back with its sessions.
/// Every QoS 1 message arrives; a redelivered one is counted as a duplicate
/// and executed once (idempotent ids at the receiver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_mid_stream_loses_nothing() {
    let b = broker();
    let url = b.url();
    let (rx_client, mut rx) = MqttClient::connect(
        &url,
        ClientOptions::new("rx-out"),
        &["maslow/o/#".to_owned()],
    )
    .await
    .unwrap();
    let (tx, _) = MqttClient::connect(&url, ClientOptions::new("tx-out"), &[])
        .await
        .unwrap();
    const N: u64 = 3000;
    publish_numbered(&tx, "maslow/o/a", 0..N / 2).await;
    // Let part of the stream reach the receiver, then cut everything.
    let first = collect(&mut rx, 100).await;
    b.go_down();
    // Published while the broker is away: queued in the client.
    publish_numbered(&tx, "maslow/o/a", N / 2..N).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.recover();
    let got = collect_more(&mut rx, first, N as usize).await;
    tx.flush(HANG).await.unwrap();
    let executed = got.len() as u64;
    let duplicates: u64 = got.values().map(|n| n - 1).sum();
    assert_eq!(
        executed, N,
        "every id executed once; {duplicates} duplicates ignored"
    );
    assert!(tx.counters().reconnects >= 1, "{:?}", tx.counters());
    assert!(
        rx_client.counters().reconnects >= 1,
        "{:?}",
        rx_client.counters()
    );
    eprintln!(
        "outage: {N} ids executed once, {duplicates} redelivered duplicates; tx {:?}; rx {:?}",
        tx.counters(),
        rx_client.counters()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_faults_drop_and_duplicate_reproducibly() {
    let b = broker();
    let url = b.url();
    let faults = Faults::parse("drop=0.25,duplicate=0.1,delay=uniform:0ms..2ms,seed=11").unwrap();
    let mut runs = Vec::new();
    for run in 0..2 {
        let (rxc, mut rx) = MqttClient::connect(
            &url,
            ClientOptions::new(format!("rx-f{run}")),
            &[format!("maslow/f{run}/#")],
        )
        .await
        .unwrap();
        let mut opts = ClientOptions::new("tx-faulty");
        opts.clean_session = true;
        opts.faults = faults.clone();
        let (tx, _) = MqttClient::connect(&url, opts, &[]).await.unwrap();
        publish_numbered(&tx, &format!("maslow/f{run}/x"), 0..400).await;
        tx.flush(HANG).await.unwrap();
        let c = tx.counters();
        assert!(
            c.dropped > 50 && c.duplicated > 10 && c.delayed > 0,
            "{c:?}"
        );
        assert_eq!(c.published, 400 - c.dropped + c.duplicated);
        let mut got = collect(&mut rx, (400 - c.dropped) as usize).await;
        // The last duplicates may still be on their way.
        while got.values().sum::<u64>() < c.published {
            let m = tokio::time::timeout(HANG, rx.recv())
                .await
                .expect("every sent copy arrives within the hang timeout")
                .unwrap();
            let id = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
            *got.entry(id).or_default() += 1;
        }
        let total: u64 = got.values().sum();
        assert_eq!(total, c.published, "every sent copy arrives");
        assert_eq!(got.len() as u64, 400 - c.dropped);
        assert_eq!(rxc.counters().received, c.published);
        runs.push(got.keys().copied().collect::<Vec<_>>());
        tx.disconnect().await;
    }
    assert_eq!(runs[0], runs[1], "same seed, same messages dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_and_closed_broker_name_the_url() {
    let b = broker();
    let url = b.url();
    b.shutdown();
    let mut opts = ClientOptions::new("nobody");
    opts.connect_timeout = Duration::from_secs(5);
    let e = match MqttClient::connect(&url, opts, &[]).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a broker that was shut down"),
    };
    let text = e.to_string();
    assert!(
        matches!(e, MqttError::Unreachable { .. } | MqttError::Timeout { .. }),
        "{text}"
    );
    assert!(
        text.contains(&url.to_string()) && text.contains("--broker"),
        "{text}"
    );
    let bad = BrokerUrl::parse("http://127.0.0.1:1883")
        .unwrap_err()
        .to_string();
    assert!(bad.contains("mqtt://HOST:PORT"), "{bad}");
}

/// Many clients at once, each on its own connection: every one gets the
/// broadcast and answers on its own topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_answer_a_broadcast() {
    let b = broker();
    let url = b.url();
    const N: usize = 500;
    let (server, mut acks) = MqttClient::connect(
        &url,
        ClientOptions::new("server"),
        &["maslow/s/+/ack".to_owned()],
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..N {
        let url = url.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (c, mut rx) = MqttClient::connect(
                &url,
                ClientOptions::new(format!("site-{i}")),
                &["maslow/b/dispatch".to_owned()],
            )
            .await
            .expect("site connects");
            let _ = ready.send(());
            let m = tokio::time::timeout(HANG, rx.recv())
                .await
                .expect("broadcast within the hang timeout")
                .expect("channel open");
            c.publish(Message {
                topic: format!("maslow/s/{i}/ack"),
                payload: m.payload,
                retain: false,
            })
            .await
            .unwrap();
            c.flush(HANG).await.unwrap();
            c.disconnect().await;
        }));
    }
    for _ in 0..N {
        tokio::time::timeout(HANG, ready_rx.recv()).await.unwrap();
    }
    server
        .publish(Message {
            topic: "maslow/b/dispatch".into(),
            payload: b"go".to_vec(),
            retain: false,
        })
        .await
        .unwrap();
    let mut sites = std::collections::BTreeSet::new();
    while sites.len() < N {
        let m = tokio::time::timeout(HANG, acks.recv())
            .await
            .expect("acks within the hang timeout")
            .unwrap();
        assert_eq!(m.payload, b"go");
        sites.insert(m.topic);
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sites.len(), N);
}
