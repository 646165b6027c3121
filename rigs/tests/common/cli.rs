//! What the CLI tests share: run the `maslow` binary, find repository files,
//! write inputs and read the CSVs it writes.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `maslow` binary with `args`.
pub fn maslow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maslow"))
        .args(args)
        .output()
        .expect("the maslow binary runs")
}

/// A path inside the repository.
pub fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .to_string_lossy()
        .into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to `dir/name` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A numeric CSV: its header and rows (an empty cell reads as NaN).
pub fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut r = csv::Reader::from_path(p).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.unwrap()
                .iter()
                .map(|c| {
                    if c.is_empty() {
                        f64::NAN
                    } else {
                        c.parse().unwrap()
                    }
                })
                .collect()
        })
        .collect();
    (header, rows)
}
