//! rigs — maslow's wiring: rig configs, real-time pacing, and (as they land) transports, instruments and Gherkin steps.

pub mod pacing;
