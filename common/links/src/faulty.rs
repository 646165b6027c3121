//! Fault injection: [`FaultyBus`] wraps any [`CanBus`] and, per direction,
//! drops, duplicates, corrupts and delays frames at seeded random rates,
//! and loses everything during scheduled bus-off periods.
//!
//! * **Drop**: the frame vanishes (the sender is not told, as on a bus
//!   where the receiver missed it).
//! * **Duplicate**: the frame arrives twice in a row.
//! * **Corrupt**: one random data bit is flipped; id and DLC are kept (a
//!   frame whose CRC the bus failed to catch — the E2E check must). Frames
//!   without data bytes (DLC 0, remote) cannot be corrupted and are passed
//!   as they are, uncounted.
//! * **Delay**: the frame is held for [`FaultPlan::delay`] of tokio's clock,
//!   then delivered; frames behind it are not held, so a delay also
//!   reorders. A held outgoing frame goes out on the first `send`, `flush`
//!   or `recv` at or after its time (`recv` wakes for it); a held incoming
//!   one is returned by the first `recv` at or after its time.
//! * **Bus off**: between the given offsets from the wrapper's creation,
//!   every frame in both directions is lost and `send` returns
//!   [`LinkError::BusOff`].
//!
//! Deterministic: each direction has its own ChaCha8 stream from the seed
//! and draws the same five numbers for every frame, so the same seed and
//! the same sequence of frames in a direction give the same faults, however
//! sends and receives interleave. Time is tokio's clock, so tests (and
//! lockstep rigs) can run it paused.

use crate::bus::{CanBus, DirectionFaults, LinkError, LinkStats};
use crate::frame::CanFrame;
use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Probabilities (0..=1) of each fault for one direction, drawn
/// independently per frame; a dropped frame suffers nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultRates {
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    pub delay: f64,
}

/// What to inject, and the seed that fixes where.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    pub seed: u64,
    /// Faults on frames this side sends.
    pub send: FaultRates,
    /// Faults on frames this side receives.
    pub recv: FaultRates,
    /// How long a delayed frame is held.
    pub delay: Duration,
    /// Bus-off periods `(from, until)`, as offsets from the wrapper's
    /// creation.
    pub bus_off: Vec<(Duration, Duration)>,
}

/// Why a fault plan was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FaultPlanError {
    #[error("{direction} {fault} rate {rate} is not a probability in 0..=1")]
    BadRate {
        direction: &'static str,
        fault: &'static str,
        rate: f64,
    },
    #[error("bus-off period {from:?}..{until:?} ends before it starts")]
    BadBusOff { from: Duration, until: Duration },
}

impl FaultPlan {
    fn check(&self) -> Result<(), FaultPlanError> {
        for (direction, r) in [("send", &self.send), ("recv", &self.recv)] {
            for (fault, rate) in [
                ("drop", r.drop),
                ("duplicate", r.duplicate),
                ("corrupt", r.corrupt),
                ("delay", r.delay),
            ] {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(FaultPlanError::BadRate {
                        direction,
                        fault,
                        rate,
                    });
                }
            }
        }
        for &(from, until) in &self.bus_off {
            if until < from {
                return Err(FaultPlanError::BadBusOff { from, until });
            }
        }
        Ok(())
    }
}

/// What one direction does to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fate {
    drop: bool,
    duplicate: bool,
    /// Bit to flip, counted over the data bytes (already reduced modulo
    /// their number of bits); `None` when not corrupted.
    flip: Option<usize>,
    delay: bool,
}

/// One direction's random stream and counters.
#[derive(Debug)]
struct Injector {
    rates: FaultRates,
    rng: ChaCha8Rng,
    counts: DirectionFaults,
}

impl Injector {
    fn new(rates: FaultRates, seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Injector {
            rates,
            rng,
            counts: DirectionFaults::default(),
        }
    }

    /// Decide a frame's fate: always five draws, so one frame's fate does
    /// not shift the next one's.
    fn fate(&mut self, frame: &CanFrame) -> Fate {
        let u_drop: f64 = self.rng.gen();
        let u_dup: f64 = self.rng.gen();
        let u_corrupt: f64 = self.rng.gen();
        let bit: u32 = self.rng.gen();
        let u_delay: f64 = self.rng.gen();
        let data_bits = frame.data().len() * 8;
        let drop = u_drop < self.rates.drop;
        let fate = Fate {
            drop,
            duplicate: !drop && u_dup < self.rates.duplicate,
            flip: (!drop && u_corrupt < self.rates.corrupt && data_bits > 0)
                .then(|| bit as usize % data_bits),
            delay: !drop && u_delay < self.rates.delay,
        };
        let c = &mut self.counts;
        c.dropped += u64::from(fate.drop);
        c.duplicated += u64::from(fate.duplicate);
        c.corrupted += u64::from(fate.flip.is_some());
        c.delayed += u64::from(fate.delay);
        fate
    }
}

/// `frame` with data bit `bit` flipped (bit 0 = MSB of byte 0).
fn flip_bit(frame: &CanFrame, bit: usize) -> CanFrame {
    let mut data = [0u8; 8];
    let n = frame.data().len();
    data[..n].copy_from_slice(frame.data());
    if let Some(byte) = data.get_mut(bit / 8) {
        *byte ^= 0x80 >> (bit % 8);
    }
    CanFrame::new(frame.id(), &data[..n]).unwrap_or(*frame)
}

/// A [`CanBus`] that injects faults into another; see the module docs.
#[derive(Debug)]
pub struct FaultyBus<B: CanBus> {
    inner: B,
    plan: FaultPlan,
    start: Instant,
    send: Injector,
    recv: Injector,
    /// Delayed outgoing frames, by release time (FIFO: one fixed delay).
    held_send: VecDeque<(Instant, CanFrame)>,
    held_recv: VecDeque<(Instant, CanFrame)>,
    ready: VecDeque<CanFrame>,
}

impl<B: CanBus> FaultyBus<B> {
    /// Wrap `inner`. Bus-off offsets count from now (tokio's clock).
    pub fn new(inner: B, plan: FaultPlan) -> Result<Self, FaultPlanError> {
        plan.check()?;
        Ok(FaultyBus {
            send: Injector::new(plan.send, plan.seed, 0),
            recv: Injector::new(plan.recv, plan.seed, 1),
            inner,
            plan,
            start: Instant::now(),
            held_send: VecDeque::new(),
            held_recv: VecDeque::new(),
            ready: VecDeque::new(),
        })
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped transport, for traffic that must bypass the faults (a
    /// lockstep rig's time sync is the rig's clock, not plant traffic).
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    pub fn into_inner(self) -> B {
        self.inner
    }

    /// Whether `at` falls in a bus-off period.
    pub fn is_bus_off(&self, at: Instant) -> bool {
        let t = at.saturating_duration_since(self.start);
        self.plan
            .bus_off
            .iter()
            .any(|&(from, until)| from <= t && t < until)
    }

    /// Send held frames whose time has come.
    async fn release_sends(&mut self) -> Result<(), LinkError> {
        let now = Instant::now();
        while let Some(&(due, frame)) = self.held_send.front() {
            if due > now {
                break;
            }
            self.held_send.pop_front();
            if self.is_bus_off(now) {
                self.send.counts.lost_to_bus_off += 1;
            } else {
                self.inner.send(&frame).await?;
            }
        }
        Ok(())
    }

    /// Move held incoming frames whose time has come to `ready`.
    fn release_recvs(&mut self) {
        let now = Instant::now();
        while let Some(&(due, frame)) = self.held_recv.front() {
            if due > now {
                break;
            }
            self.held_recv.pop_front();
            if self.is_bus_off(now) {
                self.recv.counts.lost_to_bus_off += 1;
            } else {
                self.ready.push_back(frame);
            }
        }
    }

    /// Apply the receive direction's faults to a frame off the inner bus.
    fn arrive(&mut self, frame: CanFrame) {
        let now = Instant::now();
        if self.is_bus_off(now) {
            self.recv.counts.lost_to_bus_off += 1;
            return;
        }
        let fate = self.recv.fate(&frame);
        if fate.drop {
            return;
        }
        let frame = fate.flip.map_or(frame, |bit| flip_bit(&frame, bit));
        let copies = 1 + usize::from(fate.duplicate);
        for _ in 0..copies {
            if fate.delay {
                self.held_recv.push_back((now + self.plan.delay, frame));
            } else {
                self.ready.push_back(frame);
            }
        }
    }
}

#[async_trait]
impl<B: CanBus> CanBus for FaultyBus<B> {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        self.release_sends().await?;
        let now = Instant::now();
        if self.is_bus_off(now) {
            self.send.counts.lost_to_bus_off += 1;
            return Err(LinkError::BusOff);
        }
        let fate = self.send.fate(frame);
        if fate.drop {
            return Ok(());
        }
        let frame = fate.flip.map_or(*frame, |bit| flip_bit(frame, bit));
        let copies = 1 + usize::from(fate.duplicate);
        for _ in 0..copies {
            if fate.delay {
                self.held_send.push_back((now + self.plan.delay, frame));
            } else {
                self.inner.send(&frame).await?;
            }
        }
        Ok(())
    }

    /// Cancel-safe as long as the inner `recv` is: arrived frames wait in
    /// this wrapper's queues.
    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        loop {
            self.release_recvs();
            if let Some(frame) = self.ready.pop_front() {
                return Ok(frame);
            }
            self.release_sends().await?;
            let wake = [self.held_recv.front(), self.held_send.front()]
                .into_iter()
                .flatten()
                .map(|&(due, _)| due)
                .min();
            tokio::select! {
                got = self.inner.recv() => {
                    let frame = got?;
                    self.arrive(frame);
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// Flushes the inner bus; frames still held by a delay stay held.
    async fn flush(&mut self) -> Result<(), LinkError> {
        self.release_sends().await?;
        self.inner.flush().await
    }

    fn stats(&self) -> LinkStats {
        let mut s = self.inner.stats();
        s.faults.send = self.send.counts;
        s.faults.recv = self.recv.counts;
        s
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::CanId;
    use crate::in_process::InProcessBus;

    fn frame(i: u32) -> CanFrame {
        CanFrame::new(CanId::Standard((i % 0x800) as u16), &i.to_be_bytes()).unwrap()
    }

    fn rates(drop: f64, duplicate: f64, corrupt: f64, delay: f64) -> FaultRates {
        FaultRates {
            drop,
            duplicate,
            corrupt,
            delay,
        }
    }

    /// Send `n` frames through a faulty sender and a faulty receiver;
    /// returns what arrived and the sender's and receiver's stats.
    async fn run(plan: FaultPlan, n: u32) -> (Vec<CanFrame>, LinkStats, LinkStats) {
        let (a, b) = InProcessBus::pair();
        let mut tx = FaultyBus::new(a, plan.clone()).unwrap();
        let mut rx = FaultyBus::new(b, plan).unwrap();
        let mut got = Vec::new();
        for i in 0..n {
            tx.send(&frame(i)).await.unwrap();
            // Drain what is there without waiting for delayed frames.
            while let Ok(Ok(f)) = tokio::time::timeout(Duration::ZERO, rx.recv()).await {
                got.push(f);
            }
        }
        // Let every delay run out, then collect the rest.
        tokio::time::sleep(tx.plan.delay * 2).await;
        tx.flush().await.unwrap();
        while let Ok(Ok(f)) = tokio::time::timeout(tx.plan.delay * 2, rx.recv()).await {
            got.push(f);
        }
        (got, tx.stats(), rx.stats())
    }

    /// Within 5 standard deviations of the binomial mean.
    fn assert_rate(what: &str, count: u64, trials: u64, p: f64) {
        let mean = trials as f64 * p;
        let sd = (trials as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (count as f64 - mean).abs() <= 5.0 * sd.max(1.0),
            "{what}: {count} of {trials}, expected {mean:.0} ± {:.0}",
            5.0 * sd
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fault_counts_match_the_configured_rates_over_100k_frames() {
        let n = 100_000u32;
        let plan = FaultPlan {
            seed: 7,
            send: rates(0.05, 0.02, 0.03, 0.01),
            recv: rates(0.02, 0.04, 0.01, 0.02),
            delay: Duration::from_millis(5),
            bus_off: vec![],
        };
        let (got, tx, rx) = run(plan.clone(), n).await;
        let s = tx.faults.send;
        let trials = u64::from(n);
        assert_rate("send dropped", s.dropped, trials, 0.05);
        let kept = trials - s.dropped;
        assert_rate("send duplicated", s.duplicated, kept, 0.02);
        assert_rate("send corrupted", s.corrupted, kept, 0.03);
        assert_rate("send delayed", s.delayed, kept, 0.01);
        let on_wire = kept + s.duplicated;
        assert_eq!(tx.frames_sent, on_wire);
        let r = rx.faults.recv;
        assert_rate("recv dropped", r.dropped, on_wire, 0.02);
        let kept_rx = on_wire - r.dropped;
        assert_rate("recv duplicated", r.duplicated, kept_rx, 0.04);
        assert_rate("recv corrupted", r.corrupted, kept_rx, 0.01);
        assert_rate("recv delayed", r.delayed, kept_rx, 0.02);
        assert_eq!(got.len() as u64, kept_rx + r.duplicated);
        // Corrupted frames differ from every frame sent in exactly one bit.
        let corrupted = got
            .iter()
            .filter(|f| {
                let i = u32::from_be_bytes(f.data().try_into().unwrap());
                **f != frame(i)
            })
            .count() as u64;
        assert!(corrupted > 0 && corrupted <= s.corrupted + r.corrupted + s.corrupted);
        // Delays reordered some frames.
        let ids: Vec<u16> = got.iter().map(|f| f.id().raw() as u16).collect();
        assert!(ids.windows(2).any(|w| w[1] < w[0] && w[0] - w[1] < 0x400));
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_faults() {
        let plan = |seed| FaultPlan {
            seed,
            send: rates(0.1, 0.1, 0.1, 0.1),
            recv: rates(0.1, 0.1, 0.1, 0.1),
            delay: Duration::from_millis(3),
            bus_off: vec![],
        };
        let (a, sa, ra) = run(plan(42), 5_000).await;
        let (b, sb, rb) = run(plan(42), 5_000).await;
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_eq!(ra, rb);
        let (c, sc, _) = run(plan(43), 5_000).await;
        assert_ne!(a, c);
        assert_ne!(sa.faults, sc.faults);
    }

    #[tokio::test(start_paused = true)]
    async fn bus_off_loses_everything_and_send_says_so() {
        let (a, mut b) = InProcessBus::pair();
        let plan = FaultPlan {
            bus_off: vec![(Duration::from_millis(10), Duration::from_millis(20))],
            ..FaultPlan::default()
        };
        let mut tx = FaultyBus::new(a, plan.clone()).unwrap();
        tx.send(&frame(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(tx.send(&frame(2)).await, Err(LinkError::BusOff)));
        // Incoming frames are lost too.
        let (c, d) = InProcessBus::pair();
        let mut c = c;
        let mut rx = FaultyBus::new(d, plan).unwrap();
        tokio::time::sleep(Duration::from_millis(12)).await;
        c.send(&frame(3)).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(1), rx.recv())
            .await
            .is_err());
        assert_eq!(rx.stats().faults.recv.lost_to_bus_off, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send(&frame(4)).await.unwrap();
        c.send(&frame(5)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), frame(5));
        assert_eq!(b.recv().await.unwrap(), frame(1));
        assert_eq!(b.recv().await.unwrap(), frame(4));
        assert_eq!(tx.stats().faults.send.lost_to_bus_off, 1);
    }

    #[test]
    fn plans_are_checked() {
        let bad = FaultPlan {
            send: rates(1.5, 0.0, 0.0, 0.0),
            ..FaultPlan::default()
        };
        let (a, _b) = InProcessBus::pair();
        let e = FaultyBus::new(a, bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "send drop rate 1.5 is not a probability in 0..=1"
        );
        let nan = FaultPlan {
            recv: rates(0.0, f64::NAN, 0.0, 0.0),
            ..FaultPlan::default()
        };
        let (a, _b) = InProcessBus::pair();
        assert!(FaultyBus::new(a, nan).is_err());
    }

    #[test]
    fn a_flip_changes_exactly_one_data_bit() {
        let f = frame(0x0102_0304);
        for bit in 0..32 {
            let g = flip_bit(&f, bit);
            assert_eq!(g.dlc(), f.dlc());
            assert_eq!(g.id(), f.id());
            let diff: u32 = f
                .data()
                .iter()
                .zip(g.data())
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(diff, 1);
        }
    }
}
