//! A report dir:
//!
//! ```text
//! DIR/index.html        self-contained HTML (summary, table, plots)
//! DIR/junit.xml         JUnit XML, one test case per scenario
//! DIR/cucumber.json     Cucumber JSON
//! DIR/run.json          machine-readable summary (run_json)
//! DIR/scenarios/NAME-SEED/
//!     signals.csv       every measured signal, full rate
//!     events.csv        the scenario's events
//!     scenario.json     signals, events, assertions, key figures
//!     plots.html        its plots (inlined into index.html)
//!     can.log           CAN trace, candump -L
//!     p1.log            P1 telegrams as sent (after any garbling)
//!     decisions.csv     the controller's decision log
//!     screenshot.png    (tests) a headless browser's view of a failure
//! ```
//!
//! The run-level files are rewritten atomically after every scenario, so a
//! run killed half-way leaves a valid report of the scenarios that
//! finished; the in-flight scenario's traces are flushed periodically.

use std::path::Path;

use crate::error::ReportError;
use crate::run::RunRecord;

/// Writes (if `html`) `index.html`, then `junit.xml`, `cucumber.json` and
/// last `run.json` into `dir`, which must exist: once `run.json` lists a
/// scenario, every other file does too.
pub fn write_run_files(run: &RunRecord, dir: &Path, html: bool) -> Result<(), ReportError> {
    if html {
        crate::html::write_html(run, dir)?;
    }
    crate::junit::write_junit(run, &dir.join("junit.xml"))?;
    crate::cucumber_json::write_cucumber_json(run, &dir.join("cucumber.json"))?;
    crate::run_json::write_run_json(run, &dir.join("run.json"))
}
