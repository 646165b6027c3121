//! Arbitration: which function's proposal each actuator follows.
//!
//! Every control period each control function says what it wants of the
//! actuators in a *proposal* (one small struct per function, carrying its
//! [`Reason`]). This module decides each actuator in its own pure function
//! from the proposals and what protection allows ([`ProtectionAllowance`]),
//! and returns the actuator's command with the reason that decided it.
//!
//! ## Priority (highest first)
//! 1. **Protection** — its blocks and limits filter every other command.
//! 2. **Resilience** — in a power cut: islanded, no export, circuits by the
//!    energy budget, the battery may discharge to its limits, the AC loads
//!    served only while the essential DC circuits are safe.
//! 3. **Remote signals** — a cluster dispatch (signed, own branch) or a
//!    demand-management signal: battery power targets, shed circuits.
//! 4. **Peak reduction** — in the peak window the battery carries the DC
//!    loads (and the inverter's AC share), budgeted to last.
//! 5. **Export control** — absorb surplus into storage, then curtail PV;
//!    PV surplus to the AC side when nothing else drives the inverter.
//! 6. **Charge scheduling** — off-peak grid charging sized for the coming
//!    peak plus the reserve; PV surplus first; charge-now requests.
//! 7. **Selective supply** — per-socket standby, deferral, host-idle
//!    peripherals.
//!
//! Charging is the one place where the order is not a chain: the battery
//! charges at the largest of what scheduling, export control and a remote
//! signal ask for (on a tie, the first of those). Outside all of them the
//! battery does not discharge (the converter stands by behind the charger,
//! holding the charge for the peak and for resilience) and charges only as
//! the functions ask.
//!
//! Pure functions of plain values: no state, no time, no IO. The proposals
//! are built from the function modules' commands (the only thing this
//! module takes from them); it never runs a function.

use crate::cluster::ClusterCommand;
use crate::decision::{Arbitration, Function, Reason};
use crate::demand::DemandCommand;
use crate::export::{ExportCommand, SurplusReason};
use crate::peak::PeakCommand;
use crate::protection::ProtectionState;
use crate::resilience::{self, CircuitReason, ResilienceCommand};
use crate::scheduling::ChargePlan;
use crate::selective::{self, SelectiveReason, SocketCommand};

// ---------------------------------------------------------------------------
// The actuators' commands

/// The battery converter.
#[derive(Debug, Clone, PartialEq)]
pub struct BatteryCommand {
    pub enabled: bool,
    pub charge_limit_w: f32,
    pub discharge_limit_w: f32,
    /// Hold the charge but back the DC bus: the converter regulates below
    /// the charger's setpoint, so it delivers only when mains cannot (the
    /// first moments of a power cut, before resilience islands), and the
    /// DC circuits never see the bus collapse.
    pub standby: bool,
    pub reason: Reason,
}

/// The AC/DC charger from mains.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargerCommand {
    pub enabled: bool,
    /// Lift the bus so the battery charges from mains.
    pub boost: bool,
    pub reason: Reason,
}

/// The inverter for AC loads.
#[derive(Debug, Clone, PartialEq)]
pub struct InverterCommand {
    /// Off sheds the AC loads in a power cut (an islanded inverter serves
    /// whatever they draw).
    pub enabled: bool,
    pub request_ac_w: f32,
    pub export_enabled: bool,
    pub reason: Reason,
}

/// The PV converter.
#[derive(Debug, Clone, PartialEq)]
pub struct PvCommand {
    pub cap_w: Option<f32>,
    pub reason: Reason,
}

/// A DC circuit's or a USB-PD socket's switch.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchCommand {
    pub on: bool,
    pub power_cap_w: Option<f32>,
    pub reason: Reason,
}

// ---------------------------------------------------------------------------
// What protection allows, the site, and the functions' proposals

/// What protection allows now: its power limits bounded by the converter's
/// rating, and its safe-state actions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectionAllowance {
    /// Largest charge power, W (≥ 0; 0 when charging is blocked).
    pub max_charge_w: f32,
    /// Largest discharge power, W (≥ 0; 0 when discharging is blocked).
    pub max_discharge_w: f32,
    /// Everything off or the contactor open: battery, circuits and sockets
    /// off.
    pub all_off: bool,
    /// PV curtailed to zero (PV disabled, or everything off).
    pub pv_off: bool,
    /// Circuits to trip: bit k = circuit k.
    pub trip_circuits: u16,
    /// Protection's reason, for whatever it decides.
    pub reason: Reason,
}

impl ProtectionAllowance {
    /// What `state` allows a battery converter rated `rated_charge_w` and
    /// `rated_discharge_w` (both > 0).
    pub fn new(state: &ProtectionState, rated_charge_w: f32, rated_discharge_w: f32) -> Self {
        let bounded = |x: f32, max: f32| {
            if x.is_finite() {
                x.clamp(0.0, max)
            } else {
                0.0
            }
        };
        let actions = &state.actions;
        let mut max_charge_w = bounded(state.limits.max_charge_power_w, rated_charge_w);
        let mut max_discharge_w = bounded(state.limits.max_discharge_power_w, rated_discharge_w);
        if actions.block_charge || actions.open_contactor || actions.all_off {
            max_charge_w = 0.0;
        }
        if actions.block_discharge || actions.open_contactor || actions.all_off {
            max_discharge_w = 0.0;
        }
        ProtectionAllowance {
            max_charge_w,
            max_discharge_w,
            all_off: actions.all_off || actions.open_contactor,
            pv_off: actions.disable_pv || actions.all_off,
            trip_circuits: actions.trip_circuits,
            reason: Reason::new(Function::Protection, state.reason),
        }
    }
}

/// The site's fixed facts and this period's loads, as the inverter
/// decision needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Site {
    /// An inverter is fitted (AC loads can run from the battery).
    pub inverter_fitted: bool,
    /// The site may export to the grid at all.
    pub export_allowed: bool,
    /// Mains is present.
    pub mains_present: bool,
    /// The household's AC load, W (0 without an inverter).
    pub ac_load_w: f32,
    /// The DC circuits' load, W.
    pub dc_load_w: f32,
}

/// Resilience's proposal: islanding, the circuits the energy budget keeps,
/// and whether the AC loads are served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResilienceProposal {
    /// The DC network is islanded: charger off, battery free to discharge.
    pub islanded: bool,
    /// The inverter must not export.
    pub stop_export: bool,
    /// The inverter may serve the AC loads (always on the grid; in a cut
    /// only while the essential circuits are safe).
    pub ac_loads_served: bool,
    /// Bit i set = circuit i on.
    pub circuits_on: u16,
    /// Why each circuit is on or off (index = circuit number).
    pub circuit_reasons: [CircuitReason; resilience::MAX_CIRCUITS],
    pub reason: Reason,
}

impl ResilienceProposal {
    /// From the resilience function's command and its AC-load decision
    /// ([`crate::resilience::Resilience::ac_loads_served`]).
    pub fn new(command: &ResilienceCommand, ac_loads_served: bool) -> Self {
        ResilienceProposal {
            islanded: command.islanded,
            stop_export: command.stop_export,
            ac_loads_served,
            circuits_on: command.circuit_on,
            circuit_reasons: command.circuit_reason,
            reason: Reason::new(Function::Resilience, command.reason),
        }
    }
}

/// A battery power a remote signal asks for, W: + discharge, − charge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryTarget {
    pub power_w: f32,
    pub reason: Reason,
}

/// The remote signals' proposal: a cluster dispatch or, without one, a
/// demand-management signal for the battery; circuits a demand signal
/// sheds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteProposal {
    pub battery: Option<BatteryTarget>,
    /// Circuits to switch off: bit i = circuit i.
    pub shed_circuits: u16,
}

impl RemoteProposal {
    /// The cluster's share when it follows a dispatch, else demand
    /// management's battery target.
    pub fn new(cluster: Option<&ClusterCommand>, demand: &DemandCommand) -> Self {
        let dispatch = cluster.and_then(|c| {
            c.battery_power_w.map(|power_w| BatteryTarget {
                power_w,
                reason: Reason::new(Function::Cluster, c.reason),
            })
        });
        let battery = dispatch.or_else(|| {
            demand.battery_w.map(|power_w| BatteryTarget {
                power_w,
                reason: Reason::new(Function::DemandManagement, demand.battery_reason),
            })
        });
        RemoteProposal {
            battery,
            shed_circuits: demand.shed_mask,
        }
    }

    /// The target when it asks for discharge.
    pub fn discharge(&self) -> Option<BatteryTarget> {
        self.battery.filter(|t| t.power_w > 0.0)
    }

    /// The target when it asks for charge.
    pub fn charge(&self) -> Option<BatteryTarget> {
        self.battery.filter(|t| t.power_w < 0.0)
    }
}

/// Peak reduction's proposal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakProposal {
    /// In a peak window.
    pub active: bool,
    /// Battery discharge for the DC loads and the inverter, W.
    pub discharge_w: f32,
    /// Of that, the AC power for the inverter to carry, W.
    pub inverter_ac_w: f32,
    pub reason: Reason,
}

impl From<&PeakCommand> for PeakProposal {
    fn from(c: &PeakCommand) -> Self {
        PeakProposal {
            active: c.active,
            discharge_w: c.battery_discharge_w,
            inverter_ac_w: c.inverter_ac_w,
            reason: Reason::new(Function::PeakReduction, c.reason),
        }
    }
}

/// Export control's proposal: battery charge to absorb the surplus, and a
/// PV cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportProposal {
    pub charge_w: f32,
    /// `None` = uncurtailed.
    pub pv_cap_w: Option<f32>,
    pub reason: Reason,
}

impl From<&ExportCommand> for ExportProposal {
    fn from(c: &ExportCommand) -> Self {
        ExportProposal {
            charge_w: c.battery_charge_w,
            pv_cap_w: c.pv_cap_w,
            reason: Reason::new(Function::ExportControl, c.reason),
        }
    }
}

/// The PV surplus to AC proposal (export control's `SurplusToAc`): an AC
/// request for the inverter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurplusProposal {
    pub inverter_ac_w: f32,
    pub reason: Reason,
}

impl SurplusProposal {
    /// From `SurplusToAc::update`'s request and reason.
    pub fn new(request_w: f32, reason: SurplusReason) -> Self {
        SurplusProposal {
            inverter_ac_w: request_w,
            reason: Reason::new(Function::ExportControl, reason),
        }
    }
}

/// Charge scheduling's proposal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleProposal {
    /// Charge to draw from the grid, W.
    pub grid_charge_w: f32,
    /// Most the battery may charge from PV surplus, W.
    pub pv_charge_w_max: f32,
    pub reason: Reason,
}

impl From<&ChargePlan> for ScheduleProposal {
    fn from(p: &ChargePlan) -> Self {
        ScheduleProposal {
            grid_charge_w: p.grid_charge_w,
            pv_charge_w_max: p.pv_surplus_charge_w_max,
            reason: Reason::new(Function::Scheduling, p.reason),
        }
    }
}

/// Selective supply's proposal for one socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SocketProposal {
    pub on: bool,
    pub power_cap_w: Option<f32>,
    pub reason: Reason,
}

impl From<&SocketCommand> for SocketProposal {
    fn from(c: &SocketCommand) -> Self {
        SocketProposal {
            on: c.on,
            power_cap_w: c.power_cap_w,
            reason: Reason::new(Function::SelectiveSupply, c.reason),
        }
    }
}

/// Every function's proposal for one control period.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposals {
    pub resilience: ResilienceProposal,
    pub remote: RemoteProposal,
    pub peak: PeakProposal,
    pub export: ExportProposal,
    pub surplus: SurplusProposal,
    pub schedule: ScheduleProposal,
    /// Selective supply's, by socket index.
    pub sockets: heapless::Vec<SocketProposal, { selective::MAX_SOCKETS }>,
}

/// A power the arbitration settled on, and the reason that set it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerDecision {
    pub power_w: f32,
    pub reason: Reason,
}

// ---------------------------------------------------------------------------
// One function per actuator

/// The battery's discharge limit: protection's block, then in a power cut
/// the full limit, then a remote discharge target, then the peak's
/// discharge; otherwise the full limit held in standby for the peak (the
/// reason is then [`Arbitration::HoldForPeak`], which [`battery`] reads as
/// standby).
pub fn battery_discharge(protection: &ProtectionAllowance, proposals: &Proposals) -> PowerDecision {
    let limit_w = protection.max_discharge_w;
    let peak = &proposals.peak;
    let (power_w, reason) = if limit_w <= 0.0 {
        (0.0, protection.reason)
    } else if proposals.resilience.islanded {
        (limit_w, proposals.resilience.reason)
    } else if let Some(target) = proposals.remote.discharge() {
        (target.power_w.min(limit_w), target.reason)
    } else if peak.active && peak.discharge_w > 0.0 {
        (peak.discharge_w.min(limit_w), peak.reason)
    } else {
        (
            limit_w,
            Reason::new(Function::Default, Arbitration::HoldForPeak),
        )
    };
    PowerDecision { power_w, reason }
}

/// The battery's charge limit: the largest finite charge asked for by
/// scheduling (grid plus PV surplus), export control and a remote charge
/// target (the first of them on a tie), within protection's limit; none
/// when protection blocks charging.
pub fn battery_charge(protection: &ProtectionAllowance, proposals: &Proposals) -> PowerDecision {
    let schedule = &proposals.schedule;
    let export = &proposals.export;
    let asked = [
        Some((
            schedule.grid_charge_w + schedule.pv_charge_w_max,
            schedule.reason,
        )),
        Some((export.charge_w, export.reason)),
        proposals.remote.charge().map(|t| (-t.power_w, t.reason)),
    ];
    let mut wanted = PowerDecision {
        power_w: 0.0,
        reason: Reason::new(Function::Default, Arbitration::NoChargeWanted),
    };
    for (power_w, reason) in asked.into_iter().flatten() {
        if power_w.is_finite() && power_w > wanted.power_w {
            wanted = PowerDecision { power_w, reason };
        }
    }
    if protection.max_charge_w <= 0.0 {
        PowerDecision {
            power_w: 0.0,
            reason: protection.reason,
        }
    } else {
        PowerDecision {
            power_w: wanted.power_w.min(protection.max_charge_w),
            reason: wanted.reason,
        }
    }
}

/// The battery converter from the two limits: off when protection turns
/// everything off; in standby while it holds for the peak. Its reason is
/// the discharge's when it discharges, else the charge's.
pub fn battery(
    protection: &ProtectionAllowance,
    discharge: PowerDecision,
    charge: PowerDecision,
) -> BatteryCommand {
    if protection.all_off {
        return BatteryCommand {
            enabled: false,
            charge_limit_w: 0.0,
            discharge_limit_w: 0.0,
            standby: false,
            reason: protection.reason,
        };
    }
    let standby = discharge.reason.function == Function::Default;
    BatteryCommand {
        enabled: true,
        charge_limit_w: charge.power_w,
        discharge_limit_w: discharge.power_w,
        standby,
        reason: if discharge.power_w > 0.0 && !standby {
            discharge.reason
        } else {
            // Holding (standby): what happens is the charge decision.
            charge.reason
        },
    }
}

/// The charger: off in a power cut; boosting (charging the battery from
/// mains) when the battery charges and scheduling wants grid charge or a
/// remote signal asks for charge.
pub fn charger(proposals: &Proposals, charge: PowerDecision) -> ChargerCommand {
    let resilience = &proposals.resilience;
    if resilience.islanded {
        return ChargerCommand {
            enabled: false,
            boost: false,
            reason: resilience.reason,
        };
    }
    let grid_charge_wanted = charge.power_w > 0.0
        && (proposals.schedule.grid_charge_w > 0.0 || proposals.remote.charge().is_some());
    ChargerCommand {
        enabled: true,
        boost: grid_charge_wanted,
        reason: charge.reason,
    }
}

/// Whether the inverter may take the PV surplus to the AC side: an
/// inverter on the grid that nothing else drives (no cut, no protection
/// block of the battery or PV, no remote discharge, no peak).
pub fn surplus_to_ac_allowed(
    site: &Site,
    protection: &ProtectionAllowance,
    resilience: &ResilienceProposal,
    remote: &RemoteProposal,
    peak: &PeakProposal,
) -> bool {
    site.inverter_fitted
        && site.mains_present
        && !resilience.islanded
        && !protection.all_off
        && !protection.pv_off
        && remote.discharge().is_none()
        && !peak.active
}

/// The inverter: in a power cut it serves the AC loads unless resilience
/// sheds them; on the grid it carries a remote discharge beyond the DC
/// loads, the peak's AC share, or the PV surplus. It requests power only
/// while the battery may discharge, in a cut, or for the surplus; it
/// exports only where the site may, on the grid.
pub fn inverter(
    site: &Site,
    protection: &ProtectionAllowance,
    proposals: &Proposals,
    discharge: PowerDecision,
) -> InverterCommand {
    let resilience = &proposals.resilience;
    let surplus = &proposals.surplus;
    let shed = site.inverter_fitted && resilience.islanded && !resilience.ac_loads_served;
    let (request_ac_w, reason) = if !site.inverter_fitted {
        (0.0, Reason::new(Function::Default, Arbitration::NoInverter))
    } else if shed {
        (
            0.0,
            Reason::new(Function::Resilience, Arbitration::AcShedForEssentials),
        )
    } else if resilience.islanded {
        (site.ac_load_w, resilience.reason)
    } else if let Some(target) = proposals.remote.discharge() {
        (
            (target.power_w.min(protection.max_discharge_w) - site.dc_load_w).max(0.0),
            target.reason,
        )
    } else if proposals.peak.active {
        (proposals.peak.inverter_ac_w, proposals.peak.reason)
    } else if surplus.inverter_ac_w > 0.0 {
        (surplus.inverter_ac_w, surplus.reason)
    } else {
        (0.0, Reason::new(Function::Default, Arbitration::Idle))
    };
    let requesting = discharge.power_w > 0.0 || resilience.islanded || surplus.inverter_ac_w > 0.0;
    InverterCommand {
        enabled: site.inverter_fitted && !protection.all_off && !shed,
        request_ac_w: if requesting { request_ac_w } else { 0.0 },
        export_enabled: site.export_allowed && !resilience.stop_export && site.mains_present,
        reason,
    }
}

/// The PV converter: capped to zero by protection, else export control's
/// cap.
pub fn pv(protection: &ProtectionAllowance, export: &ExportProposal) -> PvCommand {
    if protection.pv_off {
        PvCommand {
            cap_w: Some(0.0),
            reason: protection.reason,
        }
    } else {
        PvCommand {
            cap_w: export.pv_cap_w,
            reason: export.reason,
        }
    }
}

/// DC circuit `index`: off when protection turns everything off or trips
/// it, when resilience's budget sheds it, or when a demand signal sheds
/// it; otherwise on.
pub fn circuit(
    index: usize,
    protection: &ProtectionAllowance,
    resilience: &ResilienceProposal,
    remote: &RemoteProposal,
) -> SwitchCommand {
    let bit = u32::try_from(index)
        .ok()
        .and_then(|i| 1u16.checked_shl(i))
        .unwrap_or(0);
    let resilience_reason = Reason::new(
        Function::Resilience,
        resilience
            .circuit_reasons
            .get(index)
            .copied()
            .unwrap_or(CircuitReason::NotConfigured),
    );
    let (on, reason) = if protection.all_off || protection.trip_circuits & bit != 0 {
        (false, protection.reason)
    } else if resilience.circuits_on & bit == 0 {
        (false, resilience_reason)
    } else if remote.shed_circuits & bit != 0 {
        (
            false,
            Reason::new(Function::DemandManagement, Arbitration::Shed),
        )
    } else {
        (true, resilience_reason)
    };
    SwitchCommand {
        on,
        power_cap_w: None,
        reason,
    }
}

/// A USB-PD socket: off when protection turns everything off, else as
/// selective supply proposes; a socket it has no proposal for is on.
pub fn socket(
    protection: &ProtectionAllowance,
    proposal: Option<&SocketProposal>,
) -> SwitchCommand {
    match proposal {
        _ if protection.all_off => SwitchCommand {
            on: false,
            power_cap_w: None,
            reason: protection.reason,
        },
        Some(p) => SwitchCommand {
            on: p.on,
            power_cap_w: p.power_cap_w,
            reason: p.reason,
        },
        None => SwitchCommand {
            on: true,
            power_cap_w: None,
            reason: Reason::new(Function::SelectiveSupply, SelectiveReason::Normal),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::BatteryReason;
    use crate::export::ExportReason;
    use crate::peak::PeakReason;
    use crate::protection::{Actions, Limits, ProtectionReason};
    use crate::resilience::ResilienceReason;
    use crate::scheduling::ScheduleReason;

    fn protection_reason() -> Reason {
        Reason::new(Function::Protection, ProtectionReason::Normal)
    }

    /// Protection allows 2 kW charge and 3 kW discharge, nothing blocked.
    fn allowed() -> ProtectionAllowance {
        ProtectionAllowance {
            max_charge_w: 2000.0,
            max_discharge_w: 3000.0,
            all_off: false,
            pv_off: false,
            trip_circuits: 0,
            reason: protection_reason(),
        }
    }

    fn all_off() -> ProtectionAllowance {
        ProtectionAllowance {
            max_charge_w: 0.0,
            max_discharge_w: 0.0,
            all_off: true,
            pv_off: true,
            ..allowed()
        }
    }

    fn site() -> Site {
        Site {
            inverter_fitted: true,
            export_allowed: true,
            mains_present: true,
            ac_load_w: 500.0,
            dc_load_w: 100.0,
        }
    }

    fn resilience_reason(r: ResilienceReason) -> Reason {
        Reason::new(Function::Resilience, r)
    }

    /// On the grid, every circuit on, nothing asked of anything.
    fn nothing_asked() -> Proposals {
        Proposals {
            resilience: ResilienceProposal {
                islanded: false,
                stop_export: false,
                ac_loads_served: true,
                circuits_on: u16::MAX,
                circuit_reasons: [CircuitReason::Normal; resilience::MAX_CIRCUITS],
                reason: resilience_reason(ResilienceReason::MainsPresent),
            },
            remote: RemoteProposal {
                battery: None,
                shed_circuits: 0,
            },
            peak: PeakProposal {
                active: false,
                discharge_w: 0.0,
                inverter_ac_w: 0.0,
                reason: Reason::new(Function::PeakReduction, PeakReason::Inactive),
            },
            export: ExportProposal {
                charge_w: 0.0,
                pv_cap_w: None,
                reason: Reason::new(Function::ExportControl, ExportReason::WithinLimit),
            },
            surplus: SurplusProposal::new(0.0, SurplusReason::NotAllowed),
            schedule: ScheduleProposal {
                grid_charge_w: 0.0,
                pv_charge_w_max: 0.0,
                reason: Reason::new(Function::Scheduling, ScheduleReason::Idle),
            },
            sockets: heapless::Vec::new(),
        }
    }

    fn islanded(mut p: Proposals) -> Proposals {
        p.resilience.islanded = true;
        p.resilience.stop_export = true;
        p.resilience.reason = resilience_reason(ResilienceReason::Islanded);
        p
    }

    fn remote(power_w: f32) -> RemoteProposal {
        RemoteProposal {
            battery: Some(BatteryTarget {
                power_w,
                reason: Reason::new(Function::DemandManagement, BatteryReason::AsRequested),
            }),
            shed_circuits: 0,
        }
    }

    fn peak(discharge_w: f32, inverter_ac_w: f32) -> PeakProposal {
        PeakProposal {
            active: true,
            discharge_w,
            inverter_ac_w,
            reason: Reason::new(Function::PeakReduction, PeakReason::Serving),
        }
    }

    fn decided(power_w: f32, reason: Reason) -> PowerDecision {
        PowerDecision { power_w, reason }
    }

    #[test]
    fn the_allowance_bounds_protection_by_the_rating_and_applies_its_blocks() {
        let mut state = ProtectionState {
            faults: heapless::Vec::new(),
            actions: Actions::default(),
            limits: Limits {
                max_charge_power_w: 5000.0,
                max_discharge_power_w: f32::NAN,
                ..Limits::default()
            },
            reason: ProtectionReason::Normal,
        };
        let a = ProtectionAllowance::new(&state, 2500.0, 3500.0);
        assert_eq!((a.max_charge_w, a.max_discharge_w), (2500.0, 0.0));
        assert!(!a.all_off && !a.pv_off);
        state.limits.max_discharge_power_w = 1000.0;
        state.actions.block_charge = true;
        state.actions.trip_circuits = 0b10;
        let a = ProtectionAllowance::new(&state, 2500.0, 3500.0);
        assert_eq!((a.max_charge_w, a.max_discharge_w), (0.0, 1000.0));
        assert_eq!(a.trip_circuits, 0b10);
        state.actions = Actions {
            open_contactor: true,
            ..Actions::default()
        };
        let a = ProtectionAllowance::new(&state, 2500.0, 3500.0);
        assert_eq!((a.max_charge_w, a.max_discharge_w), (0.0, 0.0));
        assert!(a.all_off && !a.pv_off, "an open contactor leaves PV alone");
        state.actions = Actions {
            disable_pv: true,
            ..Actions::default()
        };
        let a = ProtectionAllowance::new(&state, 2500.0, 3500.0);
        assert!(!a.all_off && a.pv_off);
        state.actions = Actions {
            all_off: true,
            ..Actions::default()
        };
        let a = ProtectionAllowance::new(&state, 2500.0, 3500.0);
        assert!(a.all_off && a.pv_off);
        assert_eq!(a.reason, protection_reason());
    }

    #[test]
    fn discharge_follows_protection_then_resilience_then_remote_then_peak() {
        let mut p = islanded(nothing_asked());
        p.remote = remote(800.0);
        p.peak = peak(400.0, 0.0);
        let blocked = ProtectionAllowance {
            max_discharge_w: 0.0,
            ..allowed()
        };
        assert_eq!(
            battery_discharge(&blocked, &p),
            decided(0.0, protection_reason())
        );
        assert_eq!(
            battery_discharge(&allowed(), &p),
            decided(3000.0, p.resilience.reason)
        );
        p.resilience = nothing_asked().resilience;
        assert_eq!(
            battery_discharge(&allowed(), &p),
            decided(800.0, p.remote.battery.unwrap().reason)
        );
        p.remote = remote(-800.0);
        assert_eq!(
            battery_discharge(&allowed(), &p),
            decided(400.0, p.peak.reason),
            "a remote charge target leaves the discharge to the peak"
        );
    }

    #[test]
    fn discharge_requests_are_clipped_to_protections_limit() {
        let mut p = nothing_asked();
        p.peak = peak(5000.0, 0.0);
        assert_eq!(battery_discharge(&allowed(), &p).power_w, 3000.0);
        p.remote = remote(4000.0);
        assert_eq!(battery_discharge(&allowed(), &p).power_w, 3000.0);
    }

    #[test]
    fn without_a_discharge_request_the_battery_holds_for_the_peak_in_standby() {
        let mut p = nothing_asked();
        p.peak = peak(0.0, 0.0);
        let hold = battery_discharge(&allowed(), &p);
        assert_eq!(
            hold,
            decided(
                3000.0,
                Reason::new(Function::Default, Arbitration::HoldForPeak)
            )
        );
        let charge = battery_charge(&allowed(), &p);
        let b = battery(&allowed(), hold, charge);
        assert!(b.enabled && b.standby);
        assert_eq!(b.discharge_limit_w, 3000.0);
        assert_eq!(
            b.reason,
            Reason::new(Function::Default, Arbitration::NoChargeWanted),
            "holding, the battery's reason is the charge decision's"
        );
    }

    #[test]
    fn charge_is_the_largest_request_and_a_tie_goes_to_scheduling() {
        let mut p = nothing_asked();
        p.schedule.grid_charge_w = 300.0;
        p.schedule.pv_charge_w_max = 200.0;
        p.export.charge_w = 500.0;
        assert_eq!(
            battery_charge(&allowed(), &p),
            decided(500.0, p.schedule.reason)
        );
        p.export.charge_w = 600.0;
        assert_eq!(
            battery_charge(&allowed(), &p),
            decided(600.0, p.export.reason)
        );
        p.remote = remote(-700.0);
        assert_eq!(
            battery_charge(&allowed(), &p),
            decided(700.0, p.remote.battery.unwrap().reason)
        );
        p.remote = remote(700.0);
        assert_eq!(
            battery_charge(&allowed(), &p).power_w,
            600.0,
            "a remote discharge target asks for no charge"
        );
    }

    #[test]
    fn charge_is_clipped_or_blocked_by_protection_and_ignores_nonsense() {
        let mut p = nothing_asked();
        p.export.charge_w = f32::NAN;
        assert_eq!(
            battery_charge(&allowed(), &p),
            decided(
                0.0,
                Reason::new(Function::Default, Arbitration::NoChargeWanted)
            )
        );
        p.export.charge_w = 5000.0;
        assert_eq!(
            battery_charge(&allowed(), &p),
            decided(2000.0, p.export.reason)
        );
        let blocked = ProtectionAllowance {
            max_charge_w: 0.0,
            ..allowed()
        };
        assert_eq!(
            battery_charge(&blocked, &p),
            decided(0.0, protection_reason())
        );
    }

    #[test]
    fn the_battery_is_off_when_protection_turns_everything_off() {
        let p = islanded(nothing_asked());
        let b = battery(
            &all_off(),
            battery_discharge(&allowed(), &p),
            battery_charge(&allowed(), &p),
        );
        assert_eq!(
            b,
            BatteryCommand {
                enabled: false,
                charge_limit_w: 0.0,
                discharge_limit_w: 0.0,
                standby: false,
                reason: protection_reason(),
            }
        );
    }

    #[test]
    fn the_battery_gives_the_discharge_reason_while_it_discharges() {
        let mut p = nothing_asked();
        p.peak = peak(400.0, 0.0);
        p.export.charge_w = 100.0;
        let b = battery(
            &allowed(),
            battery_discharge(&allowed(), &p),
            battery_charge(&allowed(), &p),
        );
        assert!(b.enabled && !b.standby);
        assert_eq!((b.charge_limit_w, b.discharge_limit_w), (100.0, 400.0));
        assert_eq!(b.reason, p.peak.reason);
    }

    #[test]
    fn the_charger_is_off_in_a_cut_and_boosts_only_for_grid_charge() {
        let p = islanded(nothing_asked());
        let c = charger(&p, decided(500.0, p.export.reason));
        assert!(!c.enabled && !c.boost);
        assert_eq!(c.reason, p.resilience.reason);

        let mut p = nothing_asked();
        p.schedule.pv_charge_w_max = 500.0;
        let charge = battery_charge(&allowed(), &p);
        let c = charger(&p, charge);
        assert!(c.enabled && !c.boost, "PV surplus charges without boost");
        assert_eq!(c.reason, p.schedule.reason);
        p.schedule.grid_charge_w = 300.0;
        assert!(charger(&p, battery_charge(&allowed(), &p)).boost);
        let mut p = nothing_asked();
        p.remote = remote(-300.0);
        assert!(charger(&p, battery_charge(&allowed(), &p)).boost);
        assert!(
            !charger(&p, decided(0.0, protection_reason())).boost,
            "no boost when the battery may not charge"
        );
    }

    #[test]
    fn the_surplus_goes_to_ac_only_when_nothing_else_drives_the_inverter() {
        let p = nothing_asked();
        let allowed_with = |site: &Site, prot: &ProtectionAllowance, p: &Proposals| {
            surplus_to_ac_allowed(site, prot, &p.resilience, &p.remote, &p.peak)
        };
        assert!(allowed_with(&site(), &allowed(), &p));
        let no_inverter = Site {
            inverter_fitted: false,
            ..site()
        };
        assert!(!allowed_with(&no_inverter, &allowed(), &p));
        let no_mains = Site {
            mains_present: false,
            ..site()
        };
        assert!(!allowed_with(&no_mains, &allowed(), &p));
        assert!(!allowed_with(&site(), &allowed(), &islanded(p.clone())));
        assert!(!allowed_with(&site(), &all_off(), &p));
        let pv_off = ProtectionAllowance {
            pv_off: true,
            ..allowed()
        };
        assert!(!allowed_with(&site(), &pv_off, &p));
        let mut q = p.clone();
        q.remote = remote(500.0);
        assert!(!allowed_with(&site(), &allowed(), &q));
        q.remote = remote(-500.0);
        assert!(allowed_with(&site(), &allowed(), &q));
        q.peak = peak(0.0, 0.0);
        assert!(!allowed_with(&site(), &allowed(), &q));
    }

    #[test]
    fn the_inverter_serves_the_ac_loads_in_a_cut_unless_resilience_sheds_them() {
        let mut p = islanded(nothing_asked());
        p.remote = remote(800.0);
        let discharge = battery_discharge(&allowed(), &p);
        let i = inverter(&site(), &allowed(), &p, discharge);
        assert!(i.enabled && !i.export_enabled);
        assert_eq!(i.request_ac_w, 500.0);
        assert_eq!(i.reason, p.resilience.reason);
        p.resilience.ac_loads_served = false;
        let i = inverter(&site(), &allowed(), &p, discharge);
        assert!(!i.enabled);
        assert_eq!(i.request_ac_w, 0.0);
        assert_eq!(
            i.reason,
            Reason::new(Function::Resilience, Arbitration::AcShedForEssentials)
        );
    }

    #[test]
    fn on_the_grid_the_inverter_follows_remote_then_peak_then_surplus() {
        let mut p = nothing_asked();
        p.remote = remote(800.0);
        p.peak = peak(400.0, 250.0);
        p.surplus = SurplusProposal::new(300.0, SurplusReason::SurplusRising);
        let at = |p: &Proposals| {
            let i = inverter(&site(), &allowed(), p, battery_discharge(&allowed(), p));
            (i.request_ac_w, i.reason)
        };
        assert_eq!(
            at(&p),
            (700.0, p.remote.battery.unwrap().reason),
            "the remote target beyond the DC load"
        );
        p.remote.battery = None;
        assert_eq!(at(&p), (250.0, p.peak.reason));
        p.peak = nothing_asked().peak;
        assert_eq!(at(&p), (300.0, p.surplus.reason));
        p.surplus = nothing_asked().surplus;
        assert_eq!(
            at(&p),
            (0.0, Reason::new(Function::Default, Arbitration::Idle))
        );
    }

    #[test]
    fn the_inverter_requests_nothing_unless_the_battery_may_discharge() {
        let mut p = nothing_asked();
        p.peak = peak(400.0, 250.0);
        let i = inverter(&site(), &allowed(), &p, decided(0.0, protection_reason()));
        assert_eq!(i.request_ac_w, 0.0);
        assert_eq!(i.reason, p.peak.reason);
        assert!(i.enabled && i.export_enabled);
        let i = inverter(&site(), &all_off(), &p, decided(0.0, protection_reason()));
        assert!(!i.enabled);
        let no_export = Site {
            export_allowed: false,
            ..site()
        };
        assert!(
            !inverter(
                &no_export,
                &allowed(),
                &p,
                decided(0.0, protection_reason())
            )
            .export_enabled
        );
    }

    #[test]
    fn without_an_inverter_it_stays_off() {
        let p = islanded(nothing_asked());
        let no_inverter = Site {
            inverter_fitted: false,
            ..site()
        };
        let i = inverter(
            &no_inverter,
            &allowed(),
            &p,
            decided(3000.0, p.resilience.reason),
        );
        assert!(!i.enabled);
        assert_eq!(i.request_ac_w, 0.0);
        assert_eq!(
            i.reason,
            Reason::new(Function::Default, Arbitration::NoInverter)
        );
    }

    #[test]
    fn pv_is_capped_by_protection_before_export_control() {
        let mut p = nothing_asked();
        p.export.pv_cap_w = Some(1200.0);
        assert_eq!(
            pv(&allowed(), &p.export),
            PvCommand {
                cap_w: Some(1200.0),
                reason: p.export.reason
            }
        );
        let pv_off = ProtectionAllowance {
            pv_off: true,
            ..allowed()
        };
        assert_eq!(
            pv(&pv_off, &p.export),
            PvCommand {
                cap_w: Some(0.0),
                reason: protection_reason()
            }
        );
    }

    #[test]
    fn circuits_follow_protection_then_resilience_then_demand_shedding() {
        let mut p = nothing_asked();
        p.resilience.circuits_on = 0b0111;
        p.resilience.circuit_reasons[3] = CircuitReason::ShedForBudget;
        p.remote.shed_circuits = 0b1110;
        let prot = ProtectionAllowance {
            trip_circuits: 0b0001,
            ..allowed()
        };
        let off = |reason| SwitchCommand {
            on: false,
            power_cap_w: None,
            reason,
        };
        let c = |i| circuit(i, &prot, &p.resilience, &p.remote);
        assert_eq!(c(0), off(protection_reason()));
        assert_eq!(
            c(1),
            off(Reason::new(Function::DemandManagement, Arbitration::Shed))
        );
        assert_eq!(
            c(3),
            off(Reason::new(
                Function::Resilience,
                CircuitReason::ShedForBudget
            ))
        );
        p.remote.shed_circuits = 0;
        assert_eq!(
            circuit(1, &prot, &p.resilience, &p.remote),
            SwitchCommand {
                on: true,
                power_cap_w: None,
                reason: Reason::new(Function::Resilience, CircuitReason::Normal),
            }
        );
        assert_eq!(
            circuit(2, &all_off(), &p.resilience, &p.remote),
            off(protection_reason())
        );
        assert!(!circuit(40, &allowed(), &p.resilience, &p.remote).on);
    }

    #[test]
    fn sockets_follow_protection_then_selective_supply() {
        let proposal = SocketProposal {
            on: true,
            power_cap_w: Some(15.0),
            reason: Reason::new(Function::SelectiveSupply, SelectiveReason::ChargeDeferred),
        };
        assert_eq!(
            socket(&allowed(), Some(&proposal)),
            SwitchCommand {
                on: true,
                power_cap_w: Some(15.0),
                reason: proposal.reason,
            }
        );
        assert_eq!(
            socket(&all_off(), Some(&proposal)),
            SwitchCommand {
                on: false,
                power_cap_w: None,
                reason: protection_reason(),
            }
        );
        assert_eq!(
            socket(&allowed(), None),
            SwitchCommand {
                on: true,
                power_cap_w: None,
                reason: Reason::new(Function::SelectiveSupply, SelectiveReason::Normal),
            }
        );
    }

    #[test]
    fn proposals_carry_their_functions_reasons() {
        let cluster = ClusterCommand {
            battery_power_w: Some(-900.0),
            until: None,
            reason: crate::cluster::ClusterReason::Following,
            dispatch: None,
        };
        let demand = DemandCommand {
            battery_w: Some(500.0),
            battery_reason: BatteryReason::AsRequested,
            battery_signal: Some(1),
            import_limit_w: None,
            import_limit_signal: None,
            shed_mask: 0b100,
            defer_mask: 0,
            live_signals: 1,
        };
        let r = RemoteProposal::new(Some(&cluster), &demand);
        assert_eq!(r.shed_circuits, 0b100);
        let target = r.charge().unwrap();
        assert_eq!(target.power_w, -900.0);
        assert_eq!(target.reason.function, Function::Cluster);
        assert!(r.discharge().is_none(), "a dispatch wins over demand");
        let idle = ClusterCommand {
            battery_power_w: None,
            ..cluster
        };
        let r = RemoteProposal::new(Some(&idle), &demand);
        assert_eq!(
            r.discharge().unwrap().reason.function,
            Function::DemandManagement
        );
        let s = ScheduleProposal::from(&ChargePlan {
            grid_charge_w: 1.0,
            pv_surplus_charge_w_max: 2.0,
            target_soc: 0.5,
            reason: ScheduleReason::OffPeakSizing,
        });
        assert_eq!((s.grid_charge_w, s.pv_charge_w_max), (1.0, 2.0));
        assert_eq!(s.reason.function, Function::Scheduling);
    }
}
