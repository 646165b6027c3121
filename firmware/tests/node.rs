//! The link layer end to end: a `Node` driven with frames encoded by the
//! codecs generated from `can/maslow.dbc` and P1 telegrams written by
//! `wire::p1::emit`.

use std::collections::HashMap;
use std::path::Path;

use firmware::controller::ControllerConfig;
use firmware::node::{ClockMode, LinkConfig, Node, TxFrame};
use firmware::protection::FaultKind;
use firmware::wire::can::{self, messages::*};
use firmware::wire::e2e::{self, E2eChecker, E2eSender, E2eStatus};
use firmware::wire::p1::{self, Header, Telegram, Timestamp};
use firmware::Millis;
use proptest::prelude::*;

fn config() -> ControllerConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/terrace.toml");
    firmware::config_file::load(&path).unwrap()
}

fn raw_id(id: embedded_can::Id) -> u16 {
    match id {
        embedded_can::Id::Standard(s) => s.as_raw(),
        embedded_can::Id::Extended(_) => panic!("standard ids only"),
    }
}

/// The plant's side of the link: healthy status frames at their DBC
/// cycles, E2E-protected where the DBC says.
struct Plant {
    senders: HashMap<(u16, u8), E2eSender>,
    mains_present: bool,
    send_pack: bool,
    telegrams_sent: u8,
}

impl Plant {
    fn new() -> Self {
        Plant {
            senders: HashMap::new(),
            mains_present: true,
            send_pack: true,
            telegrams_sent: 0,
        }
    }

    fn protect(&mut self, id: u16, key: u8, raw: &[u8; 8]) -> (u16, [u8; 8]) {
        let mut d = *raw;
        if let Some(data_id) = can::spec(id).unwrap().e2e_data_id {
            self.senders
                .entry((id, key))
                .or_default()
                .protect(data_id, &mut d);
        }
        (id, d)
    }

    /// The status frames due at `t_ms` (a multiple of 100).
    fn status(&mut self, t_ms: u64) -> Vec<(u16, [u8; 8])> {
        let mut out = Vec::new();
        if self.send_pack {
            let p = PackStatus::new(0, 0, 52.8, 0.0).unwrap();
            out.push(self.protect(raw_id(PackStatus::MESSAGE_ID), 0, p.raw()));
        }
        let c = CellExtremes::new(0, 0, 3.28, 3.30, 20.0, 21.0).unwrap();
        out.push(self.protect(raw_id(CellExtremes::MESSAGE_ID), 0, c.raw()));
        let b = BusStatus::new(0, 0, 50.0, 100, 0).unwrap();
        out.push(self.protect(raw_id(BusStatus::MESSAGE_ID), 0, b.raw()));
        let m = MainsStatus::new(0, 0, self.mains_present, 230.0, 50.0).unwrap();
        out.push(self.protect(raw_id(MainsStatus::MESSAGE_ID), 0, m.raw()));
        let h = PlantHeartbeat::new(0, 0, PlantHeartbeatPlantState::Running, 0, 0).unwrap();
        out.push(self.protect(raw_id(PlantHeartbeat::MESSAGE_ID), 0, h.raw()));
        if t_ms.is_multiple_of(500) {
            for i in 0..4u8 {
                let c = CircuitStatus::new(0, 0, i, 20.0, 0.4, 50.0, false).unwrap();
                out.push(self.protect(raw_id(CircuitStatus::MESSAGE_ID), i, c.raw()));
            }
        }
        if t_ms.is_multiple_of(1000) {
            let p = PvStatus::new(0, 0, 0).unwrap();
            out.push((raw_id(PvStatus::MESSAGE_ID), *p.raw()));
            for i in 0..4u8 {
                let s = SocketStatus::new(i, false, false, 0.0, 0, 0, 127.5, 0).unwrap();
                out.push((raw_id(SocketStatus::MESSAGE_ID), *s.raw()));
            }
        }
        out
    }

    /// A P1 telegram at local time 2026-11-26 `seconds` after midnight.
    fn telegram(&mut self, seconds: u32, import_w: u32) -> Vec<u8> {
        let mut identification = heapless::String::new();
        identification.push_str("\\2MT382-1000").unwrap();
        let t = Telegram {
            header: Header {
                manufacturer: *b"ISK",
                identification,
            },
            version: Some(50),
            timestamp: Timestamp {
                year: 26,
                month: 11,
                day: 26,
                hour: (seconds / 3600) as u8,
                minute: (seconds / 60 % 60) as u8,
                second: (seconds % 60) as u8,
                summer: false,
            },
            equipment_id: heapless::Vec::from_slice(b"K8EG004046395507").unwrap(),
            energy_delivered_wh: [1_000_000, 2_000_000],
            energy_returned_wh: [10, 20],
            tariff: 2,
            power_delivered_w: import_w,
            power_returned_w: 0,
            power_failures: 0,
            long_power_failures: 0,
            failure_log: heapless::Vec::new(),
            voltage_dv: [Some(2300), None, None],
            current_a: [Some(1), None, None],
        };
        let mut buf = [0u8; p1::MAX_TELEGRAM_LEN];
        let n = p1::emit(&t, &mut buf).unwrap();
        self.telegrams_sent = self.telegrams_sent.wrapping_add(1);
        buf[..n].to_vec()
    }

    fn time_sync(&mut self, t_ms: u32) -> (u16, [u8; 8]) {
        let s = TimeSync::new(0, 0, t_ms, self.telegrams_sent).unwrap();
        self.protect(raw_id(TimeSync::MESSAGE_ID), 0, s.raw())
    }
}

/// Runs a local-clock node from `from` to `to` (ms, steps of 100): due
/// timeouts first, then the plant's frames at that instant (and a P1
/// telegram every second when `meter`); returns what it sent.
fn run_local(
    node: &mut Node,
    plant: &mut Plant,
    from: u64,
    to: u64,
    meter: bool,
) -> Vec<(u64, TxFrame)> {
    let mut sent = Vec::new();
    let mut t = from;
    while t <= to {
        while let Some(due) = node.poll_timeout() {
            if due.0 > t {
                break;
            }
            node.handle_timeout(due);
            while let Some(f) = node.poll_transmit() {
                sent.push((due.0, f));
            }
        }
        for (id, data) in plant.status(t) {
            node.handle_frame(Millis(t), id, &data);
        }
        if meter && t.is_multiple_of(1000) {
            let bytes = plant.telegram(64_800 + (t / 1000) as u32, 400);
            node.handle_p1(Millis(t), &bytes);
        }
        while node.poll_event().is_some() {}
        t += 100;
    }
    sent
}

fn local_node() -> Node {
    Node::new(config(), LinkConfig::default(), Millis(0)).unwrap()
}

fn last_heartbeat(sent: &[(u64, TxFrame)]) -> CtrlHeartbeat {
    let f = sent
        .iter()
        .rev()
        .find(|(_, f)| f.id == raw_id(CtrlHeartbeat::MESSAGE_ID))
        .expect("a heartbeat");
    CtrlHeartbeat::try_from(f.1.payload()).unwrap()
}

#[test]
fn commands_are_sent_at_their_cycle_with_valid_e2e() {
    let mut node = local_node();
    let mut plant = Plant::new();
    assert!(
        node.poll_transmit().is_none(),
        "nothing before the first run"
    );
    let sent = run_local(&mut node, &mut plant, 0, 3000, true);
    let ids = [
        BatteryCmd::MESSAGE_ID,
        ConverterCmd::MESSAGE_ID,
        PvCmd::MESSAGE_ID,
        SwitchCmd::MESSAGE_ID,
        CtrlHeartbeat::MESSAGE_ID,
    ];
    for id in ids {
        let id = raw_id(id);
        let spec = can::spec(id).unwrap();
        let frames: Vec<_> = sent.iter().filter(|(_, f)| f.id == id).collect();
        // 0..=3000 at 100 ms.
        assert_eq!(frames.len(), 31, "{} frames", spec.name);
        let mut checker = E2eChecker::new(1);
        for (k, (_, f)) in frames.iter().enumerate() {
            assert_eq!(f.len, 8);
            let st = checker.check(spec.e2e_data_id.unwrap(), f.payload());
            assert!(
                st == E2eStatus::Ok || (k == 0 && st == E2eStatus::Initial),
                "{} frame {k}: {st:?}",
                spec.name
            );
        }
    }
    // One SocketCapCmd per socket per second.
    let caps: Vec<_> = sent
        .iter()
        .filter(|(_, f)| f.id == raw_id(SocketCapCmd::MESSAGE_ID))
        .collect();
    assert_eq!(caps.len(), 4 * 4);
    // The frames carry the latest command.
    let cmd = node.command().unwrap().clone();
    let (_, last) = sent
        .iter()
        .rev()
        .find(|(_, f)| f.id == raw_id(BatteryCmd::MESSAGE_ID))
        .unwrap();
    let b = BatteryCmd::try_from(last.payload()).unwrap();
    assert_eq!(b.battery_enabled(), cmd.battery.enabled);
    assert_eq!(
        b.battery_function_raw_val(),
        firmware::node::function_code(cmd.battery.reason.function)
    );
    let (_, last) = sent
        .iter()
        .rev()
        .find(|(_, f)| f.id == raw_id(SwitchCmd::MESSAGE_ID))
        .unwrap();
    let s = SwitchCmd::try_from(last.payload()).unwrap();
    assert_eq!(s.circuits_on(), 0b1111, "healthy: every circuit on");
    let hb = last_heartbeat(&sent);
    assert!(matches!(
        hb.ctrl_state(),
        CtrlHeartbeatCtrlState::Normal | CtrlHeartbeatCtrlState::Derated
    ));
    assert!(!hb.link_timeout() && !hb.meter_stale());
    assert_eq!(hb.sync_echo_ms(), 0);
    assert_eq!(node.stats().link_lost_episodes, 0);
    assert_eq!(node.stats().e2e_rejects(), 0);
    assert_eq!(
        u64::from(node.stats().frames_received),
        node.stats().frames_classified()
    );
}

#[test]
fn corrupted_repeated_and_out_of_sequence_frames_are_not_acted_on() {
    let mut node = local_node();
    let mut plant = Plant::new();
    run_local(&mut node, &mut plant, 0, 2000, true);
    assert!(node.command().unwrap().charger.enabled);
    let id = raw_id(MainsStatus::MESSAGE_ID);
    let data_id = can::spec(id).unwrap().e2e_data_id.unwrap();
    // The last MainsStatus counter the plant used.
    let mut probe = [0u8; 8];
    plant
        .senders
        .get_mut(&(id, 0))
        .unwrap()
        .protect(data_id, &mut probe);
    let next = e2e::counter_of(&probe).unwrap(); // consumed: the node now misses one
    let cut = *MainsStatus::new(0, 0, false, 0.0, 0.0).unwrap().raw();
    // Corrupt: right counter, CRC broken.
    let mut corrupt = cut;
    e2e::protect(data_id, (next + 1) % 15, &mut corrupt);
    corrupt[0] ^= 0x55;
    // Repeated: the counter of the last accepted frame.
    let mut repeated = cut;
    e2e::protect(data_id, (next + 14) % 15, &mut repeated);
    // Out of sequence: five ahead.
    let mut jumped = cut;
    e2e::protect(data_id, (next + 5) % 15, &mut jumped);
    let before = node.stats().messages[6];
    assert_eq!(can::MESSAGES[6].name, "MainsStatus");
    for (k, f) in [corrupt, repeated, jumped].iter().enumerate() {
        node.handle_frame(Millis(2050 + k as u64), id, f);
    }
    // A wrong length on a known id.
    node.handle_frame(Millis(2060), id, &cut[..5]);
    let after = node.stats().messages[6];
    assert_eq!(after.crc_errors, before.crc_errors + 1);
    assert_eq!(after.repeated, before.repeated + 1);
    assert_eq!(after.out_of_sequence, before.out_of_sequence + 1);
    assert_eq!(after.bad_length, before.bad_length + 1);
    assert_eq!(after.accepted, before.accepted);
    // Unknown id.
    node.handle_frame(Millis(2070), 0x7FF, &[1, 2, 3]);
    assert_eq!(node.stats().unknown_id, 1);
    // Healthy frames go on (the plant's own sender resynchronises the
    // node after the jump); the mains never looked absent: no island.
    plant.senders.remove(&(id, 0));
    run_local(&mut node, &mut plant, 2100, 5000, true);
    assert!(node.command().unwrap().charger.enabled, "never islanded");
    assert!(
        node.command().unwrap().inverter.reason.function
            != firmware::decision::Function::Resilience
    );
    assert_eq!(
        u64::from(node.stats().frames_received),
        node.stats().frames_classified()
    );
}

#[test]
fn a_pack_status_deadline_miss_drives_the_safe_state_and_recovers() {
    let mut node = local_node();
    let mut plant = Plant::new();
    run_local(&mut node, &mut plant, 0, 3000, true);
    assert!(node.command().unwrap().battery.enabled);
    // The last PackStatus arrives at 3000; the DBC deadline is 350 ms.
    let deadline = u64::from(can::spec(0x100).unwrap().deadline_ms);
    assert_eq!(deadline, 350);
    plant.send_pack = false;
    let sent = run_local(&mut node, &mut plant, 3100, 3000 + deadline, true);
    assert!(!node.link_lost(), "not before the deadline");
    assert!(!last_heartbeat(&sent).link_timeout());
    // Just past it: the next timeout is at the deadline + 1 ms.
    assert_eq!(node.poll_timeout(), Some(Millis(3000 + deadline + 1)));
    node.handle_timeout(Millis(3000 + deadline + 1));
    assert!(node.link_lost());
    assert_eq!(node.stats().messages[1].deadline_misses, 1);
    assert_eq!(node.stats().link_lost_episodes, 1);
    // Protection's next update (≤ 100 ms later) holds the safe state.
    let sent = run_local(&mut node, &mut plant, 3400, 3500, true);
    assert!(node.controller().protection().has(FaultKind::StaleInput));
    let hb = last_heartbeat(&sent);
    assert!(hb.link_timeout());
    assert_eq!(hb.ctrl_state(), CtrlHeartbeatCtrlState::SafeState);
    // The next control period commands the battery off.
    let sent = run_local(&mut node, &mut plant, 3600, 4500, true);
    let (_, b) = sent.iter().rev().find(|(_, f)| f.id == 0x200).unwrap();
    let b = BatteryCmd::try_from(b.payload()).unwrap();
    assert!(!b.battery_enabled());
    assert_eq!(b.battery_function(), BatteryCmdBatteryFunction::Protection);
    // Frames again: restored, the stale fault self-clears.
    plant.send_pack = true;
    let sent = run_local(&mut node, &mut plant, 4600, 6500, true);
    assert!(!node.link_lost());
    assert!(!node.controller().protection().has(FaultKind::StaleInput));
    assert!(!last_heartbeat(&sent).link_timeout());
    assert!(node.command().unwrap().battery.enabled);
    assert_eq!(node.stats().messages[1].deadline_misses, 1, "one episode");
}

#[test]
fn a_silent_meter_is_flagged_stale_and_forgotten_not_tripped() {
    let mut node = local_node();
    let mut plant = Plant::new();
    run_local(&mut node, &mut plant, 0, 3000, true);
    assert!(!node.meter_stale());
    // No telegrams from 3000 on; deadline 5000 ms.
    let sent = run_local(&mut node, &mut plant, 3100, 8000, false);
    assert!(!node.meter_stale());
    assert!(!last_heartbeat(&sent).meter_stale());
    let sent = run_local(&mut node, &mut plant, 8100, 8200, false);
    assert!(node.meter_stale());
    assert!(last_heartbeat(&sent).meter_stale());
    assert_eq!(node.stats().meter_stale_episodes, 1);
    assert!(!node.link_lost(), "not a link fault");
    assert!(!node.controller().protection().has(FaultKind::StaleInput));
    // A telegram clears it.
    let sent = run_local(&mut node, &mut plant, 8300, 9100, true);
    assert!(!node.meter_stale());
    assert!(!last_heartbeat(&sent).meter_stale());
    assert_eq!(node.stats().p1.telegrams_ok, 5);
}

#[test]
fn in_a_power_cut_the_essential_lights_stay_on_through_the_node() {
    let mut node = local_node();
    let mut plant = Plant::new();
    run_local(&mut node, &mut plant, 0, 3000, true);
    // The cut: the plant reports it, the meter goes dark.
    plant.mains_present = false;
    let sent = run_local(&mut node, &mut plant, 3100, 15_000, false);
    assert!(node.meter_stale());
    assert!(!node.link_lost());
    let cmd = node.command().unwrap();
    assert!(!cmd.charger.enabled, "islanded");
    assert!(!cmd.inverter.export_enabled);
    let (_, s) = sent.iter().rev().find(|(_, f)| f.id == 0x210).unwrap();
    let s = SwitchCmd::try_from(s.payload()).unwrap();
    assert_eq!(s.circuits_on() & 0b11, 0b11, "essential lighting on");
    let (_, c) = sent.iter().rev().find(|(_, f)| f.id == 0x201).unwrap();
    let c = ConverterCmd::try_from(c.payload()).unwrap();
    assert!(!c.charger_enabled());
    assert_eq!(
        c.charger_function(),
        ConverterCmdChargerFunction::Resilience
    );
}

#[test]
fn bus_clock_holds_the_sync_for_the_telegram_and_echoes_it_last() {
    let link = LinkConfig {
        clock: ClockMode::Bus,
        ..LinkConfig::default()
    };
    let mut node = Node::new(config(), link, Millis(123_456)).unwrap();
    let mut plant = Plant::new();
    let mut t = 0u32;
    let step = |node: &mut Node, plant: &mut Plant, t: u32, telegram: bool| {
        for (id, data) in plant.status(u64::from(t)) {
            // `now` is ignored on the bus clock.
            node.handle_frame(Millis(999_999), id, &data);
        }
        let bytes = telegram.then(|| plant.telegram(64_800 + t / 1000, 400));
        let (id, data) = plant.time_sync(t);
        node.handle_frame(Millis(0), id, &data);
        bytes
    };
    while t <= 2000 {
        let bytes = step(&mut node, &mut plant, t, false);
        assert!(bytes.is_none());
        let burst: Vec<TxFrame> = std::iter::from_fn(|| node.poll_transmit()).collect();
        let last = burst.last().expect("a burst per sync");
        assert_eq!(last.id, 0x2f0, "heartbeat last");
        let hb = CtrlHeartbeat::try_from(last.payload()).unwrap();
        assert_eq!(hb.sync_echo_ms(), t);
        assert_eq!(
            burst.iter().filter(|f| f.id == 0x2f0).count(),
            1,
            "one heartbeat per sync"
        );
        assert_eq!(node.bus_time(), Some(Millis(u64::from(t))));
        for id in [0x200, 0x201, 0x202, 0x210] {
            assert_eq!(
                burst.iter().filter(|f| f.id == id).count(),
                1,
                "one {id:#x} per 100 ms sync"
            );
        }
        t += 100;
    }
    // A step whose telegram has not been read yet: the sync waits.
    let bytes = step(&mut node, &mut plant, t, true).unwrap();
    assert!(node.poll_transmit().is_none(), "held");
    assert_eq!(node.bus_time(), Some(Millis(2000)));
    assert_eq!(node.stats().syncs_held, 1);
    // Half the telegram is not enough.
    node.handle_p1(Millis(0), &bytes[..bytes.len() / 2]);
    assert!(node.poll_transmit().is_none());
    node.handle_p1(Millis(0), &bytes[bytes.len() / 2..]);
    let burst: Vec<TxFrame> = std::iter::from_fn(|| node.poll_transmit()).collect();
    let hb = CtrlHeartbeat::try_from(burst.last().unwrap().payload()).unwrap();
    assert_eq!(hb.sync_echo_ms(), t);
    assert!(!hb.meter_stale());
    assert_eq!(node.bus_time(), Some(Millis(u64::from(t))));
    assert_eq!(node.stats().p1.telegrams_ok, 1);
    // Commands flow, on bus time.
    assert!(burst.iter().any(|f| f.id == 0x200));
    // A long step: still at most one of each cyclic frame per sync.
    t += 1000;
    for (id, data) in plant.status(u64::from(t)) {
        node.handle_frame(Millis(0), id, &data);
    }
    let (id, data) = plant.time_sync(t);
    node.handle_frame(Millis(0), id, &data);
    let burst: Vec<TxFrame> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert_eq!(burst.iter().filter(|f| f.id == 0x200).count(), 1);
    assert_eq!(burst.iter().filter(|f| f.id == 0x211).count(), 4);
    assert_eq!(burst.last().unwrap().id, 0x2f0);
    // Bus time drives the deadlines: syncs without status frames.
    for k in 1..=4u32 {
        let (id, data) = plant.time_sync(t + 100 * k);
        node.handle_frame(Millis(0), id, &data);
    }
    assert!(node.link_lost(), "400 ms of bus time without frames");
    assert_eq!(
        u64::from(node.stats().frames_received),
        node.stats().frames_classified() + node.pending_frames() as u64
    );
}

#[test]
fn the_link_table_loads_from_the_controller_toml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/terrace.toml");
    // The shipped file has a [link] table (utc_offset_min); add to it.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[link]\n",
        "[link]\nclock = \"bus\"\nmeter_deadline_ms = 8000\n",
        1,
    );
    assert!(
        text.contains("meter_deadline_ms = 8000"),
        "terrace.toml lost its [link] table"
    );
    let cfg = firmware::config_file::parse(&path, &text).unwrap();
    let link = cfg.link.clone().unwrap();
    assert_eq!(link.clock, ClockMode::Bus);
    assert_eq!(link.meter_deadline_ms, 8000);
    assert_eq!(link.e2e_max_delta, 2);
    assert_eq!(link.utc_offset_min, 60);
    let bad = text.replace("meter_deadline_ms = 8000", "meter_deadline_ms = 0");
    let e = firmware::config_file::parse(&path, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("link.meter_deadline_ms"), "{e}");
}

#[derive(Debug, Clone)]
enum Event {
    Frame(u16, Vec<u8>),
    /// Arbitrary payload on a plant id, E2E-protected with a given
    /// counter (so it is often accepted and acted on).
    Protected(u16, [u8; 8], u8),
    P1(Vec<u8>),
    Timeout,
}

fn event() -> impl Strategy<Value = Event> {
    let ids = prop_oneof![
        Just(0x080u16),
        Just(0x100),
        Just(0x101),
        Just(0x110),
        Just(0x111),
        Just(0x120),
        Just(0x130),
        Just(0x140),
        Just(0x1f0),
        Just(0x200),
        Just(0x2f0),
        any::<u16>(),
    ];
    prop_oneof![
        4 => (ids, proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(i, d)| Event::Frame(i, d)),
        4 => (
            prop_oneof![Just(0x080u16), Just(0x100), Just(0x101), Just(0x110), Just(0x111), Just(0x120), Just(0x130), Just(0x140), Just(0x1f0)],
            proptest::array::uniform8(any::<u8>()),
            0u8..15,
        ).prop_map(|(i, d, k)| Event::Protected(i, d, k)),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Event::P1),
        1 => prop_oneof![
            Just(b"/ISK5\\2MT382-1000\r\n\r\n1-0:1.7.0(01.193*kW)\r\n!0000\r\n".to_vec()),
            Just(b"garbage/!12".to_vec()),
        ].prop_map(Event::P1),
        1 => Just(Event::Timeout),
    ]
}

proptest! {
    /// Arbitrary frames and P1 bytes never panic, and every frame ends in
    /// exactly one counter.
    #[test]
    fn arbitrary_input_never_panics_and_every_frame_is_counted(
        events in proptest::collection::vec(event(), 1..150),
        bus in any::<bool>(),
    ) {
        let link = LinkConfig {
            clock: if bus { ClockMode::Bus } else { ClockMode::Local },
            ..LinkConfig::default()
        };
        let mut node = Node::new(config(), link, Millis(0)).unwrap();
        let mut now = 0u64;
        for e in events {
            now += 37;
            match e {
                Event::Frame(id, d) => node.handle_frame(Millis(now), id, &d),
                Event::Protected(id, mut d, k) => {
                    if let Some(data_id) = can::spec(id).and_then(|s| s.e2e_data_id) {
                        e2e::protect(data_id, k, &mut d);
                    }
                    node.handle_frame(Millis(now), id, &d);
                }
                Event::P1(b) => node.handle_p1(Millis(now), &b),
                Event::Timeout => {
                    if let Some(t) = node.poll_timeout() {
                        now = now.max(t.0);
                    }
                    node.handle_timeout(Millis(now));
                }
            }
            while node.poll_transmit().is_some() {}
            while node.poll_event().is_some() {}
        }
        let s = node.stats();
        prop_assert_eq!(
            u64::from(s.frames_received),
            s.frames_classified() + node.pending_frames() as u64
        );
    }
}
