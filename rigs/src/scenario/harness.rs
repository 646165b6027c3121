//! Running feature files: the cucumber runner with maslow's World, a
//! writer that prints one line per scenario (with its seed) under a
//! progress bar and keeps the [`RunRecord`], and the report dir written
//! from it (`reports::report_dir`): `junit.xml`, `cucumber.json` and
//! `run.json` after every scenario, `index.html` after a scenario at most
//! every 30 s and at the end, so a run killed half-way leaves valid
//! reports of the scenarios that finished.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cucumber::event::{self, Cucumber as Ev, Feature as FeatureEv, Rule as RuleEv};
use cucumber::gherkin;
use cucumber::{cli, parser, Event, World as _, Writer};
use futures::FutureExt;
use reports::run::{FeatureRecord, RunRecord, ScenarioRecord, StepRecord, StepStatus};

use crate::rig::{Rig, TimeMode};
use crate::scenario::world::{install_settings, scenario_seed, MaslowWorld, Settings};

/// What to run.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Feature files or directories.
    pub paths: Vec<PathBuf>,
    pub rig: PathBuf,
    /// Cucumber tag expression (`@sim and not @slow`).
    pub tags: Option<String>,
    /// Only scenarios whose name matches.
    pub name: Option<String>,
    pub seed: Option<u64>,
    pub report_dir: PathBuf,
    /// Probe capture rate, Hz, instead of the rig file's.
    pub probe_rate_hz: Option<f64>,
    /// Print one line per scenario (and a progress bar on a terminal).
    pub progress: bool,
    /// Size cap of each trace file of a scenario (CAN trace, P1
    /// telegrams, decision log), bytes.
    pub trace_limit_bytes: u64,
    /// A saboteur instead of the rig file's `[sabotage]` (if any).
    pub sabotage: Option<crate::sabotage::Saboteur>,
}

/// The default [`TestOptions::trace_limit_bytes`]: 16 MiB, about 370 k CAN
/// frames (the first ~45 min of the sim rig's bus, which carries ~21 MB of
/// candump text an hour) or ~11 h of P1 telegrams. A day of everything
/// would be ~500 MB a scenario. Past the limit a trace keeps the windows
/// around the scenario's events (`Session::mark_event`).
pub const DEFAULT_TRACE_LIMIT_BYTES: u64 = 16 << 20;

/// Why features could not run at all (scenario failures are in the record).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Rig(#[from] crate::rig::RigFileError),
    #[error("--tags `{expr}`: {message}")]
    Tags { expr: String, message: String },
    #[error("--name `{expr}`: {message}")]
    Name { expr: String, message: String },
    #[error("{path}: {message}")]
    Path { path: String, message: String },
    #[error(transparent)]
    Report(#[from] reports::ReportError),
}

/// How a run went.
#[derive(Debug)]
pub struct TestOutcome {
    pub record: RunRecord,
    /// Feature files that did not parse, with the parser's message.
    pub parse_errors: Vec<String>,
    pub junit: PathBuf,
    pub cucumber_json: PathBuf,
    /// The HTML report.
    pub html: PathBuf,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        let c = self.record.counts();
        c.failed == 0 && self.parse_errors.is_empty() && c.passed > 0
    }
}

struct Recorder {
    run: RunRecord,
    parse_errors: Vec<String>,
    /// (feature uri, scenario line) → (feature index, scenario index).
    index: BTreeMap<(String, u32), (usize, usize)>,
    started: BTreeMap<(String, u32), Instant>,
    step_started: BTreeMap<(String, u32, u32), Instant>,
    seed: Option<u64>,
    run_started: Instant,
    report_dir: PathBuf,
    progress: bool,
    write_error: Option<String>,
    bar: Option<indicatif::ProgressBar>,
    /// When `index.html` was last written.
    html_written: Option<Instant>,
}

/// `index.html` is rewritten after a scenario at most this often (it
/// inlines every scenario's plots); always at the end of the run.
const HTML_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn uri_of(f: &gherkin::Feature) -> String {
    f.path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| f.name.clone())
}

fn tags_of(tags: &[String]) -> Vec<String> {
    tags.iter()
        .map(|t| t.trim_start_matches('@').to_owned())
        .collect()
}

impl Recorder {
    fn feature_index(&mut self, f: &gherkin::Feature) -> usize {
        let uri = uri_of(f);
        if let Some(i) = self.run.features.iter().position(|x| x.uri == uri) {
            return i;
        }
        self.run.features.push(FeatureRecord {
            name: f.name.clone(),
            description: f.description.clone().unwrap_or_default(),
            uri,
            line: f.position.line as u32,
            tags: tags_of(&f.tags),
            scenarios: Vec::new(),
        });
        self.run.features.len() - 1
    }

    fn scenario_event(
        &mut self,
        f: &gherkin::Feature,
        rule: Option<&gherkin::Rule>,
        sc: &gherkin::Scenario,
        ev: event::Scenario<MaslowWorld>,
    ) {
        let uri = uri_of(f);
        let key = (uri.clone(), sc.position.line as u32);
        match ev {
            event::Scenario::Started => {
                let fi = self.feature_index(f);
                let mut tags = tags_of(&f.tags);
                if let Some(r) = rule {
                    tags.extend(tags_of(&r.tags));
                }
                tags.extend(tags_of(&sc.tags));
                let mut steps = Vec::new();
                let bg = rule
                    .and_then(|r| r.background.as_ref())
                    .into_iter()
                    .chain(f.background.as_ref());
                for b in bg {
                    for s in &b.steps {
                        steps.push(step_record(s));
                    }
                }
                for s in &sc.steps {
                    steps.push(step_record(s));
                }
                let seed = scenario_seed(self.seed, &uri, &sc.name);
                self.run.features[fi].scenarios.push(ScenarioRecord {
                    name: sc.name.clone(),
                    line: sc.position.line as u32,
                    tags,
                    seed,
                    duration_s: 0.0,
                    steps,
                    retries: 0,
                    output: format!("seed {seed}"),
                    dir: format!(
                        "scenarios/{}-{seed}",
                        crate::scenario::world::slug(&sc.name)
                    ),
                    figures: Default::default(),
                });
                let si = self.run.features[fi].scenarios.len() - 1;
                self.index.insert(key.clone(), (fi, si));
                self.started.insert(key, Instant::now());
            }
            event::Scenario::Step(st, ev) | event::Scenario::Background(st, ev) => {
                let line = st.position.line as u32;
                let skey = (uri.clone(), key.1, line);
                let Some(&(fi, si)) = self.index.get(&key) else {
                    return;
                };
                let record = &mut self.run.features[fi].scenarios[si];
                let Some(step) = record.steps.iter_mut().find(|s| s.line == line) else {
                    return;
                };
                match ev {
                    event::Step::Started => {
                        self.step_started.insert(skey, Instant::now());
                    }
                    event::Step::Passed(..) => {
                        step.status = StepStatus::Passed;
                        step.duration_s = self
                            .step_started
                            .remove(&skey)
                            .map_or(0.0, |t| t.elapsed().as_secs_f64());
                    }
                    event::Step::Skipped => {
                        // cucumber's "skipped": no step definition matched.
                        step.status = StepStatus::Undefined;
                        step.error = Some(format!(
                            "no step definition matches `{}` (features/README.md lists the steps)",
                            step.text
                        ));
                    }
                    event::Step::Failed(_, _, _, err) => {
                        step.status = StepStatus::Failed;
                        step.duration_s = self
                            .step_started
                            .remove(&skey)
                            .map_or(0.0, |t| t.elapsed().as_secs_f64());
                        step.error = Some(step_error_text(&err));
                    }
                }
            }
            event::Scenario::Hook(kind, event::Hook::Failed(_, info)) => {
                if let Some(&(fi, si)) = self.index.get(&key) {
                    let record = &mut self.run.features[fi].scenarios[si];
                    record.steps.insert(
                        0,
                        StepRecord {
                            keyword: format!("{kind:?} hook "),
                            text: String::new(),
                            line: record.line,
                            status: StepStatus::Failed,
                            duration_s: 0.0,
                            error: Some(panic_text(&info)),
                        },
                    );
                }
            }
            event::Scenario::Log(line) => {
                if let Some(&(fi, si)) = self.index.get(&key) {
                    let o = &mut self.run.features[fi].scenarios[si].output;
                    o.push('\n');
                    o.push_str(&line);
                }
            }
            event::Scenario::Finished => {
                let Some(&(fi, si)) = self.index.get(&key) else {
                    return;
                };
                let d = self
                    .started
                    .remove(&key)
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                let record = &mut self.run.features[fi].scenarios[si];
                record.duration_s = d;
                if let Ok(summary) =
                    reports::scenario::read_summary(&self.report_dir.join(&record.dir))
                {
                    record.figures = summary.figures;
                    record
                        .steps
                        .extend(invariant_steps(&summary.invariants, record.line));
                }
                if self.progress {
                    let (f, s) = (&self.run.features[fi], &self.run.features[fi].scenarios[si]);
                    let sabotage = self.run.sabotage.as_deref();
                    match &self.bar {
                        Some(bar) => bar.suspend(|| print_scenario(f, s, sabotage)),
                        None => print_scenario(f, s, sabotage),
                    }
                }
                if let Some(bar) = &self.bar {
                    let c = self.run.counts();
                    bar.set_message(format!("{} passed, {} failed", c.passed, c.failed));
                    bar.inc(1);
                }
                self.run.duration_s = self.run_started.elapsed().as_secs_f64();
                let html = self.html_written.is_none_or(|t| t.elapsed() >= HTML_EVERY);
                match write_reports(&self.run, &self.report_dir, html) {
                    Ok(()) if html => self.html_written = Some(Instant::now()),
                    Ok(()) => {}
                    Err(e) => self.write_error = Some(e.to_string()),
                }
            }
            _ => {}
        }
    }
}

/// The always-on invariants a scenario broke, as failed steps after its
/// own (keyword `Invariant`), so every report shows them where a step's
/// failure shows.
fn invariant_steps(
    verdicts: &[reports::invariants::InvariantVerdict],
    line: u32,
) -> Vec<StepRecord> {
    verdicts
        .iter()
        .filter(|v| v.fails())
        .map(|v| StepRecord {
            keyword: "Invariant ".into(),
            text: v.statement.clone(),
            line,
            status: StepStatus::Failed,
            duration_s: 0.0,
            error: Some(format!(
                "{} (tag the scenario @allows-{} if it expects this)",
                v.violation.as_deref().unwrap_or("violated"),
                v.name
            )),
        })
        .collect()
}

fn step_record(s: &gherkin::Step) -> StepRecord {
    StepRecord {
        keyword: s.keyword.clone(),
        text: s.value.clone(),
        line: s.position.line as u32,
        status: StepStatus::Skipped,
        duration_s: 0.0,
        error: None,
    }
}

fn panic_text(info: &event::Info) -> String {
    if let Some(s) = info.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = info.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "the step panicked".into()
    }
}

fn step_error_text(e: &event::StepError) -> String {
    match e {
        event::StepError::Panic(info) => panic_text(info),
        other => other.to_string(),
    }
}

fn print_scenario(f: &FeatureRecord, s: &ScenarioRecord, sabotage: Option<&str>) {
    use reports::run::ScenarioStatus;
    let mark = match s.status() {
        ScenarioStatus::Passed => "ok  ",
        ScenarioStatus::Failed => "FAIL",
        ScenarioStatus::Skipped => "skip",
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{mark} {}:{} {} — seed {}, {:.1} s",
        f.uri, s.line, s.name, s.seed, s.duration_s
    );
    for st in &s.steps {
        if let Some(e) = &st.error {
            let _ = writeln!(out, "       {}{} (line {})", st.keyword, st.text, st.line);
            let _ = writeln!(out, "         {e}");
        }
    }
    if s.status() == ScenarioStatus::Failed {
        let sabotage = sabotage.map_or(String::new(), |x| format!(" --sabotage {x}"));
        let _ = writeln!(
            out,
            "       reproduce: maslow test {} --name '^{}$' --seed {}{sabotage}",
            f.uri,
            regex::escape(&s.name),
            s.seed
        );
    }
}

impl Writer<MaslowWorld> for Recorder {
    type Cli = cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Ev<MaslowWorld>>>, _cli: &Self::Cli) {
        match ev {
            Err(e) => {
                let msg = e.to_string();
                if self.progress {
                    println!("FAIL {msg}");
                }
                self.parse_errors.push(msg);
            }
            Ok(ev) => match ev.value {
                Ev::Feature(f, FeatureEv::Scenario(sc, ev)) => {
                    self.scenario_event(&f, None, &sc, ev.event)
                }
                Ev::Feature(f, FeatureEv::Rule(r, RuleEv::Scenario(sc, ev))) => {
                    self.scenario_event(&f, Some(&r), &sc, ev.event)
                }
                Ev::Feature(f, FeatureEv::Started) => {
                    self.feature_index(&f);
                }
                _ => {}
            },
        }
    }
}

// Events are keyed by feature and scenario, so interleaved events of
// concurrent scenarios are fine.
impl cucumber::writer::Normalized for Recorder {}

/// Writes `junit.xml`, `cucumber.json`, `run.json` and (if `html`)
/// `index.html` into `dir`.
pub fn write_reports(run: &RunRecord, dir: &Path, html: bool) -> Result<(), HarnessError> {
    std::fs::create_dir_all(dir).map_err(|e| HarnessError::Path {
        path: dir.display().to_string(),
        message: format!("cannot create the report directory: {e}"),
    })?;
    reports::report_dir::write_run_files(run, dir, html)?;
    Ok(())
}

/// What a report dir holds at its top level, removed at the start of a run
/// so old scenarios do not linger (only these: a report dir pointed at a
/// directory with other files keeps them).
const REPORT_ENTRIES: &[&str] = &[
    "scenarios",
    "index.html",
    "junit.xml",
    "cucumber.json",
    "run.json",
];

/// Empties a report dir of a previous run's files (see [`REPORT_ENTRIES`])
/// and of half-written temporary files.
pub fn clear_report_dir(dir: &Path) -> Result<(), HarnessError> {
    let err = |p: &Path, e: std::io::Error| HarnessError::Path {
        path: p.display().to_string(),
        message: format!("cannot clear the previous run's reports: {e}"),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = REPORT_ENTRIES.contains(&name.as_str())
            || (name.starts_with('.') && name.ends_with(".partial"));
        if !ours {
            continue;
        }
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|x| err(&p, x))?;
    }
    Ok(())
}

/// The commit the features and maslow are at (`git describe --always
/// --dirty`), empty outside a git checkout.
fn git_describe(near: &Path) -> String {
    let dir = if near.is_dir() {
        near
    } else {
        near.parent().unwrap_or(Path::new("."))
    };
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// How many scenarios (outline rows each) the paths hold that pass the
/// filters; files that do not parse count none (the run reports them).
fn count_scenarios(
    paths: &[PathBuf],
    tags: Option<&gherkin::tagexpr::TagOperation>,
    name: Option<&regex::Regex>,
) -> u64 {
    fn files(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                files(&e, out);
            }
        } else if p.extension().is_some_and(|x| x == "feature") {
            out.push(p.to_path_buf());
        }
    }
    let mut all = Vec::new();
    for p in paths {
        files(p, &mut all);
    }
    let mut n = 0;
    for f in all {
        let Ok(feature) = gherkin::Feature::parse_path(&f, gherkin::GherkinEnv::default()) else {
            continue;
        };
        let rules = feature
            .rules
            .iter()
            .flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s)));
        for (rule, sc) in feature.scenarios.iter().map(|s| (None, s)).chain(rules) {
            let name_ok = name.is_none_or(|re| re.is_match(&sc.name));
            let tags_ok = tags.is_none_or(|t| {
                let mut all: Vec<String> = feature.tags.clone();
                if let Some(r) = rule {
                    all.extend(r.tags.iter().cloned());
                }
                all.extend(sc.tags.iter().cloned());
                cucumber::tag::Ext::eval(t, all.iter())
            });
            if name_ok && tags_ok {
                let rows: usize = sc
                    .examples
                    .iter()
                    .map(|e| {
                        e.table
                            .as_ref()
                            .map_or(0, |t| t.rows.len().saturating_sub(1))
                    })
                    .sum();
                n += if sc.examples.is_empty() {
                    1
                } else {
                    rows as u64
                };
            }
        }
    }
    n
}

/// Runs the features and writes the reports.
pub fn run_features(opts: &TestOptions) -> Result<TestOutcome, HarnessError> {
    let mut rig = Rig::load(&opts.rig)?;
    if opts.sabotage.is_some() {
        rig.sabotage = opts.sabotage;
    }
    let tags =
        match &opts.tags {
            Some(t) => Some(t.parse::<gherkin::tagexpr::TagOperation>().map_err(|e| {
                HarnessError::Tags {
                    expr: t.clone(),
                    message: e.to_string(),
                }
            })?),
            None => None,
        };
    let name = match &opts.name {
        Some(n) => Some(regex::Regex::new(n).map_err(|e| HarnessError::Name {
            expr: n.clone(),
            message: e.to_string(),
        })?),
        None => None,
    };
    for p in &opts.paths {
        if !p.exists() {
            return Err(HarnessError::Path {
                path: p.display().to_string(),
                message: "no such feature file or directory".into(),
            });
        }
    }
    // Software rigs in lockstep run scenarios side by side; a bench (real
    // time, or a board) is one device under test: one scenario at a time.
    let exclusive = rig.time == TimeMode::Realtime
        || rig.controller.runs != crate::rig::ControllerLocation::InProcess;
    let concurrency = if exclusive {
        1
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    };
    clear_report_dir(&opts.report_dir)?;
    std::fs::create_dir_all(&opts.report_dir).map_err(|e| HarnessError::Path {
        path: opts.report_dir.display().to_string(),
        message: format!("cannot create the report directory: {e}"),
    })?;
    install_settings(Settings {
        rig_path: opts.rig.clone(),
        rig: Arc::new(rig.clone()),
        seed: opts.seed,
        report_dir: opts.report_dir.clone(),
        probe_rate_hz: opts.probe_rate_hz.unwrap_or(rig.probe_rate_hz),
        trace_limit_bytes: opts.trace_limit_bytes,
    });
    let bar = opts.progress.then(|| {
        let total = count_scenarios(&opts.paths, tags.as_ref(), name.as_ref());
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} scenarios, {msg} (eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let commit = git_describe(opts.paths.first().map_or(Path::new("."), |p| p.as_path()));
    let recorder = Recorder {
        run: RunRecord {
            rig: rig.name.clone(),
            mode: match rig.time {
                TimeMode::Lockstep => "lockstep".into(),
                TimeMode::Realtime => "realtime".into(),
            },
            seed: opts.seed.unwrap_or(0),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            duration_s: 0.0,
            features: Vec::new(),
            commit,
            version: env!("CARGO_PKG_VERSION").into(),
            sabotage: rig.sabotage.map(|s| s.name().to_owned()),
        },
        parse_errors: Vec::new(),
        index: BTreeMap::new(),
        started: BTreeMap::new(),
        step_started: BTreeMap::new(),
        seed: opts.seed,
        run_started: Instant::now(),
        report_dir: opts.report_dir.clone(),
        progress: opts.progress,
        write_error: None,
        bar,
        html_written: None,
    };
    let cli_opts = cli::Opts::<_, _, cli::Empty, cli::Empty> {
        re_filter: None,
        tags_filter: None,
        parser: parser::basic::Cli::default(),
        runner: cucumber::runner::basic::Cli::default(),
        writer: cli::Empty,
        custom: cli::Empty,
    };
    let paths = opts.paths.clone();
    let mut recorder_out = None;
    for path in paths {
        let tags = tags.clone();
        let name = name.clone();
        let prev = recorder_out.take();
        let rec = prev.unwrap_or_else(|| Recorder {
            ..clone_recorder(&recorder)
        });
        let cucumber = MaslowWorld::cucumber()
            .max_concurrent_scenarios(concurrency)
            .with_writer(rec)
            .with_cli(cli_opts.clone())
            .before(|feature, rule, scenario, world| {
                let uri = uri_of(feature);
                let name = scenario.name.clone();
                let mut tags = tags_of(&feature.tags);
                if let Some(r) = rule {
                    tags.extend(tags_of(&r.tags));
                }
                tags.extend(tags_of(&scenario.tags));
                async move { world.begin(&uri, &name, tags) }.boxed_local()
            })
            .after(|_feature, _rule, _scenario, _ev, world| {
                async move {
                    if let Some(w) = world {
                        w.finish();
                    }
                }
                .boxed_local()
            });
        let filter =
            move |_f: &gherkin::Feature, r: Option<&gherkin::Rule>, sc: &gherkin::Scenario| {
                let name_ok = name.as_ref().is_none_or(|re| re.is_match(&sc.name));
                let tags_ok = tags.as_ref().is_none_or(|t| {
                    let mut all: Vec<String> = _f.tags.clone();
                    if let Some(r) = r {
                        all.extend(r.tags.iter().cloned());
                    }
                    all.extend(sc.tags.iter().cloned());
                    cucumber::tag::Ext::eval(t, all.iter())
                });
                name_ok && tags_ok
            };
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let rec = futures::executor::block_on(cucumber.filter_run(path, filter));
        std::panic::set_hook(quiet);
        recorder_out = Some(rec);
    }
    let mut rec = recorder_out.unwrap_or(recorder);
    if let Some(bar) = rec.bar.take() {
        bar.finish_and_clear();
    }
    rec.run.duration_s = rec.run_started.elapsed().as_secs_f64();
    write_reports(&rec.run, &opts.report_dir, true)?;
    if let Some(e) = rec.write_error {
        return Err(HarnessError::Path {
            path: opts.report_dir.display().to_string(),
            message: e,
        });
    }
    Ok(TestOutcome {
        junit: opts.report_dir.join("junit.xml"),
        cucumber_json: opts.report_dir.join("cucumber.json"),
        html: opts.report_dir.join("index.html"),
        record: rec.run,
        parse_errors: rec.parse_errors,
    })
}

fn clone_recorder(r: &Recorder) -> Recorder {
    Recorder {
        run: r.run.clone(),
        parse_errors: r.parse_errors.clone(),
        index: BTreeMap::new(),
        started: BTreeMap::new(),
        step_started: BTreeMap::new(),
        seed: r.seed,
        run_started: r.run_started,
        report_dir: r.report_dir.clone(),
        progress: r.progress,
        write_error: None,
        bar: r.bar.clone(),
        html_written: r.html_written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::invariants::InvariantVerdict;
    use reports::run::ScenarioStatus;

    fn verdict(name: &str, held: bool, allowed: bool) -> InvariantVerdict {
        InvariantVerdict {
            name: name.into(),
            statement: format!("{name} holds"),
            held,
            allowed,
            violation: (!held).then(|| "battery_power switched 30 times".into()),
            worst: 30.0,
        }
    }

    #[test]
    fn a_broken_invariant_is_a_failed_step_that_fails_the_scenario() {
        let steps = invariant_steps(
            &[
                verdict("chatter", false, false),
                verdict("cell-limits", true, false),
                verdict("reserve", false, true),
            ],
            7,
        );
        assert_eq!(steps.len(), 1, "{steps:?}");
        let s = &steps[0];
        assert_eq!(s.status, StepStatus::Failed);
        assert_eq!(s.keyword, "Invariant ");
        let e = s.error.as_deref().unwrap();
        assert!(
            e.contains("30 times") && e.contains("@allows-chatter"),
            "{e}"
        );
        let mut record = ScenarioRecord {
            name: "s".into(),
            line: 7,
            tags: Vec::new(),
            seed: 1,
            duration_s: 0.0,
            steps: vec![StepRecord {
                keyword: "Then ".into(),
                text: "fine".into(),
                line: 8,
                status: StepStatus::Passed,
                duration_s: 0.0,
                error: None,
            }],
            retries: 0,
            output: String::new(),
            dir: String::new(),
            figures: Default::default(),
        };
        assert_eq!(record.status(), ScenarioStatus::Passed);
        record.steps.extend(steps);
        assert_eq!(record.status(), ScenarioStatus::Failed);
        assert!(record.failure().unwrap().contains("30 times"));
    }
}
