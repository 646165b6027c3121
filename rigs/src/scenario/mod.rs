//! Gherkin scenarios in the loop: the World ([`world`]), the configuration
//! `Given` steps build ([`setup`]), the step library ([`steps`]) and the
//! runner that writes the reports ([`harness`]). Feature files live in
//! `features/`; the glossary of steps is `features/README.md`.

pub mod harness;
pub mod matrix;
pub mod setup;
pub mod steps;
pub mod world;

pub use harness::{
    run_features, HarnessError, TestOptions, TestOutcome, DEFAULT_TRACE_LIMIT_BYTES,
};
pub use world::MaslowWorld;
