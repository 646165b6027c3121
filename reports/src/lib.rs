//! # reports — the only crate that knows output formats
//!
//! - [`csv_table`]: the CSV signal table that `maslow twin ...` commands
//!   write;
//! - [`run`]: the record of one test run (features, scenarios, steps,
//!   verdicts) that every run report is written from;
//! - [`junit`]: JUnit XML for CI test views ([`junit::to_junit_xml`],
//!   [`junit::write_junit`]);
//! - [`cucumber_json`]: Cucumber JSON for Allure and cucumber report tools
//!   ([`cucumber_json::to_cucumber_json`],
//!   [`cucumber_json::write_cucumber_json`]);
//! - [`error`]: [`ReportError`], which those writers return, and their
//!   atomic file write.
//!
//! - [`run_json`]: `run.json`, the machine-readable summary, and the
//!   comparison of two runs;
//! - [`invariants`]: the always-on invariants every scenario is judged
//!   on (no chatter, cell limits, no export without mains, the reserve,
//!   the connection point's energy balance);
//! - [`measured`]: a scenario's measured signals, events and assertions
//!   (plain data);
//! - [`scenario`]: the files of a scenario's directory (`signals.csv`,
//!   `events.csv`, `scenario.json`, `plots.html`);
//! - [`plot`]: SVG plots with `plotters`;
//! - [`html`]: the self-contained `index.html`;
//! - [`markup`]: HTML escaping, shared by the page and the plots;
//! - [`report_dir`]: the layout of a report dir and writing all of it.

pub mod clock;
pub mod csv_table;
pub mod cucumber_json;
pub mod error;
pub mod html;
pub mod invariants;
pub mod junit;
pub mod markup;
pub mod measured;
pub mod plot;
pub mod report_dir;
pub mod run;
pub mod run_json;
pub mod scenario;

pub use error::ReportError;
