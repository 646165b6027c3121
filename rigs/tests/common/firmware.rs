//! The `maslow-firmware` board binary for tests and benches that run it as
//! a child process (software in the loop). It belongs to the `firmware`
//! package, which never depends on `rigs`, so cargo does not build it for
//! `rigs`' own targets: this builds it with the profile the caller was
//! built with, into the caller's target directory, and returns its path.
//!
//! Tests build it the way the README's `cargo test --workspace` does
//! (every test target of the workspace), so after that command this is a
//! no-op, provided the child cargo does not inherit the variables cargo
//! set for the test (see [`set_by_cargo_for_a_test`]). `cargo build -p
//! firmware --bin maslow-firmware` would select other features of the
//! shared dependencies (no dev-dependencies, one package) and rebuild 84
//! crates: four minutes of a CI run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds (if needed) and returns the `maslow-firmware` binary.
pub fn firmware_program() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile dir>/deps/<this test>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "bench",
        _ => "test",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    // Cargo gave this test its own package's variables (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, OUT_DIR, …). Some dependencies' build scripts
    // (ring's) ask to rerun when those change: passed on, they would
    // rebuild ring, rustls and everything above them, and the next
    // top-level build would rebuild it all back.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_a_test) {
            build.env_remove(&name);
        }
    }
    if profile == "test" {
        build.args(["test", "--workspace", "--no-run", "--quiet"]);
    } else {
        build.args([
            "build",
            "--quiet",
            "-p",
            "firmware",
            "--bin",
            "maslow-firmware",
        ]);
        build.args(["--profile", profile]);
    }
    let status = build
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building maslow-firmware failed");
    let program = profile_dir.join("maslow-firmware");
    assert!(program.is_file(), "{} was not built", program.display());
    program
}

/// An environment variable cargo sets for the test it runs (not one a user
/// or CI sets for cargo itself, such as `CARGO_INCREMENTAL` or
/// `CARGO_PROFILE_*`).
fn set_by_cargo_for_a_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_BIN_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
        )
}
