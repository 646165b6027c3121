//! `PlantLink` in a lockstep loop with the twin household: commands encoded
//! as the controller sends them reach the house only through frames, their
//! effect comes back only through status frames, and a silent controller
//! hands the house back to its own policy.

use std::path::{Path, PathBuf};

use firmware::controller::{
    BatteryCommand, ChargerCommand, InverterCommand, PlantCommand, PvCommand, SwitchCommand,
};
use firmware::decision::{Arbitration, Function, Reason};
use firmware::wire::can::messages::*;
use firmware::wire::can::MESSAGES;
use firmware::wire::e2e::E2eSender;
use links::{CanFrame, CanId};
use rigs::plant_link::{PlantLink, PlantLinkOptions, PlantState, CHARGER_BOOST_SETPOINT_V};
use rigs::rig::direct::assembly_command;
use twin::engine::Engine;
use twin::house::{House, HouseConfig, PlantCommands};
use twin::time::SimTime;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn terrace() -> HouseConfig {
    let path = repo("twin/params/house/terrace.toml");
    HouseConfig::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The controller's end, reduced to encoding: one E2E sender per message.
#[derive(Default)]
struct Encoder {
    senders: std::collections::BTreeMap<u16, E2eSender>,
}

impl Encoder {
    fn frame(&mut self, name: &str, raw: [u8; 8]) -> CanFrame {
        let spec = MESSAGES.iter().find(|m| m.name == name).unwrap();
        let mut data = raw;
        if let Some(id) = spec.e2e_data_id {
            self.senders
                .entry(spec.id)
                .or_default()
                .protect(id, &mut data);
        }
        CanFrame::new(CanId::Standard(spec.id), &data).unwrap()
    }

    /// A firmware plant command as the four command frames (W rounded to
    /// the signals' 1-W resolution).
    fn command_frames(&mut self, c: &PlantCommand) -> Vec<CanFrame> {
        let w = |x: f32| x.round().clamp(0.0, 65_535.0) as u16;
        let mask = |s: &[SwitchCommand]| {
            s.iter()
                .enumerate()
                .fold(0u16, |m, (i, s)| m | (u16::from(s.on) << i))
        };
        let battery = BatteryCmd::new(
            0,
            0,
            c.battery.enabled,
            c.battery.standby,
            w(c.battery.charge_limit_w),
            w(c.battery.discharge_limit_w),
            BatteryCmdBatteryFunction::Default,
        )
        .unwrap();
        let converter = ConverterCmd::new(
            0,
            0,
            c.charger.enabled,
            c.charger.boost,
            c.inverter.enabled,
            c.inverter.export_enabled,
            w(c.inverter.request_ac_w),
            ConverterCmdChargerFunction::Default,
            ConverterCmdInverterFunction::Default,
        )
        .unwrap();
        let pv = PvCmd::new(
            0,
            0,
            c.pv.cap_w.is_some(),
            w(c.pv.cap_w.unwrap_or(0.0)),
            PvCmdPvFunction::Default,
        )
        .unwrap();
        let switch = SwitchCmd::new(0, 0, mask(&c.circuits), mask(&c.sockets)).unwrap();
        vec![
            self.frame("BatteryCmd", *battery.raw()),
            self.frame("ConverterCmd", *converter.raw()),
            self.frame("PvCmd", *pv.raw()),
            self.frame("SwitchCmd", *switch.raw()),
        ]
    }

    fn heartbeat(&mut self, echo_ms: u32) -> CanFrame {
        let m = CtrlHeartbeat::new(
            0,
            0,
            CtrlHeartbeatCtrlState::Normal,
            echo_ms,
            0,
            false,
            false,
        )
        .unwrap();
        self.frame("CtrlHeartbeat", *m.raw())
    }
}

fn reason() -> Reason {
    Reason::new(Function::Default, Arbitration::Idle)
}

fn switch(on: bool) -> SwitchCommand {
    SwitchCommand {
        on,
        power_cap_w: None,
        reason: reason(),
    }
}

/// Lights off downstairs, everything else on, no boost, a PV cap.
fn command() -> PlantCommand {
    PlantCommand {
        battery: BatteryCommand {
            enabled: true,
            charge_limit_w: 2000.0,
            discharge_limit_w: 3000.0,
            standby: false,
            reason: reason(),
        },
        charger: ChargerCommand {
            enabled: true,
            boost: true,
            reason: reason(),
        },
        inverter: InverterCommand {
            enabled: true,
            request_ac_w: 800.0,
            export_enabled: false,
            reason: reason(),
        },
        pv: PvCommand {
            cap_w: Some(1500.0),
            reason: reason(),
        },
        circuits: [false, true, true, true].into_iter().map(switch).collect(),
        sockets: [true, false, true, true].into_iter().map(switch).collect(),
    }
}

#[test]
fn decoding_command_frames_gives_what_the_direct_path_gives() {
    let cfg = terrace();
    let mut house = House::new(cfg.clone()).unwrap();
    let engine = Engine::new(&mut house).unwrap();
    let mut link = PlantLink::new(&cfg, engine.signals(), PlantLinkOptions::default()).unwrap();
    let mut enc = Encoder::default();
    let c = command();
    for f in enc.command_frames(&c) {
        link.handle_frame(SimTime::ZERO, &f);
    }
    // The direct path: the same command through the same port.
    let direct =
        |c: &PlantCommand, link: &PlantLink| link.port().plant_commands(&assembly_command(c));
    let standby_v = link.port().standby_setpoint_v();
    assert!(standby_v.is_some(), "the terrace house has a charger");
    assert_eq!(link.commands(SimTime::ZERO), Some(direct(&c, &link)));
    // What the house is told, written out (boost is the charger's boost
    // setpoint; no standby, so the battery keeps its own setpoint).
    assert_eq!(
        link.commands(SimTime::ZERO),
        Some(PlantCommands {
            battery_enabled: true,
            battery_discharge_limit_w: 3000.0,
            battery_charge_limit_w: 2000.0,
            battery_setpoint_v: None,
            charger_enabled: true,
            charger_setpoint_v: Some(CHARGER_BOOST_SETPOINT_V),
            inverter_enabled: true,
            inverter_request_ac_w: 800.0,
            inverter_export_enabled: Some(false),
            pv_cap_w: Some(1500.0),
            circuits_on: Some(vec![false, true, true, true]),
            sockets_on: Some(vec![true, false, true, true]),
        })
    );
    let mut unboosted = c.clone();
    unboosted.charger.boost = false;
    unboosted.pv.cap_w = None;
    unboosted.battery.standby = true;
    for f in enc.command_frames(&unboosted) {
        link.handle_frame(SimTime::ZERO, &f);
    }
    assert_eq!(
        link.commands(SimTime::ZERO),
        Some(direct(&unboosted, &link))
    );
    assert_eq!(
        link.commands(SimTime::ZERO)
            .and_then(|p| p.battery_setpoint_v),
        standby_v,
        "standby reaches the house as a setpoint below the charger's"
    );
}

/// Power of the downstairs lighting circuit as its `CircuitStatus` frames
/// report it (the latest one seen), W.
fn downstairs_lights_w(frames: &[CanFrame]) -> Option<f32> {
    let id = MESSAGES
        .iter()
        .find(|m| m.name == "CircuitStatus")
        .unwrap()
        .id;
    frames
        .iter()
        .rev()
        .filter(|f| f.id() == CanId::Standard(id))
        .filter_map(|f| CircuitStatus::try_from(f.data()).ok())
        .filter(|m| m.circuit_index() == 0)
        .map(|m| m.circuit_power())
        .next()
}

#[test]
fn commands_travel_as_frames_and_a_silent_controller_hands_back_control() {
    // 1-s house steps from 20:00 (the evening lights are on 19:30-23:30).
    let cfg = terrace();
    let mut house = House::new(cfg.clone()).unwrap();
    let mut engine = Engine::new(&mut house).unwrap();
    engine.run_until(&mut house, SimTime::from_secs(20 * 3600), |_, _| true);
    let mut link = PlantLink::new(&cfg, engine.signals(), PlantLinkOptions::default()).unwrap();
    let mut enc = Encoder::default();
    let c = command();
    let mut lights = Vec::new();
    let mut states = Vec::new();
    for step in 0..120 {
        engine.tick(&mut house);
        let t = engine.now();
        link.on_step(t, engine.signals());
        let frames: Vec<CanFrame> = std::iter::from_fn(|| link.poll_transmit()).collect();
        let _sync = link.sync_frame(t);
        // The controller answers for the first minute, then falls silent.
        if step < 60 {
            for f in enc.command_frames(&c) {
                link.handle_frame(t, &f);
            }
            let echo = (t.as_micros() / 1000) as u32;
            link.handle_frame(t, &enc.heartbeat(echo));
            assert_eq!(link.last_sync_echo_ms(), Some(echo));
        }
        house.command(link.commands(t));
        if let Some(w) = downstairs_lights_w(&frames) {
            lights.push((step, w));
        }
        states.push(link.plant_state());
    }
    let lit = |from: i32, to: i32| {
        lights
            .iter()
            .filter(|(s, _)| (from..to).contains(s))
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
    };
    // Before the first command: the policy keeps the lights on.
    assert!(lit(0, 1).iter().all(|w| *w > 40.0), "{lights:?}");
    // Switched off by the controller's SwitchCmd.
    assert!(lit(5, 60).iter().all(|w| *w == 0.0), "{lights:?}");
    // The controller is silent from step 60; at the next step its commands
    // are 1 s old (deadline 350 ms): the house's policy switches them on.
    assert!(lit(62, 120).iter().all(|w| *w > 40.0), "{lights:?}");
    assert_eq!(states[30], PlantState::Running);
    assert_eq!(states[61], PlantState::CommandTimeout);
    assert_eq!(link.stats().command_timeouts_total(), 4);
    assert_eq!(link.stats().rejects.total(), 0);
}
