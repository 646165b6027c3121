//! SLCAN over a real pseudo-terminal pair: a host-side `SlcanBus` on the
//! slave end opens an adapter-side `SlcanBus` on the master end, then
//! 10,000 seeded random frames cross in each direction at once. Every frame
//! must arrive intact and in order, and both sides' stats must count the
//! bits (stuff bits included) of exactly those frames.

use links::slcan_bus::SlcanBus;
use links::{bit_length, CanBus, CanFrame, CanId, Pty};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

fn random_frames(seed: u64, n: usize) -> Vec<CanFrame> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let id = if rng.gen_bool(0.3) {
                CanId::Extended(rng.gen_range(0..=0x1FFF_FFFF))
            } else {
                CanId::Standard(rng.gen_range(0..=0x7FF))
            };
            let dlc = rng.gen_range(0..=8u8);
            if rng.gen_bool(0.1) {
                CanFrame::remote(id, dlc).unwrap()
            } else {
                let data: Vec<u8> = (0..dlc).map(|_| rng.gen()).collect();
                CanFrame::new(id, &data).unwrap()
            }
        })
        .collect()
}

fn bits(frames: &[CanFrame]) -> u64 {
    frames
        .iter()
        .map(|f| u64::from(bit_length(f).actual()))
        .sum()
}

/// Send `out` in bursts of 50 (flushing after each), while receiving
/// `expect_n` frames; both at once, as a lockstep side would.
async fn exchange(bus: &mut SlcanBus, out: &[CanFrame], expect_n: usize) -> Vec<CanFrame> {
    let mut got = Vec::with_capacity(expect_n);
    let mut bursts = out.chunks(50);
    let mut sending = true;
    while got.len() < expect_n || sending {
        if sending {
            match bursts.next() {
                Some(burst) => {
                    for f in burst {
                        bus.send(f).await.unwrap();
                    }
                    bus.flush().await.unwrap();
                }
                None => sending = false,
            }
        }
        // Take what has arrived; wait only once there is nothing to send.
        loop {
            if got.len() == expect_n {
                break;
            }
            let wait = if sending {
                Duration::ZERO
            } else {
                Duration::from_secs(10)
            };
            match tokio::time::timeout(wait, bus.recv()).await {
                Ok(r) => got.push(r.unwrap()),
                Err(_) if sending => break,
                Err(_) => panic!("{} of {expect_n} frames arrived", got.len()),
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_frames_cross_a_pty_both_ways_intact_and_in_order() {
    const N: usize = 10_000;
    let to_adapter = random_frames(1, N);
    let to_host = random_frames(2, N);

    let pty = Pty::open().unwrap();
    let slave = pty.slave.try_clone_native().unwrap();
    let mut adapter = SlcanBus::adapter_on_pty(pty).unwrap();
    let serve = tokio::spawn(async move {
        adapter.wait_until_open().await.unwrap();
        adapter
    });
    let mut host = SlcanBus::host(slave, 500_000).await.unwrap();
    let mut adapter = serve.await.unwrap();

    let (ta, th) = (to_adapter.clone(), to_host.clone());
    // The task hands the adapter back rather than dropping it: dropping it
    // closes the pty master, which hangs up the slave and discards what the
    // host has not read yet (its reads then return 0, i.e. Disconnected).
    let adapter_side = tokio::spawn(async move {
        let got = exchange(&mut adapter, &th, N).await;
        (got, adapter)
    });
    let got_by_host = exchange(&mut host, &ta, N).await;
    let (got_by_adapter, adapter) = adapter_side.await.unwrap();
    let adapter_stats = adapter.stats();

    assert_eq!(got_by_adapter.len(), N);
    assert!(got_by_adapter == to_adapter, "host → adapter frames differ");
    assert!(got_by_host == to_host, "adapter → host frames differ");

    let host_stats = host.stats();
    assert_eq!(host_stats.frames_sent, N as u64);
    assert_eq!(host_stats.bits_sent, bits(&to_adapter));
    assert_eq!(host_stats.frames_received, N as u64);
    assert_eq!(host_stats.bits_received, bits(&to_host));
    assert_eq!(adapter_stats.frames_received, N as u64);
    assert_eq!(adapter_stats.bits_received, bits(&to_adapter));
    assert_eq!(adapter_stats.bits_sent, bits(&to_host));
    assert_eq!(host_stats.errors.total(), 0, "{host_stats:?}");
    assert_eq!(adapter_stats.errors.total(), 0, "{adapter_stats:?}");
}
