//! A fleet run over MQTT gives the same result as the in-process run of the
//! same seed: the per-branch CSV and the compliance report are equal byte
//! for byte. Over the embedded broker (`maslow fleet run --broker
//! embedded`), and split across processes — the `maslow fleet server` and
//! two `maslow fleet shard` processes — on a real Mosquitto, also with the
//! broker restarted in the middle of the run and with duplicated messages.
//!
//! The Mosquitto tests skip (printing why) where mosquitto is missing,
//! unless `MASLOW_REQUIRE_MOSQUITTO=1` (as in CI).

#[path = "common/mqtt.rs"]
mod mqtt_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mqtt_common::{mosquitto_binary, Mosquitto};

const FLEET: &str = "rigs/fleets/two_branches.toml";
// The whole scenario: the peak cap (20:15-21:45) is dispatched, acked and
// re-dispatched inside it.
const HOURS: &str = "3";
const COMPARED: [&str; 3] = ["branches.csv", "compliance.json", "compliance.csv"];

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .to_string_lossy()
        .into_owned()
}

fn maslow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maslow"));
    c.env_remove("MASLOW_BROKER_PASSWORD");
    c
}

fn check(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The in-process run's outputs (the reference).
fn in_process(dir: &Path) -> PathBuf {
    let out = dir.join("in-process");
    let o = maslow()
        .args(["fleet", "run", &repo(FLEET), "--hours", HOURS, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    check(&o, "maslow fleet run (in-process)");
    out
}

fn assert_same_outputs(reference: &Path, other: &Path, what: &str) {
    for f in COMPARED {
        let a = std::fs::read_to_string(reference.join(f)).unwrap();
        let b = std::fs::read_to_string(other.join(f))
            .unwrap_or_else(|e| panic!("{what}: {f} missing: {e}"));
        assert!(!a.is_empty());
        if a != b {
            let first = a
                .lines()
                .zip(b.lines())
                .enumerate()
                .find(|(_, (x, y))| x != y)
                .map(|(i, (x, y))| format!("line {}: in-process {x:?}\n{what}: {y:?}", i + 1))
                .unwrap_or_else(|| "lengths differ".into());
            panic!("{what}: {f} differs from the in-process run: {first}");
        }
    }
}

/// Waits for a child, killing it after `limit` (only to stop a hang).
fn wait(mut c: Child, limit: Duration, what: &str) -> Output {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = c.try_wait() {
            return c.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {limit:?}:\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const HANG: Duration = Duration::from_secs(600);

/// `maslow fleet run FLEET --hours H --broker embedded EXTRA… --out OUT`.
fn run_embedded(hours: &str, extra: &[&str], out: &Path) -> Output {
    maslow()
        .args(["fleet", "run", &repo(FLEET), "--hours", hours])
        .args(["--broker", "embedded"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn fleet_run_over_the_embedded_broker_equals_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(dir.path());
    let out = dir.path().join("embedded");
    let o = run_embedded(HOURS, &["--shards", "2"], &out);
    check(&o, "maslow fleet run --broker embedded");
    assert_same_outputs(&reference, &out, "over the embedded broker, 2 shards");
}

struct Distributed {
    server: Child,
    shards: Vec<Child>,
    out: PathBuf,
}

fn spawn_distributed(
    dir: &Path,
    url: &str,
    extra_server: &[&str],
    extra_shard: &[&str],
) -> Distributed {
    let out = dir.join("distributed");
    let server = maslow()
        .args([
            "fleet",
            "server",
            &repo(FLEET),
            "--hours",
            HOURS,
            "--broker",
            url,
            "--idle-timeout-s",
            "120",
            "--out",
        ])
        .arg(&out)
        .args(extra_server)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shards = (0..2).map(|i| spawn_shard(i, url, extra_shard)).collect();
    Distributed {
        server,
        shards,
        out,
    }
}

fn spawn_shard(i: usize, url: &str, extra: &[&str]) -> Child {
    maslow()
        .args([
            "fleet",
            "shard",
            &repo(FLEET),
            "--hours",
            HOURS,
            "--broker",
            url,
        ])
        .args(["--idle-timeout-s", "120", "--feeders", &i.to_string()])
        .args(["--shard-id", &format!("shard-{i}"), "--threads", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Blocks until the server's progress reaches minute 60 (stderr).
fn wait_for_minute_60(server: &mut Child) {
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("minute 60 ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(HANG).expect("the server reaches minute 60");
}

fn finish(d: Distributed) -> (PathBuf, Output) {
    for (i, s) in d.shards.into_iter().enumerate() {
        check(&wait(s, HANG, &format!("shard {i}")), &format!("shard {i}"));
    }
    let o = wait(d.server, HANG, "the server");
    check(&o, "maslow fleet server");
    (d.out, o)
}

#[test]
fn server_and_two_shard_processes_over_mosquitto_equal_in_process() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let m = Mosquitto::start(&bin, "allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(dir.path());
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let (out, o) = finish(spawn_distributed(dir.path(), &url, &[], &[]));
    assert_same_outputs(
        &reference,
        &out,
        "server + 2 shard processes over Mosquitto",
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("server:"), "{stdout}");
    eprintln!("server:\n{stdout}");
}

/// Mosquitto is restarted (SIGTERM, it keeps the sessions on disk) while
/// the paced run is in its peak-cap window; the shards also duplicate
/// a tenth of what they publish. The result is still the in-process one:
/// no message lost, none executed twice.
#[test]
fn broker_restart_and_duplicates_mid_run_change_nothing() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let mut m = Mosquitto::start(&bin, "allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(dir.path());
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    // 1800 simulated seconds per second: the 3 h take ≥ 6 s of wall time.
    let mut d = spawn_distributed(
        dir.path(),
        &url,
        &["--speed", "1800"],
        &["--transport-faults", "duplicate=0.1,seed=5"],
    );
    // Wait for the second simulated hour (the server's progress line for
    // minute 60), then ≈ 30 simulated minutes more: inside the cap window.
    wait_for_minute_60(&mut d.server);
    std::thread::sleep(Duration::from_secs(1));
    m.restart(Duration::from_millis(500));
    let (out, o) = finish(d);
    assert_same_outputs(&reference, &out, "with a broker restart and duplicates");
    let stdout = String::from_utf8_lossy(&o.stdout);
    eprintln!("server:\n{stdout}");
    let reconnects: u64 = stdout
        .split(" reconnects")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reconnect count in the server's output:\n{stdout}"));
    assert!(
        reconnects >= 1,
        "the server never lost its broker:\n{stdout}"
    );
    assert!(stdout.contains("duplicates dropped"), "{stdout}");
    let signed: u64 = stdout
        .split("messages: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(signed > 0, "the run dispatched nothing:\n{stdout}");
}

/// Messages lost by the transport cannot be hidden in lockstep: the run
/// stops with an error naming where it waited, rather than giving a
/// result that differs from the in-process one.
#[test]
fn dropped_messages_stall_the_lockstep_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lossy");
    let o = run_embedded(
        HOURS,
        &[
            "--transport-faults",
            "drop=0.05,seed=3",
            "--idle-timeout-s",
            "3",
        ],
        &out,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a lossy lockstep run succeeded:\n{stderr}"
    );
    assert!(
        stderr.contains("no message for 3 s at minute"),
        "the error does not say where the run stalled:\n{stderr}"
    );
    assert!(
        !out.join("branches.csv").exists(),
        "a stalled run wrote outputs"
    );
}

/// Real time has no barrier: the same lossy transport that stalls the
/// lockstep above only costs a real-time run the messages it lost. The
/// run ends on the wall clock and its report says what came late or never.
#[test]
fn a_realtime_run_goes_on_through_dropped_messages_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("realtime");
    let o = run_embedded(
        "1.5",
        &[
            "--shards",
            "2",
            "--speed",
            "1200",
            "--realtime",
            "--transport-faults",
            "drop=0.05,seed=3",
        ],
        &out,
    );
    check(&o, "maslow fleet run --realtime over a lossy transport");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compliance.json")).unwrap())
            .unwrap();
    assert_eq!(report["clock"], "realtime");
    assert_eq!(report["minutes"], 90);
    // About 1 in 20 of the shards' messages was dropped (about 50 a
    // minute): minutes ended with some missing, counted (P(none of the
    // 180 Done alone dropped) = 0.95^180 ≈ 1e-4).
    assert!(
        report["minutes_incomplete"].as_u64().unwrap() >= 1,
        "{report}"
    );
    // The run still served the branch: dispatches went out and were taken.
    assert!(
        report["acks"]["accepted"].as_u64().unwrap() > 100,
        "{report}"
    );
    // And no minute was lost from the per-minute file for both branches
    // together (a minute whose Done was lost still has the other shard's).
    let rows = std::fs::read_to_string(out.join("branches.csv")).unwrap();
    assert!(rows.lines().count() > 90, "{rows}");
}

/// Delayed (so reordered) and duplicated messages on every connection of
/// the run change nothing: the lockstep waits for what it expects and
/// processes it in canonical order, and repeats are dropped.
#[test]
fn delayed_and_duplicated_messages_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(dir.path());
    let out = dir.path().join("delayed");
    let o = run_embedded(
        HOURS,
        &[
            "--shards",
            "2",
            "--transport-faults",
            "delay=uniform:0ms..15ms,duplicate=0.05,seed=9",
        ],
        &out,
    );
    check(
        &o,
        "maslow fleet run --broker embedded with delays and duplicates",
    );
    assert_same_outputs(&reference, &out, "with delayed and duplicated messages");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let server_line = stdout
        .lines()
        .find(|l| l.starts_with("server:"))
        .unwrap_or_else(|| panic!("no server line:\n{stdout}"));
    assert!(
        !server_line.contains(" 0 duplicates dropped"),
        "no duplicate reached the server, the faults did nothing:\n{stdout}"
    );
}

/// Shard 1 is killed (SIGKILL) in the middle of the peak-cap window and
/// started again with the same journal: it replays what it had handled
/// (households, firmware and its replay protection come back as they
/// were), takes its persistent session back and finishes the run. The
/// result is the in-process one: no message lost, no command executed twice.
#[test]
fn a_killed_shard_restarted_with_its_journal_rejoins_and_changes_nothing() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let m = Mosquitto::start(&bin, "allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(dir.path());
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let journal = dir.path().join("shard-1.journal");
    let journal_arg = journal.to_string_lossy().into_owned();
    let with_journal = ["--journal", journal_arg.as_str()];
    let out = dir.path().join("distributed");
    let mut server = maslow()
        .args([
            "fleet",
            "server",
            &repo(FLEET),
            "--hours",
            HOURS,
            "--broker",
            &url,
        ])
        .args(["--idle-timeout-s", "120", "--speed", "1800", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shard0 = spawn_shard(0, &url, &[]);
    let mut shard1 = spawn_shard(1, &url, &with_journal);
    wait_for_minute_60(&mut server);
    std::thread::sleep(Duration::from_secs(1));
    shard1.kill().unwrap(); // SIGKILL: no goodbye, no flush
    let _ = shard1.wait();
    std::thread::sleep(Duration::from_millis(500));
    let shard1 = spawn_shard(1, &url, &with_journal);
    let o1 = wait(shard1, HANG, "the restarted shard 1");
    check(&o1, "the restarted shard 1");
    let stdout1 = String::from_utf8_lossy(&o1.stdout);
    assert!(stdout1.contains("rejoined the run"), "{stdout1}");
    check(&wait(shard0, HANG, "shard 0"), "shard 0");
    let o = wait(server, HANG, "the server");
    check(&o, "maslow fleet server");
    eprintln!(
        "restarted shard:\n{stdout1}server:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_same_outputs(&reference, &out, "with shard 1 killed and restarted");
}

/// `--broker-user` with the password from MASLOW_BROKER_PASSWORD against a
/// Mosquitto that requires it: the run works with the right password and
/// stops with an error naming what to check with a wrong one (which it
/// never prints).
#[test]
fn broker_credentials_from_the_environment() {
    let Some(bin) = mosquitto_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pwfile)
        .args(["fleet", "s3cret-pass"])
        .output()
        .expect("mosquitto_passwd runs (apt-get install mosquitto)");
    assert!(made.status.success());
    let m = Mosquitto::start(
        &bin,
        &format!("allow_anonymous false\npassword_file {}", pwfile.display()),
    );
    let reference = in_process(dir.path());
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let run = |password: &str, out: &Path| {
        maslow()
            .env("MASLOW_BROKER_PASSWORD", password)
            .args([
                "fleet",
                "run",
                &repo(FLEET),
                "--hours",
                HOURS,
                "--broker",
                &url,
            ])
            .args(["--broker-user", "fleet", "--idle-timeout-s", "60", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let out = dir.path().join("auth");
    let o = run("s3cret-pass", &out);
    check(&o, "maslow fleet run --broker URL --broker-user");
    assert_same_outputs(&reference, &out, "with broker credentials");
    let o = run("wrong", &dir.path().join("refused"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a wrong password was accepted");
    assert!(
        stderr.contains("refused") && stderr.contains("--broker-user") && !stderr.contains("wrong"),
        "{stderr}"
    );
}
