//! The fixed run both report formats are tested on: two features; a
//! passing scenario, a failing one (a failed step then a skipped one), a
//! skipped one, one with an undefined step, one that passed on its retry
//! (flaky) and one that failed after two retries. The failure message has
//! XML's special characters and non-ASCII units in it.

use reports::run::{FeatureRecord, RunRecord, ScenarioRecord, StepRecord, StepStatus};

pub const TEMPERATURE_ERROR: &str =
    r#"expected pack temperature < 45 °C & "stable", measured 47.2 °C after 120 µs"#;

fn step(keyword: &str, text: &str, line: u32, status: StepStatus, duration_s: f64) -> StepRecord {
    StepRecord {
        keyword: keyword.into(),
        text: text.into(),
        line,
        status,
        duration_s,
        error: None,
    }
}

fn scenario(
    name: &str,
    line: u32,
    tags: &[&str],
    seed: u64,
    steps: Vec<StepRecord>,
) -> ScenarioRecord {
    ScenarioRecord {
        name: name.into(),
        line,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        seed,
        duration_s: steps.iter().map(|s| s.duration_s).sum(),
        steps,
        retries: 0,
        output: String::new(),
        dir: String::new(),
        figures: Default::default(),
    }
}

pub fn run() -> RunRecord {
    use StepStatus::*;

    let mut standby = scenario(
        "Standby current stays low",
        5,
        &["battery", "smoke"],
        101,
        vec![
            step("Given ", "the pack is charged to 80 %", 6, Passed, 0.125),
            step("When ", "the vehicle rests for 2 h", 7, Passed, 0.3),
            step(
                "Then ",
                "the standby current is below 20 mA",
                8,
                Passed,
                0.0005,
            ),
        ],
    );
    standby.output = "rig sim\nstandby current 12.5 mA".into();

    let mut hot = scenario(
        "Pack temperature limit",
        11,
        &["battery"],
        102,
        vec![
            step("Given ", "the ambient is 40 °C", 12, Passed, 0.01),
            step(
                "When ",
                "the pack discharges at 2 C for 10 min",
                13,
                Passed,
                1.5,
            ),
            step(
                "Then ",
                "the pack temperature stays below 45 °C",
                14,
                Failed,
                0.02,
            ),
            step("And ", "the fan is off", 15, Skipped, 0.0),
        ],
    );
    hot.steps[2].error = Some(TEMPERATURE_ERROR.into());
    hot.output = "max temperature 47.2 °C at t = 583.1 s".into();

    let balancing = scenario(
        "Cell balancing",
        18,
        &["battery", "wip"],
        103,
        vec![
            step("Given ", "cells at 3.60 V and 3.70 V", 19, Skipped, 0.0),
            step("Then ", "they balance within 1 h", 20, Skipped, 0.0),
        ],
    );

    let heartbeat = scenario(
        "Heartbeat frames",
        3,
        &[],
        201,
        vec![
            step("Given ", "the link is up", 4, Passed, 0.002),
            step("When ", "the controller sleeps", 5, Undefined, 0.0),
            step("Then ", "heartbeats stop within 100 ms", 6, Skipped, 0.0),
        ],
    );

    let mut bus_off = scenario(
        "Bus-off recovery",
        9,
        &["flaky"],
        202,
        vec![
            step("Given ", "the bus is off", 10, Passed, 0.05),
            step(
                "Then ",
                "the node recovers within 128 frames",
                11,
                Passed,
                0.25,
            ),
        ],
    );
    bus_off.retries = 1;

    let mut error_frames = scenario(
        "Error frames are counted",
        14,
        &[],
        203,
        vec![
            step("When ", "3 error frames are injected", 15, Passed, 0.004),
            step("Then ", "the error counter is 3", 16, Failed, 0.001),
        ],
    );
    error_frames.steps[1].error = Some("expected 3 error frames, counted 2".into());
    error_frames.retries = 2;

    RunRecord {
        rig: "sim".into(),
        mode: "lockstep".into(),
        seed: 42,
        started_unix_s: 1_795_694_400.5,
        duration_s: 12.75,
        features: vec![
            FeatureRecord {
                name: "Battery standby".into(),
                description: "  The pack rests between drives.\n  It must not drain.".into(),
                uri: "features/battery_standby.feature".into(),
                line: 2,
                tags: vec!["battery".into()],
                scenarios: vec![standby, hot, balancing],
            },
            FeatureRecord {
                name: "CAN link".into(),
                description: String::new(),
                uri: "features/can_link.feature".into(),
                line: 1,
                tags: vec![],
                scenarios: vec![heartbeat, bus_off, error_frames],
            },
        ],
        commit: "v0.1.0-42-gabcdef0".into(),
        version: "0.1.0".into(),
        sabotage: None,
    }
}
