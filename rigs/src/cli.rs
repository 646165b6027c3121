//! The `maslow` command line: argument definitions (clap) and the commands.
//!
//! Every command reads its inputs, runs pure library code, and writes its
//! output through `reports` (atomically: a failed run leaves no file that
//! looks complete). Errors print as one line naming the file, the line where
//! known, and the problem; bad input exits with code 2.
//!
//! The fleet commands' arguments ([`crate::fleet_args`]) and the exit codes
//! ([`crate::cli_error`]) live in modules of their own, which the fleet's
//! MQTT commands ([`crate::mqtt::cli`]) use too; this module re-exports
//! them and is the only one that uses `mqtt::cli`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use firmware::ControllerConfig;
use reports::csv_table::ColumnTable;
use twin::battery::{self, Profile, ProfileKind};
use twin::house::HouseConfig;
use twin::pv::{module_mpp_table, CecModule};
use twin::time::SimTime;

use crate::cli_error::bad;
pub use crate::cli_error::{exit_code, BadInput};
pub use crate::fleet_args::{
    fleet_scenario, BrokerArgs, FleetCommonArgs, FleetRunArgs, FleetServerArgs, FleetShardArgs,
    SignatureArgs,
};
use crate::input::InputTable;
use crate::pacing::PacerReport;
use crate::rig::direct::{self, WakePolicy};
use crate::rig::plant::{HousePlant, Recording};
use crate::rig::{ControllerSide, OwnPolicy, Session, TimeMode};

/// maslow: hardware-in-the-loop tests and digital twins for home battery
/// assemblies.
#[derive(Debug, Parser)]
#[command(name = "maslow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run plant models on their own (no controller): a cell, a PV module, a house.
    #[command(subcommand)]
    Twin(TwinCommand),
    /// Run the twin against a controller as a rig file says (in-process,
    /// the firmware binary over pseudo-terminals, or a board).
    #[command(subcommand)]
    Rig(RigCommand),
    /// Run Gherkin feature files on a rig; exit 0 only if every scenario passed.
    Test(TestArgs),
    /// Summarise a report dir of `maslow test`, or compare two.
    Report(ReportArgs),
    /// Fleets: households on LV feeders, their assemblies and the remote server.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Saboteurs on the rig: list them, or measure which scenarios catch each.
    #[command(subcommand)]
    Sabotage(SabotageCommand),
}

#[derive(Debug, Subcommand)]
pub enum SabotageCommand {
    /// Each saboteur, what it breaks and the claim it violates.
    List,
    /// Runs each saboteur against the feature files it touches and the
    /// clean controller against all of them; writes matrix.md, matrix.json
    /// and matrix.html; exit 0 only if every saboteur was caught and the
    /// clean controller passed everything.
    Matrix(MatrixArgs),
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Only these saboteurs (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Rig file.
    #[arg(long, default_value = "rigs/sim.toml")]
    pub rig: PathBuf,
    /// The features directory the saboteurs' file lists are relative to.
    #[arg(long, default_value = "features")]
    pub features: PathBuf,
    /// Output directory (each run's report in a subdirectory).
    #[arg(long, default_value = "target/sabotage-matrix")]
    pub out: PathBuf,
    /// Skip the clean controller's run.
    #[arg(long)]
    pub no_clean: bool,
    /// Only scenarios whose name matches this regular expression (the
    /// matrix states the filter; a saboteur left with no scenario is not
    /// caught).
    #[arg(long)]
    pub name: Option<String>,
    /// Size cap of each of a scenario's trace files, MiB.
    #[arg(long, default_value_t = 4)]
    pub trace_limit_mib: u64,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Run a fleet in lockstep on this machine: the server and the shards
    /// exchange their messages through an in-memory queue, or with
    /// `--broker embedded|URL` over MQTT.
    Run(FleetRunArgs),
    /// The remote server of a distributed run: waits for the shards' Hellos
    /// on the broker, runs the lockstep and writes the outputs.
    Server(FleetServerArgs),
    /// One shard of a distributed run: some feeders' households with their
    /// assemblies, stepped as the server's ticks say.
    Shard(FleetShardArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report dir (or its run.json).
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    pub dir: Option<PathBuf>,
    /// List the scenarios whose verdicts or key figures changed from OLD
    /// to NEW, regressions first; exit 1 if any scenario regressed.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    pub compare: Option<Vec<PathBuf>>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Feature files or directories (default: features/).
    pub paths: Vec<PathBuf>,
    /// Rig file: rigs/sim.toml (software), rigs/sil.toml, a bench's.
    #[arg(long, default_value = "rigs/sim.toml")]
    pub rig: PathBuf,
    /// Tag expression, e.g. '@sim and not @slow' (default: 'not @known-gap',
    /// everything but the scenarios documented as failing today).
    #[arg(long)]
    pub tags: Option<String>,
    /// Only scenarios whose name matches this regular expression.
    #[arg(long)]
    pub name: Option<String>,
    /// Run every scenario with this seed (each scenario prints its own).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the report goes: index.html, junit.xml, cucumber.json,
    /// run.json and each scenario's files (the previous run's are removed).
    #[arg(long, default_value = "target/maslow-report")]
    pub report_dir: PathBuf,
    /// Size cap of each of a scenario's trace files (CAN, P1, decisions), MiB.
    #[arg(long, default_value_t = 16)]
    pub trace_limit_mib: u64,
    /// Virtual probe capture rate, Hz (default: the rig file's `[probe] rate_hz`, else 1).
    #[arg(long)]
    pub probe_rate_hz: Option<f64>,
    /// Run against a sabotaged controller: a saboteur on the rig rewrites
    /// what the controller commands or reports (`list` prints them).
    #[arg(long, value_name = "NAME|list")]
    pub sabotage: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RigCommand {
    /// Run a scenario on a rig (lockstep or real time) and print its summary.
    Run(RigRunArgs),
}

#[derive(Debug, Args)]
pub struct RigRunArgs {
    /// Rig file (TOML; rigs/README.md): rigs/sim.toml, rigs/sil.toml, ...
    #[arg(long, default_value = "rigs/sim.toml")]
    pub rig: PathBuf,
    /// Scenario (a house file) instead of the rig's `twin.scenario`.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Seed instead of the rig's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the run's files (signals.csv, applied-commands.csv,
    /// the controller's log); created if missing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write every CAN frame in candump -L format to this file (flushed
    /// per frame).
    #[arg(long)]
    pub candump: Option<PathBuf>,
    /// The maslow-firmware program for child-process rigs (default: next to
    /// this executable, then PATH).
    #[arg(long)]
    pub program: Option<PathBuf>,
    /// Sample period of signals.csv, s.
    #[arg(long, default_value_t = 60.0)]
    pub sample_s: f64,
}

#[derive(Debug, Subcommand)]
pub enum TwinCommand {
    /// Run one battery cell (equivalent circuit) through a current or power profile.
    Cell(CellArgs),
    /// Run one PV module (CEC single-diode) through plane-of-array weather.
    Pv(PvArgs),
    /// Simulate one household (pack, PV, DC bus, loads, grid, meter) with a fixed simple policy.
    House(HouseArgs),
    /// Solve an LV feeder's three-phase unbalanced power flow (OpenDSS subset).
    Feeder(FeederArgs),
}

#[derive(Debug, Args)]
pub struct CellArgs {
    /// Cell parameter file (TOML; schema in twin/params/README.md).
    #[arg(long)]
    pub params: PathBuf,
    /// Cell model: `ecm` (equivalent circuit) or `spme` (electrochemical).
    /// Default: the parameter file's `model` key (`ecm` if it has none).
    #[arg(long, value_parser = ["ecm", "spme"])]
    pub model: Option<String>,
    /// Profile CSV: `time_s` and `current_a` (positive = discharge) or `power_w`.
    /// Each row's value holds until the next row's time.
    #[arg(long)]
    pub profile: PathBuf,
    /// Initial state of charge, 0..1.
    #[arg(long, default_value_t = 1.0)]
    pub soc0: f64,
    /// Initial cell, jig and ambient temperature, °C.
    #[arg(long, default_value_t = 25.0)]
    pub temperature_c: f64,
    /// Largest integration step, s.
    #[arg(long, default_value_t = 1.0)]
    pub dt_s: f64,
    /// Output CSV.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FeederArgs {
    /// Network: an OpenDSS script in the subset twin::feeder reads
    /// (e.g. twin/params/feeders/ieee_european_lv/master.dss).
    #[arg(long)]
    pub network: PathBuf,
    /// Loads CSV: `time_s` and `<load name>_kw` columns (optionally
    /// `<load name>_kvar`), one snapshot per row. A load without a `_kw`
    /// column keeps the script's value; without a `_kvar` column its kvar
    /// follows kW at the script's power factor. Without this option: one
    /// snapshot of the script's loads at time 0.
    #[arg(long)]
    pub loads: Option<PathBuf>,
    /// Output CSV, one row per snapshot: `time_s`, transformer
    /// `trafo_p_{a,b,c}_kw`/`trafo_q_{a,b,c}_kvar` (delivered at the LV
    /// terminals), `trafo_p_hv_kw`/`trafo_q_hv_kvar`, then for every bus and
    /// phase `vm_<bus>_<phase>_pu` and `va_<bus>_<phase>_deg`.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PvArgs {
    /// Module file: a flat TOML table with SAM/CEC field names.
    #[arg(long)]
    pub module: PathBuf,
    /// Weather CSV: `time_s,poa_w_m2,cell_temp_c`.
    #[arg(long)]
    pub weather: PathBuf,
    /// Output CSV.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct HouseArgs {
    /// House file (TOML; schema in twin/params/house/README.md). Defaults to
    /// the shipped terrace house.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Seed (overrides the file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sample period of the output, s.
    #[arg(long, default_value_t = 60.0)]
    pub sample_s: f64,
    /// Electrical step, ms (overrides the file's `electrical_step_ms`; its
    /// `environment_step_ms` must stay a whole multiple of it).
    #[arg(long)]
    pub step_ms: Option<u64>,
    /// Pack file replacing the house's (e.g. twin/params/chen2020_16s.toml:
    /// `model = "spme"` packs run the electrochemical cells).
    #[arg(long)]
    pub pack: Option<PathBuf>,
    /// Pace the plant against the wall clock, one electrical step per step
    /// period, and report jitter and overruns (as a HIL rig would run it).
    #[arg(long)]
    pub real_time: bool,
    /// Run the production firmware core in the loop with this controller
    /// configuration (e.g. firmware/config/terrace.toml) instead of the
    /// house's fixed simple policy.
    #[arg(long)]
    pub controller: Option<PathBuf>,
    /// Output CSV.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Twin(TwinCommand::Cell(a)) => twin_cell(&a),
        Command::Twin(TwinCommand::Pv(a)) => twin_pv(&a),
        Command::Twin(TwinCommand::House(a)) => twin_house(&a),
        Command::Twin(TwinCommand::Feeder(a)) => twin_feeder(&a),
        Command::Rig(RigCommand::Run(a)) => rig_run(&a),
        Command::Test(a) => test(&a),
        Command::Report(a) => report(&a),
        Command::Fleet(FleetCommand::Run(a)) => fleet_run(&a),
        Command::Fleet(FleetCommand::Server(a)) => crate::mqtt::cli::fleet_server(&a),
        Command::Fleet(FleetCommand::Shard(a)) => crate::mqtt::cli::fleet_shard(&a),
        Command::Sabotage(SabotageCommand::List) => {
            print!("{}", crate::sabotage::listing());
            Ok(())
        }
        Command::Sabotage(SabotageCommand::Matrix(a)) => sabotage_matrix(&a),
    }
}

/// `maslow fleet run`.
pub fn fleet_run(a: &FleetRunArgs) -> Result<()> {
    use crate::fleet::run::{run_in_process, summary, write_outputs, RunOptions};
    let sc = std::sync::Arc::new(fleet_scenario(&a.common)?);
    if a.shards == 0 {
        return Err(bad("--shards must be at least 1".into()));
    }
    let mut opts = RunOptions {
        run_id: a.common.run_id.clone(),
        shards: a.shards,
        progress: true,
        share_signature_checks: !a.signatures.verify_every_message,
        ..RunOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    if let Some(id) = &opts.run_id {
        crate::fleet::wire::check_run_id(id).map_err(|e| bad(e.to_string()))?;
    }
    if a.broker.broker.is_some() {
        return crate::mqtt::cli::fleet_run_over_broker(a, sc, &opts);
    }
    let outcome = run_in_process(std::sync::Arc::clone(&sc), &opts)?;
    write_outputs(&a.out, &sc, &outcome)?;
    print!("{}", summary(&sc, &outcome));
    let (verified, recalled) = outcome.shard_stats.iter().fold((0, 0), |(v, r), (_, s)| {
        (v + s.signatures_verified, r + s.signatures_recalled)
    });
    println!(
        "signature checks: {verified} Ed25519 verify_strict, {recalled} repeats of a verified broadcast shared on the branch{}",
        if opts.share_signature_checks { "" } else { " (--verify-every-message)" }
    );
    println!("outputs: {}", a.out.display());
    Ok(())
}

/// `maslow report`.
pub fn report(a: &ReportArgs) -> Result<()> {
    use reports::run_json::{compare, read_run_json, summary_text, Change};
    let read = |p: &std::path::Path| read_run_json(p).map_err(|e| bad(e.to_string()));
    match (&a.dir, a.compare.as_deref()) {
        (_, Some([old, new])) => {
            let (o, n) = (read(old)?, read(new)?);
            let changes = compare(&o, &n);
            println!(
                "{} → {}: {} scenario change(s)",
                old.display(),
                new.display(),
                changes.len()
            );
            for c in &changes {
                println!("{c}");
            }
            let regressions = changes
                .iter()
                .filter(|c| matches!(c, Change::Regression { .. }))
                .count();
            if regressions > 0 {
                return Err(anyhow::anyhow!("{regressions} scenario(s) regressed"));
            }
            Ok(())
        }
        (Some(dir), None) => {
            let r = read(dir)?;
            print!("{}", summary_text(&r));
            let html = if dir.is_dir() {
                dir.join("index.html")
            } else {
                dir.with_file_name("index.html")
            };
            if html.exists() {
                println!("HTML report: {}", html.display());
            }
            Ok(())
        }
        _ => Err(bad("give a report dir, or --compare OLD NEW".into())),
    }
}

/// `maslow test`.
pub fn test(a: &TestArgs) -> Result<()> {
    use crate::scenario::{run_features, HarnessError, TestOptions};
    if let Some(r) = a.probe_rate_hz {
        if !(r.is_finite() && r > 0.0 && r <= 1000.0) {
            return Err(bad(format!(
                "--probe-rate-hz must be within (0, 1000], found {r}"
            )));
        }
    }
    let sabotage = match a.sabotage.as_deref() {
        Some("list") => {
            print!("{}", crate::sabotage::listing());
            return Ok(());
        }
        Some(name) => Some(
            name.parse::<crate::sabotage::Saboteur>()
                .map_err(|e| bad(format!("--sabotage: {e}")))?,
        ),
        None => None,
    };
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("features")]
    } else {
        a.paths.clone()
    };
    let opts = TestOptions {
        sabotage,
        paths,
        rig: a.rig.clone(),
        tags: Some(a.tags.clone().unwrap_or_else(|| "not @known-gap".into())),
        name: a.name.clone(),
        seed: a.seed,
        report_dir: a.report_dir.clone(),
        probe_rate_hz: a.probe_rate_hz,
        progress: true,
        trace_limit_bytes: a.trace_limit_mib.saturating_mul(1 << 20),
    };
    let outcome = run_features(&opts).map_err(|e| match e {
        HarnessError::Report(_) => anyhow::Error::from(e),
        other => bad(other.to_string()),
    })?;
    let c = outcome.record.counts();
    println!(
        "{} passed, {} failed, {} skipped; {} feature file(s) did not parse; {:.1} s; reports: {} and {}",
        c.passed,
        c.failed,
        c.skipped,
        outcome.parse_errors.len(),
        outcome.record.duration_s,
        outcome.junit.display(),
        outcome.cucumber_json.display()
    );
    if !outcome.passed() {
        println!("HTML report: {}", outcome.html.display());
    }
    if outcome.passed() {
        Ok(())
    } else if c.passed + c.failed == 0 && outcome.parse_errors.is_empty() {
        Err(anyhow::anyhow!(
            "no scenario matched (check the paths, --tags and --name)"
        ))
    } else {
        Err(anyhow::anyhow!(
            "{} scenario(s) failed, {} feature file(s) did not parse",
            c.failed,
            outcome.parse_errors.len()
        ))
    }
}

/// `maslow sabotage matrix`.
pub fn sabotage_matrix(a: &MatrixArgs) -> Result<()> {
    use crate::sabotage::Saboteur;
    use crate::scenario::matrix::{run_matrix, MatrixOptions};
    let saboteurs = if a.only.is_empty() {
        Saboteur::ALL.to_vec()
    } else {
        a.only
            .iter()
            .map(|n| n.parse::<Saboteur>())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("--only: {e}")))?
    };
    std::fs::create_dir_all(&a.out)
        .map_err(|e| bad(format!("cannot create {}: {e}", a.out.display())))?;
    let m = run_matrix(&MatrixOptions {
        features_dir: a.features.clone(),
        rig: a.rig.clone(),
        out: a.out.clone(),
        saboteurs,
        clean: !a.no_clean,
        names: a.name.clone(),
        trace_limit_bytes: a.trace_limit_mib.saturating_mul(1 << 20),
        progress: true,
    })
    .map_err(|e| bad(e.to_string()))?;
    print!("{}", m.to_markdown());
    println!("matrix: {}", a.out.join("matrix.html").display());
    if m.complete() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{}", m.summary()))
    }
}

/// `maslow rig run`.
pub fn rig_run(a: &RigRunArgs) -> Result<()> {
    use crate::rig::{self, Rig, RunOptions};
    let as_input = |e: rig::RigError| -> anyhow::Error {
        if e.is_bad_input() {
            bad(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    };
    let r = Rig::load(&a.rig).map_err(|e| bad(e.to_string()))?;
    let work_dir = match &a.out {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the output directory {}", d.display()))?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let opts = RunOptions {
        scenario: a.scenario.clone(),
        hours: a.hours,
        seed: a.seed,
        sample_s: a.sample_s,
        program: a.program.clone(),
        work_dir: work_dir.clone(),
        // `[trace] candump = true` in the rig file: can.log beside the
        // other run files (when --out names a directory).
        candump: a
            .candump
            .clone()
            .or_else(|| (r.candump && a.out.is_some()).then(|| work_dir.join("can.log"))),
    };
    let summary = rig::run(&r, &opts).map_err(as_input)?;
    println!("{summary}");
    if let Some(dir) = &a.out {
        summary
            .signals
            .write_atomic(&dir.join("signals.csv"))
            .context("writing signals.csv")?;
        let mut applied = String::from("time_s,commands\n");
        for c in &summary.applied {
            applied.push_str(&format!(
                "{:.3},\"{}\"\n",
                c.at_ms as f64 / 1000.0,
                format!("{:?}", c.commands).replace('"', "'")
            ));
        }
        std::fs::write(dir.join("applied-commands.csv"), applied)
            .context("writing applied-commands.csv")?;
        eprintln!("maslow rig run: files in {}", dir.display());
    }
    Ok(())
}

/// `maslow twin cell`.
pub fn twin_cell(a: &CellArgs) -> Result<()> {
    if !(a.soc0.is_finite() && (0.0..=1.0).contains(&a.soc0)) {
        return Err(bad(format!(
            "--soc0 must be within 0..=1, found {}",
            a.soc0
        )));
    }
    if !a.temperature_c.is_finite() || !(-60.0..=120.0).contains(&a.temperature_c) {
        return Err(bad(format!(
            "--temperature-c must be within -60..=120 °C, found {}",
            a.temperature_c
        )));
    }
    if !(a.dt_s.is_finite() && a.dt_s > 0.0 && a.dt_s <= 3600.0) {
        return Err(bad(format!(
            "--dt-s must be within (0, 3600] s, found {}",
            a.dt_s
        )));
    }
    let text = twin::params::read_text(&a.params)?;
    let file_model = battery::cell_model_of(&a.params, &text)?;
    let model = a.model.clone().unwrap_or_else(|| file_model.clone());
    if model != file_model {
        return Err(bad(format!(
            "--model {model}: {} is a `{file_model}` parameter file (its `model` key); \
             pass a `model = \"{model}\"` file or drop --model",
            a.params.display()
        )));
    }
    let table = InputTable::load(&a.profile)?;
    let time_s = table.time_column("time_s")?;
    let (column, values) = table.one_of(&["current_a", "power_w"])?;
    let kind = if column == "current_a" {
        ProfileKind::CurrentA
    } else {
        ProfileKind::PowerW
    };
    let profile = Profile::new(time_s, values, kind)
        .map_err(|e| bad(format!("{}: {e}", a.profile.display())))?;
    let run = if model == "spme" {
        let params = battery::spme::parse_spme_params(&a.params, &text)?;
        battery::run_spme_profile(&params, &profile, a.soc0, a.temperature_c, a.dt_s)
    } else {
        let params = battery::parse_cell_params(&a.params, &text)?;
        battery::run_cell_profile(&params, &profile, a.soc0, a.temperature_c, a.dt_s)
    }
    .map_err(|e| bad(e.to_string()))?;
    let s = &run.samples;
    let mut t = ColumnTable::new();
    t.push("time_s", s.iter().map(|x| x.time_s).collect());
    t.push("voltage_v", s.iter().map(|x| x.voltage_v).collect());
    t.push("soc", s.iter().map(|x| x.soc).collect());
    t.push("temperature_c", s.iter().map(|x| x.temperature_c).collect());
    t.push("current_a", s.iter().map(|x| x.current_a).collect());
    t.push("power_w", s.iter().map(|x| x.power_w).collect());
    t.push("ocv_v", s.iter().map(|x| x.ocv_v).collect());
    t.push("heat_w", s.iter().map(|x| x.heat_w).collect());
    t.write_atomic(&a.out)?;
    eprintln!(
        "maslow twin cell: {} rows to {}; stopped: {}",
        t.rows(),
        a.out.display(),
        run.stop
    );
    Ok(())
}

/// `maslow twin pv`.
pub fn twin_pv(a: &PvArgs) -> Result<()> {
    let module = CecModule::load(&a.module)?;
    let table = InputTable::load(&a.weather)?;
    let time_s = table.time_column("time_s")?;
    let poa = table.column("poa_w_m2")?;
    let temp = table.column("cell_temp_c")?;
    if let Some(k) = poa.iter().position(|g| *g < 0.0) {
        return Err(bad(format!(
            "{}: line {}: `poa_w_m2` must not be negative, found {}",
            a.weather.display(),
            table.line_of_row(k),
            poa[k]
        )));
    }
    let rows: Vec<(f64, f64, f64)> = time_s
        .iter()
        .zip(&poa)
        .zip(&temp)
        .map(|((t, g), c)| (*t, *g, *c))
        .collect();
    let out = module_mpp_table(&module, &rows)
        .map_err(|e| bad(format!("{}: {e}", a.weather.display())))?;
    let mut t = ColumnTable::new();
    t.push("time_s", out.iter().map(|r| r.time_s).collect());
    t.push("p_mp_w", out.iter().map(|r| r.p_mp_w).collect());
    t.push("v_mp_v", out.iter().map(|r| r.v_mp_v).collect());
    t.push("i_mp_a", out.iter().map(|r| r.i_mp_a).collect());
    t.push("v_oc_v", out.iter().map(|r| r.v_oc_v).collect());
    t.push("i_sc_a", out.iter().map(|r| r.i_sc_a).collect());
    t.write_atomic(&a.out)?;
    eprintln!("maslow twin pv: {} rows to {}", t.rows(), a.out.display());
    Ok(())
}

/// `maslow twin feeder`.
pub fn twin_feeder(a: &FeederArgs) -> Result<()> {
    use twin::feeder::{FeederError, Network};
    let as_err = |e: FeederError| -> anyhow::Error {
        match e {
            FeederError::NoConvergence { .. } => anyhow::anyhow!("{e}"),
            other => bad(other.to_string()),
        }
    };
    let model = twin::feeder::parse_file(&a.network).map_err(as_err)?;
    for n in &model.notes {
        eprintln!("maslow twin feeder: note: {n}");
    }
    let net =
        Network::from_dss(&model).map_err(|e| bad(format!("{}: {e}", a.network.display())))?;
    let base = net.base_snapshot();
    let mut snapshots = Vec::new();
    match &a.loads {
        None => snapshots.push((0.0, base.clone())),
        Some(path) => {
            let table = InputTable::load(path)?;
            let time_s = table.time_column("time_s")?;
            let mut kw_cols = Vec::new();
            let mut kvar_cols = Vec::new();
            for (c, name) in table.columns.iter().enumerate() {
                let (load, kw) = if let Some(l) = name.strip_suffix("_kw") {
                    (l, true)
                } else if let Some(l) = name.strip_suffix("_kvar") {
                    (l, false)
                } else {
                    continue;
                };
                let Some(k) = net.load_index(load) else {
                    return Err(bad(format!(
                        "{}: column `{name}`: the network has no load `{load}` (loads: {})",
                        path.display(),
                        net.load_names().take(8).collect::<Vec<_>>().join(", ")
                            + if net.load_names().count() > 8 {
                                ", ..."
                            } else {
                                ""
                            }
                    )));
                };
                if kw {
                    kw_cols.push((k, c));
                } else {
                    kvar_cols.push((k, c));
                }
            }
            if kw_cols.is_empty() {
                return Err(bad(format!(
                    "{}: no `<load name>_kw` column (the header has: {})",
                    path.display(),
                    table.columns.join(", ")
                )));
            }
            for (r, row) in table.rows.iter().enumerate() {
                let mut s = base.clone();
                for &(k, c) in &kw_cols {
                    let ratio = if base.kw[k] != 0.0 {
                        base.kvar[k] / base.kw[k]
                    } else {
                        0.0
                    };
                    s.kw[k] = row[c];
                    s.kvar[k] = row[c] * ratio;
                }
                for &(k, c) in &kvar_cols {
                    s.kvar[k] = row[c];
                }
                snapshots.push((time_s[r], s));
            }
        }
    }
    let n_bus = net.bus_names().len();
    let mut vm: Vec<Vec<f64>> = (0..3 * n_bus)
        .map(|_| Vec::with_capacity(snapshots.len()))
        .collect();
    let mut va: Vec<Vec<f64>> = (0..3 * n_bus)
        .map(|_| Vec::with_capacity(snapshots.len()))
        .collect();
    let mut tr_cols: Vec<Vec<f64>> = (0..8)
        .map(|_| Vec::with_capacity(snapshots.len()))
        .collect();
    for (t, snap) in &snapshots {
        let sol = net
            .solve(snap)
            .map_err(|e| anyhow::anyhow!("snapshot at time_s={t}: {e}"))?;
        for b in 0..n_bus {
            for p in 0..3 {
                vm[3 * b + p].push(sol.vm_pu[b][p]);
                va[3 * b + p].push(sol.va_deg[b][p]);
            }
        }
        let (lv, hv) = match &sol.transformer {
            Some(tr) => (tr.s_lv_kva, tr.s_hv_kva),
            None => (
                [twin::feeder::C64::new(f64::NAN, f64::NAN); 3],
                twin::feeder::C64::new(f64::NAN, f64::NAN),
            ),
        };
        for p in 0..3 {
            tr_cols[2 * p].push(lv[p].re);
            tr_cols[2 * p + 1].push(lv[p].im);
        }
        tr_cols[6].push(hv.re);
        tr_cols[7].push(hv.im);
    }
    let mut t = ColumnTable::new();
    t.push("time_s", snapshots.iter().map(|s| s.0).collect());
    let names = [
        "trafo_p_a_kw",
        "trafo_q_a_kvar",
        "trafo_p_b_kw",
        "trafo_q_b_kvar",
        "trafo_p_c_kw",
        "trafo_q_c_kvar",
        "trafo_p_hv_kw",
        "trafo_q_hv_kvar",
    ];
    for (n, c) in names.iter().zip(tr_cols) {
        t.push(*n, c);
    }
    let mut vm = vm.into_iter();
    let mut va = va.into_iter();
    for b in net.bus_names() {
        for ph in ["a", "b", "c"] {
            t.push(format!("vm_{b}_{ph}_pu"), vm.next().unwrap_or_default());
            t.push(format!("va_{b}_{ph}_deg"), va.next().unwrap_or_default());
        }
    }
    t.write_atomic(&a.out)?;
    eprintln!(
        "maslow twin feeder: {} snapshot(s) of {} buses to {}",
        t.rows(),
        n_bus,
        a.out.display()
    );
    Ok(())
}

/// The shipped default house file, found relative to this crate's sources.
pub fn default_house_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../twin/params/house/terrace.toml")
}

/// `maslow twin house`.
pub fn twin_house(a: &HouseArgs) -> Result<()> {
    if !(a.hours.is_finite() && a.hours > 0.0 && a.hours <= 24.0 * 366.0) {
        return Err(bad(format!(
            "--hours must be within (0, 8784], found {}",
            a.hours
        )));
    }
    let path = a.config.clone().unwrap_or_else(default_house_file);
    let mut cfg = HouseConfig::load(&path)?;
    if let Some(seed) = a.seed {
        cfg.seed = seed;
    }
    if let Some(pack) = &a.pack {
        cfg.pack = twin::battery::load_battery_pack_params(pack)
            .map_err(|e| bad(format!("--pack {}: {e}", pack.display())))?;
    }
    if let Some(ms) = a.step_ms {
        if ms == 0 || cfg.environment_step_us % (ms * 1000) != 0 {
            return Err(bad(format!(
                "--step-ms must be positive and divide the house's environment step ({} ms), found {ms}",
                cfg.environment_step_us / 1000
            )));
        }
        cfg.electrical_step_us = ms * 1000;
    }
    let sample_us = SimTime::from_secs_f64(a.sample_s).as_micros();
    if sample_us == 0 || !sample_us.is_multiple_of(cfg.electrical_step_us) {
        return Err(bad(format!(
            "--sample-s must be a positive whole multiple of the house's electrical step ({} ms), found {}",
            cfg.electrical_step_us / 1000,
            a.sample_s
        )));
    }
    let name = cfg.name.clone();
    let seed = cfg.seed;
    let controller = match &a.controller {
        Some(p) => Some(firmware::config_file::load(p)?),
        None => None,
    };
    let with = if controller.is_some() {
        "firmware in the loop"
    } else {
        "fixed policy"
    };
    let trace = simulate_house(cfg, controller, a.hours, sample_us, a.real_time)?;
    let rows = trace.table.rows();
    trace.table.write_atomic(&a.out)?;
    eprintln!(
        "maslow twin house: {name} (seed {seed}, {with}): {:.4} h simulated in {:.3} s ({:.0}× real time); {rows} rows to {}",
        a.hours,
        trace.wall_s,
        a.hours * 3600.0 / trace.wall_s.max(1e-9),
        a.out.display()
    );
    if let Some(report) = &trace.pacing {
        eprintln!("maslow twin house: real time: {report}");
    }
    Ok(())
}

/// A house run's recorded signals.
pub struct HouseTrace {
    pub table: ColumnTable,
    pub wall_s: f64,
    /// Jitter and overruns, when the run was paced in real time.
    pub pacing: Option<PacerReport>,
}

/// Runs a house for `hours` as a rig session, sampling the default signals
/// (plus every circuit's power) every `sample_us`: with the house's own
/// policy or the firmware (`controller`) driving it directly; in virtual
/// time (as fast as it goes), or paced against the wall clock
/// (`real_time`).
pub fn simulate_house(
    cfg: HouseConfig,
    controller: Option<ControllerConfig>,
    hours: f64,
    sample_us: u64,
    real_time: bool,
) -> Result<HouseTrace> {
    let recording = Recording {
        sample_us: Some(sample_us),
        ..Recording::default()
    };
    let time = if real_time {
        TimeMode::Realtime
    } else {
        TimeMode::Lockstep
    };
    match controller {
        Some(c) => {
            let wake = WakePolicy::EveryTimeout;
            let session =
                direct::session(cfg, c, wake, recording, time).map_err(|e| bad(e.to_string()))?;
            record_house(session, hours)
        }
        None => {
            let plant = HousePlant::new(cfg, recording).map_err(|e| bad(e.to_string()))?;
            record_house(Session::new(plant, OwnPolicy, time), hours)
        }
    }
}

/// Runs `session` for `hours` and returns what its plant recorded.
fn record_house<C: ControllerSide<Plant = HousePlant>>(
    mut session: Session<C>,
    hours: f64,
) -> Result<HouseTrace> {
    let end = SimTime::from_secs_f64(hours * 3600.0);
    let started = Instant::now();
    session.run_until(end, |_| {})?;
    let wall_s = started.elapsed().as_secs_f64();
    let pacing = session.last_pacer_report().cloned();
    let plant = session.into_plant();
    let table = match plant.signals_table() {
        Some(t) if t.rows() > 0 => t,
        _ => bail!("the run recorded no rows"),
    };
    Ok(HouseTrace {
        table,
        wall_s,
        pacing,
    })
}
