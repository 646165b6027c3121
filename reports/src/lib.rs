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
//! Still to land: the self-contained HTML report with SVG plots, candump
//! traces and `run.json`.

pub mod csv_table;
pub mod cucumber_json;
pub mod error;
pub mod junit;
pub mod run;

pub use error::ReportError;
