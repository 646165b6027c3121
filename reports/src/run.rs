//! The record of one test run: features, scenarios, steps and their
//! verdicts, as the harness saw them. Every report format (JUnit XML,
//! Cucumber JSON, later HTML and `run.json`) is written from this one
//! record, so they cannot disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Not run because an earlier step failed or the scenario was skipped.
    Skipped,
    /// No step definition matches the text.
    Undefined,
}

/// How a scenario ended, derived from its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioStatus {
    Passed,
    Failed,
    Skipped,
}

/// One step as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The Gherkin keyword as written, with its trailing space ("Given ").
    pub keyword: String,
    pub text: String,
    /// 1-based line in the feature file.
    pub line: u32,
    pub status: StepStatus,
    pub duration_s: f64,
    /// Why it failed (expected, measured, when), if it did.
    pub error: Option<String>,
}

/// One scenario (one example row of an outline counts as one scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub name: String,
    pub line: u32,
    /// Tags without the `@`, the feature's and rule's included.
    pub tags: Vec<String>,
    /// The seed that reproduces it (`maslow test --seed N`).
    pub seed: u64,
    pub duration_s: f64,
    pub steps: Vec<StepRecord>,
    /// Attempts before this one that failed (0: passed or failed first time).
    pub retries: u32,
    /// What the scenario printed (seed, rig, figures), for system-out.
    pub output: String,
    /// Its directory (signals, traces, decision log), relative to the
    /// report dir, with `/` separators; empty if it has none.
    #[serde(default)]
    pub dir: String,
    /// Key figures (`soc_min_pct`, `grid_import_kwh`, ...), compared
    /// between runs by `maslow report --compare`.
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

impl ScenarioRecord {
    /// Failed if any step failed or is undefined; skipped if every step was
    /// skipped (or there are none); passed otherwise.
    pub fn status(&self) -> ScenarioStatus {
        if self
            .steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Failed | StepStatus::Undefined))
        {
            ScenarioStatus::Failed
        } else if self.steps.iter().all(|s| s.status == StepStatus::Skipped) {
            ScenarioStatus::Skipped
        } else {
            ScenarioStatus::Passed
        }
    }

    /// The first failure's message, if any.
    pub fn failure(&self) -> Option<&str> {
        self.steps.iter().find_map(|s| match s.status {
            StepStatus::Failed => Some(s.error.as_deref().unwrap_or("step failed")),
            StepStatus::Undefined => Some("a step has no definition"),
            _ => None,
        })
    }
}

/// One feature file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRecord {
    pub name: String,
    pub description: String,
    /// Path of the `.feature` file as given to the run.
    pub uri: String,
    pub line: u32,
    pub tags: Vec<String>,
    pub scenarios: Vec<ScenarioRecord>,
}

/// One run of `maslow test` (or the `features` test target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The rig's name (`sim`, `sil`, a bench).
    pub rig: String,
    /// `lockstep` or `realtime`.
    pub mode: String,
    /// The run's base seed; each scenario's own is in its record.
    pub seed: u64,
    /// UTC start, Unix seconds.
    pub started_unix_s: f64,
    pub duration_s: f64,
    pub features: Vec<FeatureRecord>,
    /// The commit the run was built from (`git describe`), if known.
    #[serde(default)]
    pub commit: String,
    /// maslow's version.
    #[serde(default)]
    pub version: String,
    /// The saboteur the rig inserted between controller and plant, if any:
    /// this run judged a deliberately broken controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sabotage: Option<String>,
}

/// Scenario counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl RunRecord {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in self.features.iter().flat_map(|f| &f.scenarios) {
            match s.status() {
                ScenarioStatus::Passed => c.passed += 1,
                ScenarioStatus::Failed => c.failed += 1,
                ScenarioStatus::Skipped => c.skipped += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: StepStatus) -> StepRecord {
        StepRecord {
            keyword: "Then ".into(),
            text: "x".into(),
            line: 3,
            status,
            duration_s: 0.0,
            error: None,
        }
    }

    fn scenario(steps: Vec<StepRecord>) -> ScenarioRecord {
        ScenarioRecord {
            name: "s".into(),
            line: 2,
            tags: vec![],
            seed: 1,
            duration_s: 0.0,
            steps,
            retries: 0,
            output: String::new(),
            dir: String::new(),
            figures: BTreeMap::new(),
        }
    }

    #[test]
    fn scenario_status_follows_its_steps() {
        use StepStatus::*;
        assert_eq!(
            scenario(vec![step(Passed)]).status(),
            ScenarioStatus::Passed
        );
        assert_eq!(
            scenario(vec![step(Passed), step(Failed), step(Skipped)]).status(),
            ScenarioStatus::Failed
        );
        assert_eq!(
            scenario(vec![step(Undefined)]).status(),
            ScenarioStatus::Failed
        );
        assert_eq!(
            scenario(vec![step(Skipped)]).status(),
            ScenarioStatus::Skipped
        );
        assert_eq!(scenario(vec![]).status(), ScenarioStatus::Skipped);
        assert_eq!(
            scenario(vec![step(Passed), step(Failed)]).failure(),
            Some("step failed")
        );
    }
}
