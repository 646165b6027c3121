//! Why the controller did what it did: every command carries a [`Reason`],
//! and every change of command is kept in a bounded [`DecisionLog`] that
//! reports read.

use core::fmt::{self, Write};

use crate::cluster::ClusterReason;
use crate::demand::BatteryReason;
use crate::export::{ExportReason, SurplusReason};
use crate::peak::PeakReason;
use crate::protection::ProtectionReason;
use crate::resilience::{CircuitReason, ResilienceReason};
use crate::scheduling::ScheduleReason;
use crate::selective::SelectiveReason;
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

/// Declares [`Code`] with one variant per reason enum, `From` each, and
/// `Display` as the reason enum's `Debug`: the list is written once.
macro_rules! reason_codes {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// What the deciding function gave as its reason: its own reason
        /// value, kept as it is. Commands carry these on every control
        /// period, so a code is a few bytes and costs nothing to make; it
        /// is named (`Debug` of the function's reason enum, e.g.
        /// `InWindow`, `Fault(DischargeOverTemperature)`) only when
        /// displayed or logged.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant($ty),)*
        }

        $(impl From<$ty> for Code {
            fn from(c: $ty) -> Self {
                Code::$variant(c)
            }
        })*

        impl fmt::Display for Code {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Code::$variant(c) => write!(f, "{c:?}"),)*
                }
            }
        }
    };
}

reason_codes!(
    Protection(ProtectionReason),
    Peak(PeakReason),
    Resilience(ResilienceReason),
    Circuit(CircuitReason),
    Selective(SelectiveReason),
    Battery(BatteryReason),
    Export(ExportReason),
    Surplus(SurplusReason),
    Schedule(ScheduleReason),
    Cluster(ClusterReason),
    Arbitration(Arbitration),
);

/// Reasons the controller's arbitration gives itself, where no function's
/// own reason applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arbitration {
    /// The converter stands by behind the charger, ready for the peak.
    HoldForPeak,
    /// No function asks for charge.
    NoChargeWanted,
    /// The assembly has no inverter.
    NoInverter,
    /// Nothing drives the inverter.
    Idle,
    /// AC loads shed in a power cut so the essential DC circuits last.
    AcShedForEssentials,
    /// A demand signal shed the circuit.
    Shed,
}

/// A reason: the function that decided and its own reason
/// (e.g. `peak_reduction/InWindow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    pub function: Function,
    pub code: Code,
}

impl Reason {
    pub fn new(function: Function, code: impl Into<Code>) -> Self {
        Reason {
            function,
            code: code.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.function.name(), self.code)
    }
}

/// A reason as the decision log keeps it: named when recorded (a log entry
/// outlives the values it was made from), long names truncated, never a
/// panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedReason {
    pub function: Function,
    pub code: heapless::String<40>,
}

impl LoggedReason {
    /// Names `detail` (any `Debug` value: a verdict, an acknowledgement).
    pub fn new(function: Function, detail: &dyn fmt::Debug) -> Self {
        let mut s = Truncating::<40>(heapless::String::new());
        let _ = write!(s, "{detail:?}");
        LoggedReason {
            function,
            code: s.0,
        }
    }
}

impl From<Reason> for LoggedReason {
    fn from(r: Reason) -> Self {
        let mut s = Truncating::<40>(heapless::String::new());
        let _ = write!(s, "{}", r.code);
        LoggedReason {
            function: r.function,
            code: s.0,
        }
    }
}

impl fmt::Display for LoggedReason {
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
    pub reason: LoggedReason,
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
    pub fn record(
        &mut self,
        at: Millis,
        what: fmt::Arguments<'_>,
        reason: impl Into<LoggedReason>,
    ) {
        let reason = reason.into();
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

    #[test]
    fn reasons_name_function_and_code() {
        let r = Reason::new(Function::PeakReduction, PeakReason::BudgetLimited);
        let mut s = heapless::String::<64>::new();
        write!(s, "{r}").unwrap();
        assert_eq!(s.as_str(), "peak_reduction/BudgetLimited");
        let fault = Reason::new(
            Function::Protection,
            ProtectionReason::Fault(crate::protection::FaultKind::DischargeOverTemperature),
        );
        let logged = LoggedReason::from(fault);
        assert_eq!(logged.code.as_str(), "Fault(DischargeOverTemperature)");
        assert_eq!(logged.function, Function::Protection);
        let long = LoggedReason::new(Function::Default, &"x".repeat(100));
        assert_eq!(long.code.len(), 40);
    }

    #[test]
    fn a_reason_is_a_few_bytes() {
        // Commands carry one per part on every control period.
        assert!(core::mem::size_of::<Reason>() <= 4);
    }

    #[test]
    fn ring_keeps_the_latest_and_counts_the_dropped() {
        let mut log = DecisionLog::<3>::new();
        for k in 0..5u64 {
            log.record(
                Millis(k),
                format_args!("circuit {k} off"),
                Reason::new(Function::DemandManagement, Arbitration::Shed),
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
