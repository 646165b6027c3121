//! The `maslow-firmware` binary: refused configs, ports and arguments
//! (exit 2 naming them). Its run against the twin plant with the OS clock
//! is `rigs/tests/board_runtime.rs` (the plant lives in `rigs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use links::{Pty, SlcanBus};

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
