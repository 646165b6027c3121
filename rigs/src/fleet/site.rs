//! The site agent: one household on a feeder.
//!
//! A household with a battery assembly is a rig [`Session`] with the
//! [`DirectEnd`]: its house twin and the real firmware
//! [`firmware::Controller`] in-process, nothing recorded. The agent plays
//! the board's host runtime: it hands received dispatch bytes to the
//! controller (`Input::Dispatch`), gives it UTC (through the loop's clock
//! input), turns every verdict into an [`Ack`] and reports one [`Telemetry`]
//! a minute. A household without an assembly is its AC demand alone
//! ([`twin::grid::HouseholdDemand`], no PV): the cheap model, ~100× faster
//! than a house twin.
//!
//! Steps measure, they do not peek: the household's net AC power for the
//! feeder is the mean of its meter's published import and export signals
//! over the minute.
//!
//! ## The fleet's plant step
//! A fleet runs the house twin at the scenario's `electrical_step_ms`
//! (10 s by default) with [`WakePolicy::OncePerStep`]: the controller wakes
//! once per plant step, its control period is the step, and its input
//! deadlines and watchdog are widened to 2.5 (3) steps, so a coarse step
//! does not read as stale measurements. `rigs/tests/fleet.rs` checks the
//! house's energy balance at that step.

use firmware::cluster::{ClusterConfig, ConfigVerdict, Envelope, PublicKeyHex, Verdict};
use firmware::controller::Output;
use firmware::remote_config::RemoteConfigBounds;
use firmware::wire::cluster_report::{ClusterReport, ReportError};
use twin::engine::SignalId;
use twin::grid::HouseholdDemand;
use twin::house::HouseConfig;
use twin::time::SimTime;

use super::scenario::{FleetScenario, HouseholdSpec};
use super::signatures::SharedSignatures;
use super::wire::{Ack, SiteCounters, Telemetry};
use crate::rig::direct::{self, DirectEnd, WakePolicy};
use crate::rig::plant::Recording;
use crate::rig::{Session, TimeMode};
use crate::sabotage::Sabotage;

/// Reactive power a household draws per kW of import, kvar/kW (pf ≈ 0.98).
pub const Q_PER_P_IMPORT: f64 = 0.2;

/// A battery moving at least this much power (mean over a minute, either
/// way) is taking part in something: a dropout fault takes such
/// assemblies first.
pub const MOVING_POWER_W: f64 = 100.0;

/// Problems building a household.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The house or controller configuration did not build.
    #[error("site {site_id}: {message}")]
    Build {
        /// Site id.
        site_id: u32,
        /// What went wrong.
        message: String,
    },
}

/// What a household did over one minute.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinuteFlow {
    /// Mean net AC power at the meter, kW (+ = import).
    pub net_kw: f64,
    /// Mean reactive power, kvar.
    pub q_kvar: f64,
    /// Mean battery power, W (+ = discharge); 0 without an assembly.
    pub battery_w: f64,
    /// The pack's state of charge at the minute's end, as the house
    /// measures it (0..1); `None` without an assembly.
    pub soc: Option<f64>,
}

struct AssemblySite {
    session: Session<DirectEnd>,
    grid_import: SignalId,
    grid_export: SignalId,
    battery_power: SignalId,
    soc: SignalId,
    envelope: Envelope,
    export_allowed: bool,
    /// Powered down and off the uplink (a dropout fault).
    dropped: bool,
}

enum Kind {
    Assembly(Box<AssemblySite>),
    DemandOnly(Box<HouseholdDemand>),
}

/// One household and, if it has one, its assembly's host runtime.
pub struct Site {
    /// Where and what it is.
    pub spec: HouseholdSpec,
    kind: Kind,
    step_us: u64,
    now: SimTime,
    /// Mean battery power over the last minute stepped, W (+ = discharge).
    last_battery_w: f64,
}

/// The house configuration of a household: the template with the
/// household's seed, calendar, step, demand, PV strings and packs.
pub fn house_config(sc: &FleetScenario, h: &HouseholdSpec) -> Result<HouseConfig, SiteError> {
    let err = |message: String| SiteError::Build {
        site_id: h.site_id,
        message,
    };
    let mut c = sc.house.clone();
    let step_us = sc.electrical_step_ms * 1000;
    c.seed = h.seed;
    c.calendar = sc.calendar;
    c.electrical_step_us = step_us;
    c.environment_step_us = c.environment_step_us.div_ceil(step_us).max(1) * step_us;
    c.initial_soc = h.initial_soc;
    c.demand.archetype = h.demand;
    c.demand.daily_energy_kwh = h.daily_energy_kwh;
    if h.pv_strings == 0 {
        c.pv = None;
    } else if let Some(pv) = c.pv.as_mut() {
        pv.array = twin::pv::PvArray::new(
            pv.array.module().clone(),
            pv.array.modules_in_series(),
            h.pv_strings,
        )
        .map_err(err)?;
    }
    if let (Some(x), Some(inv)) = (h.export_limit_w, c.inverter.as_mut()) {
        inv.export_enabled = x > 0.0;
        inv.export_limit_w = x;
    }
    if let twin::battery::BatteryPackParams::Ecm(p) = &mut c.pack {
        p.parallel = h.packs as usize;
    }
    Ok(c)
}

/// The controller configuration of a household's assembly: the template
/// with its site, branch, the server's key, capacity, and the fleet step's
/// timing (control period = step, deadlines 2.5 steps, watchdog 3 steps).
pub fn controller_config(
    sc: &FleetScenario,
    h: &HouseholdSpec,
    server_key: [u8; 32],
) -> Result<firmware::ControllerConfig, SiteError> {
    let mut c = sc.controller.clone();
    let step_ms = sc.electrical_step_ms as u32;
    c.assembly.site_id = h.site_id;
    c.assembly.usable_capacity_wh *= h.packs as f32;
    c.assembly.initial_soc = h.initial_soc as f32;
    if let Some(x) = h.export_limit_w {
        c.assembly.export_allowed = x > 0.0;
        c.export.export_limit_w = x as f32;
    }
    c.control_period_ms = step_ms.max(c.control_period_ms);
    let d = &mut c.protection.deadlines;
    let wide = step_ms.saturating_mul(5) / 2;
    for v in [
        &mut d.cell_voltage_ms,
        &mut d.pack_ms,
        &mut d.temperature_ms,
        &mut d.bus_ms,
        &mut d.circuits_ms,
    ] {
        *v = (*v).max(wide);
    }
    c.protection.watchdog_deadline_ms = c
        .protection
        .watchdog_deadline_ms
        .max(step_ms.saturating_mul(3));
    let mut trusted_keys = heapless::Vec::new();
    let _ = trusted_keys.push(PublicKeyHex(server_key));
    c.cluster = Some(ClusterConfig {
        site_id: h.site_id,
        branch_id: h.branch_id,
        trusted_keys,
        envelope: Envelope {
            start_delay_max_s: sc.server.start_delay_max_s,
            ..Envelope::default()
        },
        server_silence_s: sc.server.assembly_silence_s,
        remote_config: RemoteConfigBounds::default(),
    });
    Ok(c)
}

/// The ack label of a verdict: `accepted`, `duplicate`,
/// `ignored:<reason>`, `rejected:<reason>` (reasons in snake case).
pub fn verdict_label(v: &Verdict) -> String {
    fn snake(debug: String) -> String {
        let head = debug.split('(').next().unwrap_or("").to_string();
        let mut out = String::new();
        for (i, ch) in head.chars().enumerate() {
            if ch.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_lowercase());
            } else {
                out.push(ch);
            }
        }
        out
    }
    match v {
        Verdict::Accepted(_) => "accepted".into(),
        Verdict::Ignored(r) => {
            let r = snake(format!("{r:?}"));
            if r == "duplicate" {
                r
            } else {
                format!("ignored:{r}")
            }
        }
        Verdict::Rejected(r) => format!("rejected:{}", snake(format!("{r:?}"))),
    }
}

/// The ack label of a configuration verdict (as [`verdict_label`]).
pub fn config_verdict_label(v: &ConfigVerdict) -> String {
    match v {
        ConfigVerdict::Accepted(_) => "accepted".into(),
        ConfigVerdict::Ignored(r) => verdict_label(&Verdict::Ignored(*r)),
        ConfigVerdict::Rejected(r) => verdict_label(&Verdict::Rejected(*r)),
    }
}

impl Site {
    /// Builds a household (with its assembly when it has one).
    pub fn new(
        sc: &FleetScenario,
        spec: HouseholdSpec,
        server_key: [u8; 32],
    ) -> Result<Self, SiteError> {
        let step_us = sc.electrical_step_ms * 1000;
        let err = |message: String| SiteError::Build {
            site_id: spec.site_id,
            message,
        };
        let kind = if spec.assembly {
            let hc = house_config(sc, &spec)?;
            let cc = controller_config(sc, &spec, server_key)?;
            let export_allowed = cc.assembly.export_allowed;
            let envelope = cc
                .cluster
                .as_ref()
                .map(|c| c.envelope.clone())
                .unwrap_or_default();
            let mut session = direct::session(
                hc,
                cc,
                WakePolicy::OncePerStep,
                Recording::default(),
                TimeMode::Lockstep,
            )
            .map_err(|e| err(e.to_string()))?;
            session.parts_mut().0.sabotage = sc.sabotage.map(Sabotage::new);
            let s = session.plant().signals();
            let id = |n: &str| s.require(n).map_err(|e| err(e.to_string()));
            let (grid_import, grid_export, battery_power, soc) = (
                id("grid_import_w")?,
                id("grid_export_w")?,
                id("battery_power_w")?,
                id("soc")?,
            );
            Kind::Assembly(Box::new(AssemblySite {
                grid_import,
                grid_export,
                battery_power,
                soc,
                session,
                envelope,
                export_allowed,
                dropped: false,
            }))
        } else {
            let mut dc = sc.house.demand.clone();
            dc.archetype = spec.demand;
            dc.daily_energy_kwh = spec.daily_energy_kwh;
            let d =
                HouseholdDemand::new(dc, spec.seed, sc.calendar).map_err(|e| err(e.to_string()))?;
            Kind::DemandOnly(Box::new(d))
        };
        Ok(Site {
            spec,
            kind,
            step_us,
            now: SimTime::ZERO,
            last_battery_w: 0.0,
        })
    }

    /// Whether it has an assembly that is still on line.
    pub fn is_online_assembly(&self) -> bool {
        matches!(&self.kind, Kind::Assembly(a) if !a.dropped)
    }

    /// Whether the battery moved power (at least [`MOVING_POWER_W`] either
    /// way, mean over the last minute stepped): measured on the plant.
    pub fn battery_is_moving_power(&self) -> bool {
        self.last_battery_w.abs() >= MOVING_POWER_W
    }

    /// Hands a received dispatch record (or, with `config`, a signed
    /// configuration message) to the controller and returns its ack.
    /// `None` when there is no assembly to take it, or it has dropped out.
    pub fn deliver(
        &mut self,
        payload: &[u8],
        config: bool,
        minute: u32,
        signatures: &mut SharedSignatures,
    ) -> Option<Ack> {
        let Kind::Assembly(a) = &mut self.kind else {
            return None;
        };
        if a.dropped {
            return None;
        }
        let (end, plant) = a.session.parts_mut();
        if config {
            end.configure_with(plant, payload, signatures);
        } else {
            end.dispatch_with(plant, payload, signatures);
        }
        let mut label = None;
        for e in end.events.drain(..) {
            match e {
                Output::DispatchVerdict(v) if !config => label = Some(verdict_label(&v)),
                Output::ConfigVerdict(v) if config => label = Some(config_verdict_label(&v)),
                _ => {}
            }
        }
        Some(Ack {
            site_id: self.spec.site_id,
            sequence: super::wire::record_sequence(payload),
            verdict: label?,
            minute,
        })
    }

    /// The assembly powers down and leaves the uplink (a dropout fault):
    /// battery, inverter and charger off; the house runs on.
    pub fn drop_out(&mut self) {
        if let Kind::Assembly(a) = &mut self.kind {
            a.dropped = true;
            let (end, plant) = a.session.parts_mut();
            end.power_down(plant);
        }
    }

    /// Steps the household one minute.
    pub fn step_minute(&mut self) -> MinuteFlow {
        let steps = (60_000_000 / self.step_us).max(1);
        let end = SimTime::from_micros(self.now.as_micros() + 60_000_000);
        let flow = match &mut self.kind {
            Kind::Assembly(a) => {
                let (mut imp, mut exp, mut bat) = (0.0, 0.0, 0.0);
                for _ in 0..steps {
                    // The direct end cannot fail; a dropped-out assembly's
                    // house steps on alone.
                    let _ = a.session.step();
                    let s = a.session.plant().signals();
                    imp += s.get(a.grid_import);
                    exp += s.get(a.grid_export);
                    bat += s.get(a.battery_power);
                }
                // Outputs other than verdicts (telemetry snapshots, reports)
                // are not used by the fleet: drop them so memory stays flat.
                a.session.parts_mut().0.events.clear();
                let n = steps as f64;
                let net_kw = (imp - exp) / n / 1000.0;
                MinuteFlow {
                    net_kw,
                    q_kvar: net_kw.max(0.0) * Q_PER_P_IMPORT,
                    battery_w: bat / n,
                    soc: Some(a.session.plant().signals().get(a.soc)),
                }
            }
            Kind::DemandOnly(d) => {
                let dt_s = self.step_us as f64 / 1e6;
                let mut sum = 0.0;
                let mut t = self.now.as_micros();
                for _ in 0..steps {
                    sum += d.step(SimTime::from_micros(t), dt_s);
                    t += self.step_us;
                }
                let net_kw = sum / steps as f64 / 1000.0;
                MinuteFlow {
                    net_kw,
                    q_kvar: net_kw.max(0.0) * Q_PER_P_IMPORT,
                    battery_w: 0.0,
                    soc: None,
                }
            }
        };
        self.now = end;
        self.last_battery_w = flow.battery_w;
        flow
    }

    /// The assembly's telemetry for the minute just stepped: the server
    /// asks for the firmware's cluster report, which is read from the bytes
    /// the uplink sends, and the uplink adds the minute's metered flows.
    /// `Ok(None)` without an assembly or after it dropped out; an error
    /// when the report's bytes do not parse (the shard counts it).
    pub fn telemetry(
        &mut self,
        minute: u32,
        flow: &MinuteFlow,
    ) -> Result<Option<Telemetry>, ReportError> {
        let Kind::Assembly(a) = &mut self.kind else {
            return Ok(None);
        };
        if a.dropped {
            return Ok(None);
        }
        let (end, plant) = a.session.parts_mut();
        let Some(bytes) = end.request_cluster_report(plant) else {
            return Ok(None);
        };
        let st = ClusterReport::parse(&bytes)?;
        // Without export, discharge can at most cover the household's own
        // consumption: what the battery gives now plus what is imported.
        let own_use_w = if a.export_allowed {
            f64::INFINITY
        } else {
            flow.battery_w.max(0.0) + (flow.net_kw * 1000.0).max(0.0)
        };
        let k = st.counters;
        let rejected = k
            .rejections()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.to_string(), *n))
            .collect();
        Ok(Some(Telemetry {
            site_id: st.site_id,
            branch_id: st.branch_id,
            minute,
            soc: f64::from(st.soc),
            reserve_soc: f64::from(st.reserve_soc),
            max_charge_w: f64::from(st.max_charge_w)
                .min(f64::from(a.envelope.max_sink_w))
                .max(0.0),
            max_discharge_w: f64::from(st.max_discharge_w)
                .min(f64::from(a.envelope.max_source_w))
                .min(own_use_w)
                .max(0.0),
            battery_w: flow.battery_w,
            net_ac_w: flow.net_kw * 1000.0,
            participating: st.participating,
            server_silent: st.server_silent,
            dispatch_seq: st.dispatch_sequence,
            counters: SiteCounters {
                accepted: k.accepted,
                accepted_heartbeat: k.accepted_heartbeat,
                accepted_config: k.accepted_config,
                duplicate: k.duplicate,
                ignored: k.ignored_other_branch + k.ignored_other_site,
                rejected,
            },
        }))
    }

    /// The house's true SOC (for the run's per-minute CSV; not sent).
    pub fn true_soc(&self) -> Option<f64> {
        match &self.kind {
            Kind::Assembly(a) => {
                let s = a.session.plant().signals();
                s.require("soc").ok().map(|id| s.get(id))
            }
            Kind::DemandOnly(_) => None,
        }
    }
}
