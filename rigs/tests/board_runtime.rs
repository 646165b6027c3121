//! The `maslow-firmware` board binary against the twin plant, with the OS
//! clock (not lockstep), on a pseudo-terminal SLCAN adapter: E2E-protected
//! commands and heartbeats while the plant talks, a link timeout within a
//! second of it falling silent, and a clean stop on SIGTERM.

#[path = "common/firmware.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firmware::wire::can::messages::CtrlHeartbeatCtrlState;
use firmware::wire::e2e::E2eChecker;
use links::{CanBus, CanFrame, Pty, SlcanBus};
use rigs::rig::plant::PlantSide;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// The board binary on an emulated SLCAN adapter, killed if the test ends
/// before it stops.
struct Board {
    child: Child,
}

impl Board {
    /// Starts `maslow-firmware` with the terrace configuration and the OS
    /// clock on a pty pair; returns it and the adapter's side of the pair.
    fn start(stderr: &Path) -> (Board, SlcanBus) {
        let pty = Pty::open().expect("a pty pair");
        let device = format!("slcan:{}", pty.slave_path());
        let adapter = SlcanBus::adapter_on_pty(pty).expect("the adapter side");
        let config = repo("firmware/config/terrace.toml");
        let child = Command::new(common::firmware_program())
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&config)
            .args(["--can", &device, "--clock", "os", "--log-format", "text"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("maslow-firmware starts");
        (Board { child }, adapter)
    }

    /// SIGTERM, then its exit code once it stopped (`None`: still running
    /// after `within`).
    fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frames from the controller, counted per identifier, E2E-checked in
/// sequence per message.
#[derive(Default)]
struct Seen {
    checkers: std::collections::BTreeMap<u32, E2eChecker>,
    counts: std::collections::BTreeMap<u32, u32>,
}

impl Seen {
    fn check(&mut self, f: &CanFrame) {
        let id = f.id().raw();
        *self.counts.entry(id).or_default() += 1;
        let spec = firmware::wire::can::spec(id as u16)
            .unwrap_or_else(|| panic!("a contract message: {id:#x}"));
        if let Some(data_id) = spec.e2e_data_id {
            let s = self
                .checkers
                .entry(id)
                .or_insert_with(|| E2eChecker::new(1))
                .check(data_id, f.data());
            assert!(s.is_valid(), "{} {:?}: {s:?}", spec.name, f.data());
        }
    }
}

const BATTERY_CMD: u32 = 0x200;
const CTRL_HEARTBEAT: u32 = 0x2F0;

#[tokio::test]
async fn with_the_os_clock_it_commands_times_out_a_silent_plant_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr");
    let (mut board, mut adapter) = Board::start(&log);
    tokio::time::timeout(Duration::from_secs(5), adapter.wait_until_open())
        .await
        .expect("the firmware opens its CAN channel within 5 s")
        .expect("the adapter serves the channel");

    let mut plant = PlantSide::new(&repo("twin/params/house/terrace.toml"), 100, None, 1.0)
        .expect("the twin house");
    let mut seen = Seen::default();
    // 1.5 s of plant status frames every 100 ms, as a plant would send.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let fed_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < fed_until {
        tick.tick().await;
        plant.step();
        for f in std::mem::take(&mut plant.outbox) {
            adapter.send(&f).await.expect("send");
        }
        plant.p1_outbox.clear();
        adapter.flush().await.expect("flush");
        let mut got = Vec::new();
        while let Ok(r) = tokio::time::timeout(Duration::from_millis(5), adapter.recv()).await {
            got.push(r.expect("recv"));
        }
        got.iter().for_each(|f| seen.check(f));
        plant.receive(&got);
    }
    let fed = plant
        .link
        .controller_status()
        .expect("heartbeats while fed");
    assert!(!fed.link_timeout, "{fed:?}");
    for id in [BATTERY_CMD, CTRL_HEARTBEAT] {
        let n = seen.counts.get(&id).copied().unwrap_or(0);
        assert!(
            n >= 8,
            "{id:#x}: {n} frames in 1.5 s at 100 ms ({:?})",
            seen.counts
        );
    }
    let rejects = &plant.link.stats().rejects;
    assert_eq!(
        rejects.wrong_crc + rejects.repeated + rejects.wrong_sequence,
        0
    );

    // Silence: the 350 ms deadlines pass, the heartbeat says so.
    let silent_from = Instant::now();
    let timed_out = loop {
        let left = Duration::from_secs(1).saturating_sub(silent_from.elapsed());
        let f = match tokio::time::timeout(left, adapter.recv()).await {
            Ok(f) => f.expect("recv"),
            Err(_) => panic!(
                "no link timeout within 1 s of silence: {:?}",
                plant.link.controller_status()
            ),
        };
        seen.check(&f);
        plant.receive(std::slice::from_ref(&f));
        let s = plant.link.controller_status().expect("heartbeats");
        if s.link_timeout && s.state == CtrlHeartbeatCtrlState::SafeState {
            break silent_from.elapsed();
        }
    };
    assert!(timed_out >= Duration::from_millis(300), "{timed_out:?}");

    // SIGTERM: a clean stop within 5 s, saying so.
    let code = board.terminate(Duration::from_secs(5));
    let err = std::fs::read_to_string(&log).expect("stderr");
    assert_eq!(code, Some(0), "stops within 5 s with exit 0: {err}");
    assert!(err.contains("SIGTERM: stopping"), "{err}");
    assert!(err.contains("maslow-firmware stopped"), "{err}");
    assert!(!err.contains("ERROR"), "{err}");
}
