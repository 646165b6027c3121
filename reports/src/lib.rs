//! # reports — the only crate that knows output formats
//!
//! Today: the CSV signal table that `maslow twin ...` commands write
//! ([`csv_table`]). As later issues land: JUnit XML, Cucumber JSON, the
//! self-contained HTML report with SVG plots, candump traces and run records.

pub mod csv_table;
pub mod run;
