//! Why the controller did what it did: every command carries a [`Reason`],
//! and every change of command is kept in a bounded [`DecisionLog`] that
//! reports read.

use core::fmt::{self, Write};

use crate::time::Millis;

/// The control function behind a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Protection,
    Estimation,
    Scheduling,
    PeakReduction,
    DemandManagement,
    Resilience,
    SelectiveSupply,
    LocalHub,
    ExportControl,
    Cluster,
    /// Nothing asked for anything: the default behaviour.
    Default,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Protection => "protection",
            Function::Estimation => "estimation",
            Function::Scheduling => "scheduling",
            Function::PeakReduction => "peak_reduction",
            Function::DemandManagement => "demand_management",
            Function::Resilience => "resilience",
            Function::SelectiveSupply => "selective_supply",
            Function::LocalHub => "local_hub",
            Function::ExportControl => "export_control",
            Function::Cluster => "cluster",
            Function::Default => "default",
        }
    }
}

/// A reason code: the function that decided and its own reason, as the
/// function's reason enum names it (e.g. `peak_reduction/InWindow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub function: Function,
    pub code: heapless::String<40>,
}

impl Reason {
    /// A reason from a function's own reason value (any `Debug` enum);
    /// long names are truncated, never a panic.
    pub fn new(function: Function, code: &dyn fmt::Debug) -> Self {
        let mut s = Truncating::<40>(heapless::String::new());
        let _ = write!(s, "{code:?}");
        Reason {
            function,
            code: s.0,
        }
    }

    pub fn plain(function: Function, code: &str) -> Self {
        Self::new(function, &format_args!("{code}"))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.function.name(), self.code)
    }
}

/// Writes into a fixed-size string, dropping what does not fit.
struct Truncating<const N: usize>(heapless::String<N>);

impl<const N: usize> Write for Truncating<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// One entry of the log: at `at`, `what` was decided because of `reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub at: Millis,
    pub what: heapless::String<64>,
    pub reason: Reason,
}

/// A bounded ring of the latest decisions; the oldest falls out when full
/// (and is counted), so a long run never grows memory.
#[derive(Debug, Clone)]
pub struct DecisionLog<const N: usize> {
    ring: heapless::Deque<Decision, N>,
    dropped: u64,
    total: u64,
}

impl<const N: usize> Default for DecisionLog<N> {
    fn default() -> Self {
        Self {
            ring: heapless::Deque::new(),
            dropped: 0,
            total: 0,
        }
    }
}

impl<const N: usize> DecisionLog<N> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a decision described by `what` (formatted, truncated).
    pub fn record(&mut self, at: Millis, what: fmt::Arguments<'_>, reason: Reason) {
        let mut w = Truncating::<64>(heapless::String::new());
        let _ = w.write_fmt(what);
        if self.ring.is_full() {
            self.ring.pop_front();
            self.dropped += 1;
        }
        let _ = self.ring.push_back(Decision {
            at,
            what: w.0,
            reason,
        });
        self.total += 1;
    }

    /// The kept decisions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Decision> {
        self.ring.iter()
    }
    pub fn len(&self) -> usize {
        self.ring.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
    /// Decisions that fell out of the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    /// Decisions ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum PeakReason {
        InWindow,
    }

    #[test]
    fn reasons_name_function_and_code() {
        let r = Reason::new(Function::PeakReduction, &PeakReason::InWindow);
        let mut s = heapless::String::<64>::new();
        write!(s, "{r}").unwrap();
        assert_eq!(s.as_str(), "peak_reduction/InWindow");
        let long = Reason::plain(Function::Default, &"x".repeat(100));
        assert_eq!(long.code.len(), 40);
    }

    #[test]
    fn ring_keeps_the_latest_and_counts_the_dropped() {
        let mut log = DecisionLog::<3>::new();
        for k in 0..5u64 {
            log.record(
                Millis(k),
                format_args!("circuit {k} off"),
                Reason::plain(Function::Resilience, "Shed"),
            );
        }
        assert_eq!(log.len(), 3);
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.total(), 5);
        let first = log.iter().next().unwrap();
        assert_eq!(first.at, Millis(2));
        assert_eq!(first.what.as_str(), "circuit 2 off");
    }
}
