//! The `maslow-firmware` board binary for tests and benches that run it as
//! a child process (software in the loop). It belongs to the `firmware`
//! package, which never depends on `rigs`, so cargo does not build it for
//! `rigs`' own targets: this builds it with the profile the caller was
//! built with, into the caller's target directory, and returns its path.
//!
//! Tests build it the way the README's `cargo test --workspace` does
//! (every test target of the workspace), so after that command this is a
//! no-op. `cargo build -p firmware --bin maslow-firmware` would select
//! other features of the shared dependencies (no dev-dependencies, one
//! package) and rebuild 84 crates: four minutes of a CI run.

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
