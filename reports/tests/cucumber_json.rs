//! Cucumber JSON of a fixed run: a snapshot of the whole document, then the
//! document read back, into the typed structs and as plain JSON, and
//! checked against the record.

mod common;

use reports::cucumber_json::{to_cucumber_json, to_features, write_cucumber_json, Feature};
use reports::run::StepStatus;
use reports::ReportError;
use serde_json::Value;

#[test]
fn cucumber_json_snapshot() {
    let json = to_cucumber_json(&common::run()).unwrap();
    insta::assert_snapshot!("cucumber_json", json);
}

#[test]
fn cucumber_json_round_trips_into_the_typed_structs() {
    let run = common::run();
    let json = to_cucumber_json(&run).unwrap();
    let back: Vec<Feature> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, to_features(&run).unwrap());
    // And writing what was read gives the same text.
    let mut again = serde_json::to_string_pretty(&back).unwrap();
    again.push('\n');
    assert_eq!(again, json);
}

#[test]
fn cucumber_json_as_plain_json_matches_the_record() {
    let run = common::run();
    let json: Value = serde_json::from_str(&to_cucumber_json(&run).unwrap()).unwrap();
    let features = json.as_array().unwrap();
    assert_eq!(features.len(), run.features.len());
    for (f, fr) in features.iter().zip(&run.features) {
        assert_eq!(f["keyword"], "Feature");
        assert_eq!(f["name"], fr.name.as_str());
        assert_eq!(f["uri"], fr.uri.as_str());
        assert_eq!(f["line"], fr.line);
        assert_eq!(f["description"], fr.description.as_str());
        let tags: Vec<&str> = f["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = fr.tags.iter().map(|t| format!("@{t}")).collect();
        assert_eq!(tags, want);
        let elements = f["elements"].as_array().unwrap();
        assert_eq!(elements.len(), fr.scenarios.len());
        for (e, sr) in elements.iter().zip(&fr.scenarios) {
            assert_eq!(e["keyword"], "Scenario");
            assert_eq!(e["type"], "scenario");
            assert_eq!(e["name"], sr.name.as_str());
            assert_eq!(e["line"], sr.line);
            assert_eq!(e["description"], format!("seed {}", sr.seed));
            assert_eq!(e["tags"].as_array().unwrap().len(), sr.tags.len());
            let steps = e["steps"].as_array().unwrap();
            assert_eq!(steps.len(), sr.steps.len());
            for (s, st) in steps.iter().zip(&sr.steps) {
                assert_eq!(s["keyword"], st.keyword.as_str());
                assert_eq!(s["name"], st.text.as_str());
                assert_eq!(s["line"], st.line);
                let result = &s["result"];
                let status = match st.status {
                    StepStatus::Passed => "passed",
                    StepStatus::Failed => "failed",
                    StepStatus::Skipped => "skipped",
                    StepStatus::Undefined => "undefined",
                };
                assert_eq!(result["status"], status);
                // Whole nanoseconds, as an integer.
                let ns = result["duration"].as_u64().unwrap();
                assert_eq!(ns, (st.duration_s * 1e9).round() as u64);
                match st.status {
                    StepStatus::Failed => {
                        assert_eq!(result["error_message"], st.error.as_deref().unwrap())
                    }
                    _ => assert!(result.get("error_message").is_none(), "{result}"),
                }
                match st.status {
                    StepStatus::Undefined => assert!(s.get("match").is_none()),
                    _ => assert_eq!(s["match"]["location"], format!("{}:{}", fr.uri, st.line)),
                }
            }
            // What the scenario printed rides on its last step.
            let output: Vec<&str> = steps
                .last()
                .and_then(|s| s.get("output"))
                .map(|o| {
                    o.as_array()
                        .unwrap()
                        .iter()
                        .map(|l| l.as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(output, sr.output.lines().collect::<Vec<_>>());
        }
    }

    // Spot checks on the fixture's particular cases.
    let hot = &features[0]["elements"][1];
    assert_eq!(hot["id"], "battery-standby;pack-temperature-limit");
    assert_eq!(
        hot["steps"][2]["result"]["error_message"],
        common::TEMPERATURE_ERROR
    );
    assert_eq!(hot["steps"][1]["result"]["duration"], 1_500_000_000u64);
    assert_eq!(hot["steps"][3]["result"]["status"], "skipped");
    let standby = &features[0]["elements"][0];
    let tag_names: Vec<&str> = standby["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tag_names, ["@battery", "@smoke"]);
    assert_eq!(standby["steps"][1]["result"]["duration"], 300_000_000u64);
    assert_eq!(features[1]["id"], "can-link");
    assert_eq!(features[1]["elements"][1]["description"], "seed 202");
}

#[test]
fn repeated_scenario_names_get_distinct_ids() {
    let mut run = common::run();
    let again = run.features[1].scenarios[0].clone();
    run.features[1].scenarios.push(again.clone());
    run.features[1].scenarios.push(again);
    let features = to_features(&run).unwrap();
    let ids: Vec<&str> = features[1].elements.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "can-link;heartbeat-frames",
            "can-link;bus-off-recovery",
            "can-link;error-frames-are-counted",
            "can-link;heartbeat-frames;;2",
            "can-link;heartbeat-frames;;3",
        ]
    );
}

#[test]
fn write_cucumber_json_is_atomic_and_names_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cucumber.json");
    write_cucumber_json(&common::run(), &path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let back: Vec<Feature> = serde_json::from_str(&written).unwrap();
    assert_eq!(back.len(), 2);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cucumber.json"]);

    let missing = dir.path().join("no-such-dir").join("cucumber.json");
    let err = write_cucumber_json(&common::run(), &missing).unwrap_err();
    assert!(
        matches!(&err, ReportError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn a_negative_step_duration_is_an_error_naming_the_step() {
    let mut run = common::run();
    run.features[0].scenarios[1].steps[0].duration_s = -1.0;
    let err = to_cucumber_json(&run).unwrap_err();
    assert!(matches!(err, ReportError::BadTime { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("Given the ambient is 40 °C"), "{msg}");
    assert!(msg.contains("Pack temperature limit"), "{msg}");
}
