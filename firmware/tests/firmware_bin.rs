//! The `maslow-firmware` binary: refused configs, ports and arguments
//! (exit 2 naming them), and a run with the OS clock on a pseudo-terminal
//! SLCAN adapter: E2E-protected commands and heartbeats while the plant
//! talks, a link timeout within a second of it falling silent, and a clean
//! stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use firmware::wire::can::messages::CtrlHeartbeatCtrlState;
use firmware::wire::e2e::E2eChecker;
use rigs::can::{CanBus, CanFrame, Pty, SlcanBus};
use rigs::rig::plant::PlantSide;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn config() -> String {
    repo("firmware/config/terrace.toml")
        .to_string_lossy()
        .into_owned()
}

fn firmware() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maslow-firmware"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    firmware()
        .args(args)
        .output()
        .expect("maslow-firmware runs")
}

/// Exit 2, no panic, and the last stderr line (the error) contains every
/// one of `names`.
fn refused(o: &Output, names: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    for n in names {
        assert!(last.contains(n), "{n:?} in {last:?}");
    }
}

#[test]
fn a_missing_or_invalid_config_is_refused_with_exit_2_naming_it() {
    let o = run(&["--config", "/nowhere/ctrl.toml", "--can", "slcan:/dev/null"]);
    refused(&o, &["/nowhere/ctrl.toml"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(config()).expect("terrace config");
    assert!(text.contains("floor_soc = 0.05"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("floor_soc = 0.05", "floor_soc = 2.0"))
        .expect("writing the config");
    let o = run(&[
        "--config",
        bad.to_str().expect("utf-8"),
        "--can",
        "slcan:/dev/null",
    ]);
    refused(&o, &["floor_soc"]);
}

#[test]
fn unusable_can_links_are_refused_with_exit_2_naming_them() {
    let cfg = config();
    refused(&run(&["--config", &cfg, "--can", "bogus"]), &["bogus"]);
    refused(
        &run(&["--config", &cfg, "--can", "carrier-pigeon:coop"]),
        &["carrier-pigeon"],
    );
    refused(
        &run(&["--config", &cfg, "--can", "slcan:/dev/does-not-exist"]),
        &["/dev/does-not-exist"],
    );
}

/// An SLCAN adapter emulated on a pty, and the firmware started on it.
fn start_on_pty(extra: &[&str], stderr: &Path) -> (Child, SlcanBus) {
    let pty = Pty::open().expect("a pty pair");
    let device = format!("slcan:{}", pty.slave_path());
    let adapter = SlcanBus::adapter_on_pty(pty).expect("the adapter side");
    let child = firmware()
        .args(["--config", &config(), "--can", &device, "--clock", "os"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("maslow-firmware starts");
    (child, adapter)
}

/// Waits for the child to exit, at most `within`.
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn a_missing_p1_port_is_refused_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr");
    let (mut child, mut adapter) = start_on_pty(&["--p1", "/dev/does-not-exist"], &log);
    // Serve the adapter so that only the P1 port can fail.
    let _ = tokio::time::timeout(Duration::from_secs(5), adapter.wait_until_open()).await;
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("exits");
    let err = std::fs::read_to_string(&log).expect("stderr");
    assert_eq!(status.code(), Some(2), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("--p1 /dev/does-not-exist"),
        "{err}"
    );
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
    let (mut child, mut adapter) = start_on_pty(&["--log-format", "text"], &log);
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
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("stops within 5 s");
    let err = std::fs::read_to_string(&log).expect("stderr");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("SIGTERM: stopping"), "{err}");
    assert!(err.contains("maslow-firmware stopped"), "{err}");
    assert!(!err.contains("ERROR"), "{err}");
}
