//! The `maslow-firmware` board binary for tests and benches that run it as
//! a child process (software in the loop). It belongs to the `firmware`
//! package, which never depends on `rigs`, so cargo does not build it for
//! `rigs`' own targets: this builds it (a no-op when it is up to date, as
//! after `cargo test --workspace`) with the profile the caller was built
//! with, into the caller's target directory, and returns its path.

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
    let status = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "build",
            "--quiet",
            "-p",
            "firmware",
            "--bin",
            "maslow-firmware",
        ])
        .args(["--profile", profile, "--target-dir"])
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building maslow-firmware failed");
    let program = profile_dir.join("maslow-firmware");
    assert!(program.is_file(), "{} was not built", program.display());
    program
}
