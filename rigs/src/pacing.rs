//! Real-time pacing: runs a step closure once per fixed period against the
//! wall clock, for rigs where the plant must keep up with real hardware (a
//! controller board on a bench, the firmware binary over a pty).
//!
//! - **No drift.** The `k`-th deadline is `start + k·period`, never the sum
//!   of sleeps, so lateness in one step does not shift the later ones.
//! - **Accurate waits.** [`wait_until`] sleeps until `spin` before the
//!   deadline, then spins (default 200 µs), which keeps the start jitter in
//!   the tens of microseconds on an idle Linux box without burning a core.
//! - **Measured, not asserted.** Each step's start jitter (actual start −
//!   scheduled start) and duration go into a [`JitterStats`]; a step is an
//!   **overrun** if it took longer than a period or started more than a
//!   period late. On overrun the [`OverrunPolicy`] either catches up (runs
//!   the missed slots back to back) or skips them (counted), so the plant's
//!   time stays tied to the wall clock — the closure is told how many
//!   periods to advance in [`Tick::slots`].
//!
//! This is the only place in the engine's loop that reads a clock; the twin
//! itself gets `now` passed in.

use std::fmt;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// What to do when a step ends after the next deadline has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverrunPolicy {
    /// Run the missed slots one after another, as fast as possible, until
    /// back on schedule (every slot gets a step).
    #[default]
    CatchUp,
    /// Drop the missed slots (counted in [`PacerReport::skipped_slots`]) and
    /// wait for the next deadline still ahead; the next [`Tick`] says how
    /// many periods to advance.
    Skip,
}

/// One call of the step closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Index of this call, 0, 1, 2, ...
    pub step: u64,
    /// Index of the period slot this call serves (`= step` unless slots
    /// were skipped).
    pub slot: u64,
    /// Periods since the previous call's slot (1 normally; more after a
    /// skip; 1 for the first call). The plant should advance by
    /// `slots × period`.
    pub slots: u64,
    /// When this step was due.
    pub scheduled: Instant,
    /// How late it started (`started − scheduled`).
    pub lateness: Duration,
}

/// A real-time pacer. See the module docs.
#[derive(Debug, Clone)]
pub struct RealTimePacer {
    period: Duration,
    spin: Duration,
    policy: OverrunPolicy,
}

/// Default spin window before each deadline.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);

impl RealTimePacer {
    /// A pacer with the given period (a zero period is raised to 1 µs),
    /// the default 200 µs spin and the catch-up policy.
    pub fn new(period: Duration) -> Self {
        RealTimePacer {
            period: period.max(Duration::from_micros(1)),
            spin: DEFAULT_SPIN,
            policy: OverrunPolicy::CatchUp,
        }
    }

    /// Spin (instead of sleeping) for the last `spin` before each deadline;
    /// `Duration::ZERO` sleeps all the way.
    pub fn with_spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    pub fn with_policy(mut self, policy: OverrunPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn period(&self) -> Duration {
        self.period
    }
    pub fn spin(&self) -> Duration {
        self.spin
    }
    pub fn policy(&self) -> OverrunPolicy {
        self.policy
    }

    /// Calls `step` once per period, `steps` times or until it returns
    /// `ControlFlow::Break`, and reports jitter and overruns. The first step
    /// is due immediately.
    pub fn run_for<F>(&self, steps: u64, mut step: F) -> PacerReport
    where
        F: FnMut(Tick) -> ControlFlow<()>,
    {
        let period_ns = self.period.as_nanos().max(1);
        let mut stats = JitterStats::new();
        let mut skipped = 0u64;
        let mut stopped_early = false;
        let start = Instant::now();
        let mut slot = 0u64;
        let mut prev_slot: Option<u64> = None;
        for k in 0..steps {
            let scheduled = start + nanos(period_ns * u128::from(slot));
            wait_until(scheduled, self.spin);
            let started = Instant::now();
            let lateness = started.saturating_duration_since(scheduled);
            let tick = Tick {
                step: k,
                slot,
                slots: prev_slot.map_or(1, |p| slot - p),
                scheduled,
                lateness,
            };
            let flow = step(tick);
            let finished = Instant::now();
            let took = finished.saturating_duration_since(started);
            stats.record(
                micros(lateness),
                micros(took),
                is_overrun(lateness, took, self.period),
            );
            if flow.is_break() {
                stopped_early = true;
                break;
            }
            prev_slot = Some(slot);
            let elapsed_ns = finished.saturating_duration_since(start).as_nanos();
            let (next, skip) = next_slot(self.policy, slot, elapsed_ns, period_ns);
            slot = next;
            skipped += skip;
        }
        PacerReport {
            period: self.period,
            policy: self.policy,
            stats,
            skipped_slots: skipped,
            stopped_early,
            wall: start.elapsed(),
        }
    }
}

/// A step overruns if it took longer than a period or started more than a
/// period late.
pub fn is_overrun(lateness: Duration, took: Duration, period: Duration) -> bool {
    took > period || lateness > period
}

/// The slot after `slot`, given the time elapsed since the start when the
/// step finished: under [`OverrunPolicy::Skip`], slots whose deadline has
/// already passed are dropped. Returns `(next slot, slots skipped)`.
pub fn next_slot(
    policy: OverrunPolicy,
    slot: u64,
    elapsed_ns: u128,
    period_ns: u128,
) -> (u64, u64) {
    let next = slot + 1;
    match policy {
        OverrunPolicy::CatchUp => (next, 0),
        OverrunPolicy::Skip => {
            let period_ns = period_ns.max(1);
            // The first slot whose deadline is still ahead (strictly after now).
            let first_ahead = u64::try_from(elapsed_ns / period_ns + 1).unwrap_or(u64::MAX);
            if first_ahead > next {
                (first_ahead, first_ahead - next)
            } else {
                (next, 0)
            }
        }
    }
}

/// Sleeps until `spin` before `deadline`, then spins until it. Returns at
/// once if the deadline has passed.
pub fn wait_until(deadline: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let remaining = deadline - now;
        if remaining > spin {
            std::thread::sleep(remaining - spin);
        } else {
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
            return;
        }
    }
}

fn nanos(ns: u128) -> Duration {
    Duration::new(
        u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX),
        (ns % 1_000_000_000) as u32,
    )
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Number of exact buckets (values below this are recorded exactly, µs).
const EXACT: u64 = 256;
/// Sub-buckets per power of two above `EXACT` (relative error < 1/128).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = EXACT as usize + (64 - 8) * SUB as usize;

fn bucket_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // ≥ 8
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    EXACT as usize + (e as usize - 8) * SUB as usize + sub as usize
}

/// Smallest value that falls in bucket `i`.
fn bucket_low(i: usize) -> u64 {
    if (i as u64) < EXACT {
        return i as u64;
    }
    let j = i - EXACT as usize;
    let e = (j / SUB as usize) as u32 + 8;
    let sub = (j % SUB as usize) as u64;
    (SUB + sub) << (e - SUB_BITS)
}

/// A jitter and step-time accumulator: no clock, no allocation per sample.
/// Jitter percentiles come from a log-linear histogram, exact below 256 µs
/// and within 1/128 relative above; mean and max are exact.
#[derive(Debug, Clone, Default)]
pub struct JitterStats {
    hist: Vec<u64>,
    steps: u64,
    overruns: u64,
    jitter_sum_us: u128,
    jitter_max_us: u64,
    took_sum_us: u128,
    took_max_us: u64,
}

impl JitterStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one step: its start jitter and duration (µs) and whether it
    /// overran.
    pub fn record(&mut self, jitter_us: u64, took_us: u64, overrun: bool) {
        if self.hist.is_empty() {
            self.hist = vec![0; BUCKETS];
        }
        self.hist[bucket_of(jitter_us)] += 1;
        self.steps += 1;
        self.overruns += u64::from(overrun);
        self.jitter_sum_us += u128::from(jitter_us);
        self.jitter_max_us = self.jitter_max_us.max(jitter_us);
        self.took_sum_us += u128::from(took_us);
        self.took_max_us = self.took_max_us.max(took_us);
    }

    /// Merges another accumulator into this one.
    pub fn merge(&mut self, other: &JitterStats) {
        if other.steps == 0 {
            return;
        }
        if self.hist.is_empty() {
            self.hist = vec![0; BUCKETS];
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
        self.steps += other.steps;
        self.overruns += other.overruns;
        self.jitter_sum_us += other.jitter_sum_us;
        self.jitter_max_us = self.jitter_max_us.max(other.jitter_max_us);
        self.took_sum_us += other.took_sum_us;
        self.took_max_us = self.took_max_us.max(other.took_max_us);
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }
    pub fn overruns(&self) -> u64 {
        self.overruns
    }
    pub fn max_jitter_us(&self) -> u64 {
        self.jitter_max_us
    }
    pub fn mean_jitter_us(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.jitter_sum_us as f64 / self.steps as f64
        }
    }
    pub fn max_step_us(&self) -> u64 {
        self.took_max_us
    }
    pub fn mean_step_us(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.took_sum_us as f64 / self.steps as f64
        }
    }

    /// Nearest-rank percentile of the jitter, µs (`p` in 0..=100; 0 when
    /// empty). Exact below 256 µs, within 1/128 relative above (never above
    /// the maximum).
    pub fn percentile_jitter_us(&self, p: f64) -> u64 {
        if self.steps == 0 {
            return 0;
        }
        let p = if p.is_nan() {
            100.0
        } else {
            p.clamp(0.0, 100.0)
        };
        let rank = ((p / 100.0 * self.steps as f64).ceil() as u64).clamp(1, self.steps);
        if rank == self.steps {
            return self.jitter_max_us;
        }
        let mut seen = 0u64;
        for (i, &c) in self.hist.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_low(i).min(self.jitter_max_us);
            }
        }
        self.jitter_max_us
    }

    pub fn p50_jitter_us(&self) -> u64 {
        self.percentile_jitter_us(50.0)
    }
    pub fn p99_jitter_us(&self) -> u64 {
        self.percentile_jitter_us(99.0)
    }
}

/// What a paced run measured.
#[derive(Debug, Clone)]
pub struct PacerReport {
    pub period: Duration,
    pub policy: OverrunPolicy,
    pub stats: JitterStats,
    /// Slots dropped under [`OverrunPolicy::Skip`].
    pub skipped_slots: u64,
    /// Whether the closure asked to stop before the step count.
    pub stopped_early: bool,
    /// Wall time of the run.
    pub wall: Duration,
}

impl PacerReport {
    pub fn steps(&self) -> u64 {
        self.stats.steps()
    }
    pub fn overruns(&self) -> u64 {
        self.stats.overruns()
    }
}

/// `period 10 ms, 1000 steps, jitter p50 12 µs p99 80 µs max 210 µs, 0 overruns`
/// (then `, N skipped` when slots were skipped).
impl fmt::Display for PacerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "period {}, {} steps, jitter p50 {} µs p99 {} µs max {} µs, {} overrun{}",
            fmt_period(self.period),
            s.steps(),
            s.p50_jitter_us(),
            s.p99_jitter_us(),
            s.max_jitter_us(),
            s.overruns(),
            if s.overruns() == 1 { "" } else { "s" }
        )?;
        if self.skipped_slots > 0 {
            write!(f, ", {} skipped", self.skipped_slots)?;
        }
        Ok(())
    }
}

/// `10 ms`, `2.5 ms`, `250 µs`, `1 s`.
pub fn fmt_period(d: Duration) -> String {
    let ns = d.as_nanos();
    // Not `is_multiple_of`: that needs Rust 1.87 and the MSRV is 1.80.
    let whole = |unit: u128| ns / unit * unit == ns;
    let (whole_s, whole_ms, whole_us) = (whole(1_000_000_000), whole(1_000_000), whole(1_000));
    if ns >= 1_000_000_000 && whole_s {
        format!("{} s", ns / 1_000_000_000)
    } else if ns >= 1_000_000 {
        if whole_ms {
            format!("{} ms", ns / 1_000_000)
        } else {
            format!("{} ms", ns as f64 / 1e6)
        }
    } else if whole_us {
        format!("{} µs", ns / 1000)
    } else {
        format!("{} µs", ns as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stats_percentiles_on_synthetic_samples() {
        let mut s = JitterStats::new();
        assert_eq!(
            (s.p50_jitter_us(), s.p99_jitter_us(), s.max_jitter_us()),
            (0, 0, 0)
        );
        assert_eq!(s.mean_jitter_us(), 0.0);
        for v in 1..=100u64 {
            s.record(v, 2 * v, v > 97);
        }
        assert_eq!(s.steps(), 100);
        assert_eq!(s.p50_jitter_us(), 50);
        assert_eq!(s.p99_jitter_us(), 99);
        assert_eq!(s.max_jitter_us(), 100);
        assert_eq!(s.percentile_jitter_us(0.0), 1);
        assert_eq!(s.percentile_jitter_us(100.0), 100);
        assert!((s.mean_jitter_us() - 50.5).abs() < 1e-12);
        assert_eq!(s.overruns(), 3);
        assert_eq!(s.max_step_us(), 200);
        assert!((s.mean_step_us() - 101.0).abs() < 1e-12);
    }

    #[test]
    fn large_jitter_is_bucketed_within_one_percent() {
        let mut s = JitterStats::new();
        for _ in 0..98 {
            s.record(10, 0, false);
        }
        s.record(123_456, 0, true);
        s.record(9_876_543, 0, true);
        assert_eq!(s.p50_jitter_us(), 10);
        let p99 = s.p99_jitter_us() as f64;
        assert!((p99 - 123_456.0).abs() / 123_456.0 < 0.01, "{p99}");
        assert_eq!(s.max_jitter_us(), 9_876_543);
        assert_eq!(s.percentile_jitter_us(100.0), 9_876_543);
        // Extreme values do not overflow the histogram.
        s.record(u64::MAX, u64::MAX, true);
        assert_eq!(s.max_jitter_us(), u64::MAX);
    }

    #[test]
    fn merge_adds_up() {
        let (mut a, mut b) = (JitterStats::new(), JitterStats::new());
        for v in 0..50 {
            a.record(v, 1, false);
            b.record(v + 50, 1, v == 0);
        }
        a.merge(&b);
        a.merge(&JitterStats::new());
        assert_eq!((a.steps(), a.overruns(), a.max_jitter_us()), (100, 1, 99));
        assert_eq!(a.p50_jitter_us(), 49);
    }

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut prev = 0;
        for i in 1..BUCKETS {
            let lo = bucket_low(i);
            assert!(lo > prev, "bucket {i}");
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(lo - 1), i - 1);
            prev = lo;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn overrun_and_slot_rules() {
        let ms = Duration::from_millis;
        assert!(!is_overrun(ms(0), ms(9), ms(10)));
        assert!(is_overrun(ms(0), ms(11), ms(10)));
        assert!(is_overrun(ms(11), ms(1), ms(10)));
        assert!(!is_overrun(ms(10), ms(10), ms(10)));
        let p = 10_000_000u128;
        // On time: the next slot.
        assert_eq!(
            next_slot(OverrunPolicy::Skip, 4, 4 * p + 3_000_000, p),
            (5, 0)
        );
        assert_eq!(
            next_slot(OverrunPolicy::CatchUp, 4, 4 * p + 3_000_000, p),
            (5, 0)
        );
        // Step 4 finished at 7.5 periods: slots 5, 6, 7 are past.
        assert_eq!(next_slot(OverrunPolicy::Skip, 4, 7 * p + p / 2, p), (8, 3));
        assert_eq!(
            next_slot(OverrunPolicy::CatchUp, 4, 7 * p + p / 2, p),
            (5, 0)
        );
        // Exactly at the next deadline: that deadline has passed, skip it.
        assert_eq!(next_slot(OverrunPolicy::Skip, 4, 5 * p, p), (6, 1));
    }

    #[test]
    fn report_prints_as_one_line() {
        let mut stats = JitterStats::new();
        for v in [12u64, 12, 12, 80, 210] {
            stats.record(v, 100, false);
        }
        let mut r = PacerReport {
            period: Duration::from_millis(10),
            policy: OverrunPolicy::CatchUp,
            stats,
            skipped_slots: 0,
            stopped_early: false,
            wall: Duration::ZERO,
        };
        assert_eq!(
            r.to_string(),
            "period 10 ms, 5 steps, jitter p50 12 µs p99 210 µs max 210 µs, 0 overruns"
        );
        r.skipped_slots = 2;
        r.stats.record(5, 20_000, true);
        assert!(r.to_string().ends_with(", 1 overrun, 2 skipped"), "{r}");
        assert_eq!(fmt_period(Duration::from_micros(2500)), "2.5 ms");
        assert_eq!(fmt_period(Duration::from_micros(250)), "250 µs");
        assert_eq!(fmt_period(Duration::from_secs(1)), "1 s");
    }

    /// Runs against the wall clock, but checks only counts and that the
    /// stats are populated — never timing figures.
    #[test]
    fn paced_run_counts_steps() {
        let pacer = RealTimePacer::new(Duration::from_millis(2));
        let mut seen = Vec::new();
        let report = pacer.run_for(50, |t| {
            seen.push((t.step, t.slot, t.slots));
            ControlFlow::Continue(())
        });
        assert_eq!(report.steps(), 50);
        assert_eq!(seen.len(), 50);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, s)| s.0 == i as u64 && s.1 == i as u64 && s.2 == 1));
        assert!(report.stats.p50_jitter_us() <= report.stats.max_jitter_us());
        assert!(!report.stopped_early);
        assert!(report.to_string().contains("50 steps"));
    }

    #[test]
    fn paced_run_stops_on_break_and_skip_policy_accounts_slots() {
        let pacer = RealTimePacer::new(Duration::from_millis(1))
            .with_spin(Duration::ZERO)
            .with_policy(OverrunPolicy::Skip);
        let mut last = None;
        let report = pacer.run_for(100, |t| {
            last = Some(t);
            if t.step == 3 {
                // Deliberately overrun: the next slots are skipped.
                std::thread::sleep(Duration::from_millis(3));
            }
            if t.step == 9 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        let last = last.unwrap();
        assert_eq!(report.steps(), 10);
        assert!(report.stopped_early);
        assert!(report.overruns() >= 1);
        assert!(report.skipped_slots >= 2);
        // Every slot is either run or skipped.
        assert_eq!(last.slot, last.step + report.skipped_slots);
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_and_close_to_exact(mut xs in proptest::collection::vec(0u64..50_000_000, 1..300)) {
            let mut s = JitterStats::new();
            for &x in &xs {
                s.record(x, x, false);
            }
            xs.sort_unstable();
            let (p50, p99, max) = (s.p50_jitter_us(), s.p99_jitter_us(), s.max_jitter_us());
            prop_assert!(p50 <= p99 && p99 <= max);
            prop_assert_eq!(max, *xs.last().unwrap());
            for p in [50.0, 99.0] {
                let rank = ((p / 100.0 * xs.len() as f64).ceil() as usize).max(1);
                let exact = xs[rank - 1] as f64;
                let got = s.percentile_jitter_us(p) as f64;
                prop_assert!(got <= exact && exact - got <= exact / 128.0, "p{} {} vs {}", p, got, exact);
            }
        }
    }
}
