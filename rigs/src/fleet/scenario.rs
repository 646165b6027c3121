//! The fleet scenario file (TOML, schema in `rigs/fleets/README.md`): the
//! feeders and their copies (branches), the households placed on their load
//! points, archetypes with seeded variation, branch requirements, the
//! server key and the fault schedule.
//!
//! [`FleetScenario::load`] reads and validates it; [`FleetScenario::households`]
//! expands it into the households of one branch, deterministically from the
//! seed, so the server and every shard derive the same fleet from the file.

use std::path::{Path, PathBuf};

use firmware::wire::config_message::{Setting, Settings, LOCAL_U32};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use twin::feeder::{DssModel, Network};
use twin::grid::Archetype;

/// Errors reading a fleet file: they name the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's message.
        message: String,
    },
    /// TOML syntax or an unknown/mistyped key.
    #[error("{file}: {message}")]
    Toml {
        /// The file.
        file: String,
        /// The parser's message (with line and key).
        message: String,
    },
    /// A value out of range or inconsistent.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The key (dotted path).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A referenced feeder, house or controller file did not load.
    #[error("{file}: `{key}`: {message}")]
    Reference {
        /// The fleet file.
        file: String,
        /// The key naming the referenced file.
        key: String,
        /// The referenced file's error.
        message: String,
    },
}

/// How households are placed on a feeder's load points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Household k on load point k mod n.
    #[default]
    RoundRobin,
    /// Each household on a load point drawn from the fleet's seed.
    Seeded,
}

/// A branch requirement the server serves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// Keep the branch transformer's active power at or below `cap_kw`
    /// from `from_h` to `to_h` (hours since the run's start).
    PeakCap {
        /// The cap, kW (sum over phases).
        cap_kw: f64,
        /// Window start, h since the start.
        from_h: f64,
        /// Window end, h since the start.
        to_h: f64,
    },
    /// Keep the branch's reverse power (export to the MV side) at or below
    /// `max_export_kw` from `from_h` to `to_h` by charging the assemblies.
    AbsorbExport {
        /// Export allowed through the transformer, kW (≥ 0).
        #[serde(default)]
        max_export_kw: f64,
        /// Window start, h since the start.
        from_h: f64,
        /// Window end, h since the start.
        to_h: f64,
    },
    /// Charge the branch's assemblies at `power_kw` (total) in
    /// `charge_from_h..charge_to_h` and discharge at `power_kw` in
    /// `discharge_from_h..discharge_to_h`.
    ShiftDemand {
        /// Total power asked of the branch, kW.
        power_kw: f64,
        /// Charge window start, h since the start.
        charge_from_h: f64,
        /// Charge window end, h.
        charge_to_h: f64,
        /// Discharge window start, h.
        discharge_from_h: f64,
        /// Discharge window end, h.
        discharge_to_h: f64,
    },
}

impl Requirement {
    /// The window(s) as minute ranges `[from, to)` of a run starting at
    /// clock hour `start_hour`.
    pub fn windows_min(&self, start_hour: f64) -> Vec<(u32, u32)> {
        let m = |h: f64| minute_of(h, start_hour);
        match self {
            Requirement::PeakCap { from_h, to_h, .. }
            | Requirement::AbsorbExport { from_h, to_h, .. } => vec![(m(*from_h), m(*to_h))],
            Requirement::ShiftDemand {
                charge_from_h,
                charge_to_h,
                discharge_from_h,
                discharge_to_h,
                ..
            } => vec![
                (m(*charge_from_h), m(*charge_to_h)),
                (m(*discharge_from_h), m(*discharge_to_h)),
            ],
        }
    }

    /// The window(s) in clock hours `(from, to)`.
    pub fn windows_h(&self) -> Vec<(f64, f64)> {
        match self {
            Requirement::PeakCap { from_h, to_h, .. }
            | Requirement::AbsorbExport { from_h, to_h, .. } => vec![(*from_h, *to_h)],
            Requirement::ShiftDemand {
                charge_from_h,
                charge_to_h,
                discharge_from_h,
                discharge_to_h,
                ..
            } => vec![
                (*charge_from_h, *charge_to_h),
                (*discharge_from_h, *discharge_to_h),
            ],
        }
    }

    /// Short name: `peak_cap`, `absorb_export`, `shift_demand`.
    pub fn kind(&self) -> &'static str {
        match self {
            Requirement::PeakCap { .. } => "peak_cap",
            Requirement::AbsorbExport { .. } => "absorb_export",
            Requirement::ShiftDemand { .. } => "shift_demand",
        }
    }

    /// Whether minute `m` of a run starting at `start_hour` lies in one of
    /// its windows.
    pub fn active_at(&self, m: u32, start_hour: f64) -> bool {
        self.windows_min(start_hour)
            .iter()
            .any(|(a, b)| m >= *a && m < *b)
    }
}

/// The run minute of clock hour `h` (hours from the start date's local
/// midnight) in a run starting at `start_hour`; 0 before the start.
pub fn minute_of(h: f64, start_hour: f64) -> u32 {
    ((h - start_hour) * 60.0)
        .round()
        .clamp(0.0, f64::from(u32::MAX)) as u32
}

/// An inclusive-exclusive pair `[lo, hi]` drawn uniformly.
type Range2 = [f64; 2];

/// A household archetype with seeded variation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchetypeSpec {
    /// Name (for reports).
    pub name: String,
    /// Relative weight among archetypes.
    #[serde(default = "one")]
    pub weight: f64,
    /// The AC demand archetype (`family`, `single_occupant`,
    /// `retired_couple`, `home_office`).
    pub demand: Archetype,
    /// Mean daily AC energy range, kWh (drawn per household); none: the
    /// archetype's own.
    #[serde(default)]
    pub daily_energy_kwh: Option<Range2>,
    /// Share of these households with a battery assembly, 0..1.
    #[serde(default = "one")]
    pub assembly_share: f64,
    /// PV strings of 4 × 400 W modules (1.6 kWp each), drawn uniformly
    /// in `[lo, hi]` (integers; 0 = no PV). Only households with an assembly
    /// have PV.
    #[serde(default = "default_pv_strings")]
    pub pv_strings: [u32; 2],
    /// Packs in parallel (5.12 kWh each), drawn in `[lo, hi]`.
    #[serde(default = "default_packs")]
    pub packs: [u32; 2],
    /// Initial SOC range.
    #[serde(default = "default_initial_soc")]
    pub initial_soc: Range2,
    /// Export allowed to the grid, W (house inverter and controller);
    /// none: the templates' (zero export).
    #[serde(default)]
    pub export_limit_w: Option<f64>,
}

fn one() -> f64 {
    1.0
}
fn default_pv_strings() -> [u32; 2] {
    [2, 2]
}
fn default_packs() -> [u32; 2] {
    [1, 1]
}
fn default_initial_soc() -> Range2 {
    [0.6, 0.6]
}

/// One feeder line of the file: a network, its copies and households.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeederSpec {
    /// Name; default: the network file's directory name.
    #[serde(default)]
    pub name: Option<String>,
    /// The OpenDSS script (relative to the fleet file).
    pub network: String,
    /// How many copies (branches) of it, each with its own branch id.
    #[serde(default = "one_u32")]
    pub copies: u32,
    /// Households per copy.
    pub households: u32,
    /// How households are spread over the load points.
    #[serde(default)]
    pub placement: Placement,
    /// Cap on the change of the branch's total dispatched power from one
    /// minute to the next, W.
    #[serde(default = "default_max_step_w")]
    pub max_step_w: f64,
    /// Requirements on each copy.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
}

/// A remote setting's value in a fleet file: a number (or `true`/`false`),
/// or `"local"` (back to the assembly's own configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue<T> {
    /// This value.
    Value(T),
    /// A keyword: only `"local"` is valid (checked on load).
    Keyword(String),
}

/// A change of the assemblies' remote settings: at `at_h` the server signs
/// one configuration message (`firmware/docs/config-message.md`) per
/// assembly of the branch. Settings left out stay as they are. Values are
/// not checked against the assemblies' bounds here: the assemblies do that
/// (a value outside `[cluster.remote_config]` or the envelope is rejected
/// as `out_of_envelope`, and the report counts it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// When, clock hours from the start date's midnight.
    pub at_h: f64,
    /// The branches whose assemblies get it (default: every branch).
    #[serde(default)]
    pub branches: Vec<u32>,
    /// Take part in dispatch.
    #[serde(default)]
    pub participating: Option<SettingValue<bool>>,
    /// Reserve state of charge, fraction 0..=1 (sent in per-mille).
    #[serde(default)]
    pub reserve_soc: Option<SettingValue<f64>>,
    /// Export limit at the connection point, W.
    #[serde(default)]
    pub export_limit_w: Option<SettingValue<f64>>,
    /// Largest sink (charge) power a dispatch may ask for, W.
    #[serde(default)]
    pub max_sink_w: Option<SettingValue<f64>>,
    /// Largest source (discharge) power a dispatch may ask for, W.
    #[serde(default)]
    pub max_source_w: Option<SettingValue<f64>>,
    /// Largest randomised start delay, s.
    #[serde(default)]
    pub start_delay_max_s: Option<SettingValue<u32>>,
}

impl SettingsChange {
    /// The settings in the message's wire units. Errors name the key.
    pub fn to_settings(&self) -> Result<Settings, String> {
        fn keyword<T>(key: &str, v: &Option<SettingValue<T>>) -> Result<(), String> {
            match v {
                Some(SettingValue::Keyword(k)) if k != "local" => {
                    Err(format!("`{key}`: give a value or \"local\", found \"{k}\""))
                }
                _ => Ok(()),
            }
        }
        fn watts(key: &str, v: &Option<SettingValue<f64>>) -> Result<Setting<u32>, String> {
            keyword(key, v)?;
            Ok(match v {
                None => Setting::Unchanged,
                Some(SettingValue::Keyword(_)) => Setting::Local,
                Some(SettingValue::Value(w)) => {
                    if !(w.is_finite() && *w >= 0.0 && *w <= 1.0e9) {
                        return Err(format!("`{key}`: give 0..=1e9 W, found {w}"));
                    }
                    Setting::Set(w.round() as u32)
                }
            })
        }
        keyword("participating", &self.participating)?;
        keyword("reserve_soc", &self.reserve_soc)?;
        keyword("start_delay_max_s", &self.start_delay_max_s)?;
        let participating = match &self.participating {
            None => Setting::Unchanged,
            Some(SettingValue::Keyword(_)) => Setting::Local,
            Some(SettingValue::Value(p)) => Setting::Set(*p),
        };
        let reserve_soc_permille = match &self.reserve_soc {
            None => Setting::Unchanged,
            Some(SettingValue::Keyword(_)) => Setting::Local,
            Some(SettingValue::Value(soc)) => {
                if !(0.0..=1.0).contains(soc) {
                    return Err(format!("`reserve_soc`: give 0..=1, found {soc}"));
                }
                Setting::Set((soc * 1000.0).round() as u16)
            }
        };
        let start_delay_max_s = match &self.start_delay_max_s {
            None => Setting::Unchanged,
            Some(SettingValue::Keyword(_)) => Setting::Local,
            Some(SettingValue::Value(s)) if *s >= LOCAL_U32 => {
                return Err(format!("`start_delay_max_s`: too large ({s} s)"));
            }
            Some(SettingValue::Value(s)) => Setting::Set(*s),
        };
        let settings = Settings {
            participating,
            reserve_soc_permille,
            export_limit_w: watts("export_limit_w", &self.export_limit_w)?,
            max_sink_w: watts("max_sink_w", &self.max_sink_w)?,
            max_source_w: watts("max_source_w", &self.max_source_w)?,
            start_delay_max_s,
        };
        if settings == Settings::default() {
            return Err("sets nothing: give at least one setting".into());
        }
        Ok(settings)
    }
}

fn one_u32() -> u32 {
    1
}
fn default_max_step_w() -> f64 {
    20_000.0
}

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Seed of the server's Ed25519 key (the 32 key bytes are drawn from it).
    #[serde(default = "default_key_seed")]
    pub key_seed: u64,
    /// How long a per-site dispatch lasts from its issue, s (re-issued
    /// before it ends while needed; lapses when the server goes silent).
    #[serde(default = "default_dispatch_s")]
    pub dispatch_duration_s: u32,
    /// Validity of a message after its issue, s.
    #[serde(default = "default_validity_s")]
    pub validity_s: u64,
    /// A site's command is re-issued when it would change by more than
    /// this, W, or by more than `deadband_rel` of itself.
    #[serde(default = "default_deadband_w")]
    pub deadband_w: f64,
    /// Relative deadband (0.1: 10 % of the command in force).
    #[serde(default = "default_deadband_rel")]
    pub deadband_rel: f64,
    /// Closed-loop gain on the branch error (per minute).
    #[serde(default = "default_gain")]
    pub gain: f64,
    /// Aim this fraction inside a peak cap (0.05: 5 % below it).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Aim this much import above an export limit, kW.
    #[serde(default = "default_export_margin_kw")]
    pub export_margin_kw: f64,
    /// The server sends every branch a signed heartbeat this often, s
    /// (whole minutes; 0: never — the assemblies then never count it silent).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u32,
    /// The assemblies' `[cluster] server_silence_s`: after a heartbeat, how
    /// long the server may stay silent before they withdraw to local
    /// operation, s (10..=86400).
    #[serde(default = "default_assembly_silence_s")]
    pub assembly_silence_s: u32,
    /// The assemblies' `[cluster.envelope] start_delay_max_s`: a seeded
    /// random delay before each follows a new dispatch, s.
    #[serde(default)]
    pub start_delay_max_s: u32,
}

fn default_heartbeat_s() -> u32 {
    60
}
fn default_assembly_silence_s() -> u32 {
    180
}

fn default_export_margin_kw() -> f64 {
    1.0
}

fn default_key_seed() -> u64 {
    1
}
fn default_dispatch_s() -> u32 {
    300
}
fn default_validity_s() -> u64 {
    120
}
fn default_deadband_w() -> f64 {
    50.0
}
fn default_deadband_rel() -> f64 {
    0.1
}
fn default_gain() -> f64 {
    0.8
}
fn default_margin() -> f64 {
    0.05
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            key_seed: default_key_seed(),
            dispatch_duration_s: default_dispatch_s(),
            validity_s: default_validity_s(),
            deadband_w: default_deadband_w(),
            deadband_rel: default_deadband_rel(),
            gain: default_gain(),
            margin: default_margin(),
            export_margin_kw: default_export_margin_kw(),
            heartbeat_s: default_heartbeat_s(),
            assembly_silence_s: default_assembly_silence_s(),
            start_delay_max_s: 0,
        }
    }
}

/// A window of server silence.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilentSpec {
    /// Start, local clock hours (e.g. 20.5 = 20:30).
    pub from_h: f64,
    /// End, h.
    pub to_h: f64,
}

/// Assemblies dropping out (powered down, uplink lost) at a time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    /// When, local clock hours.
    pub at_h: f64,
    /// Branch.
    pub branch: u32,
    /// How many assemblies (the first by site id).
    pub count: u32,
}

/// What an attacker injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// A dispatch with the server's key id but signed by another key.
    Forged,
    /// A copy of the last dispatch the branch accepted, sent again.
    Replay,
}

/// An attacker's message on a branch topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// When, local clock hours.
    pub at_h: f64,
    /// Branch.
    pub branch: u32,
    /// Forged or replayed.
    pub kind: AttackKind,
}

/// The fault schedule.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Seed of the message faults.
    #[serde(default)]
    pub seed: u64,
    /// Probability that a server → site message is lost.
    #[serde(default)]
    pub message_drop_probability: f64,
    /// Probability that it arrives one minute late.
    #[serde(default)]
    pub message_delay_probability: f64,
    /// Probability that it is delivered twice.
    #[serde(default)]
    pub message_duplicate_probability: f64,
    /// Windows in which the server sends nothing.
    #[serde(default)]
    pub server_silent: Vec<SilentSpec>,
    /// Assemblies dropping out.
    #[serde(default)]
    pub dropouts: Vec<DropoutSpec>,
    /// Forged or replayed messages.
    #[serde(default)]
    pub attacks: Vec<AttackSpec>,
}

/// The house and controller files every household starts from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// House file (relative to the fleet file).
    pub house: String,
    /// Controller file (relative to the fleet file).
    pub controller: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    name: String,
    seed: u64,
    start_date: String,
    #[serde(default)]
    utc_offset_h: f64,
    #[serde(default)]
    start_hour: f64,
    duration_h: f64,
    #[serde(default = "default_step_ms")]
    electrical_step_ms: u64,
    template: TemplateSpec,
    #[serde(default)]
    server: ServerSpec,
    archetypes: Vec<ArchetypeSpec>,
    feeders: Vec<FeederSpec>,
    #[serde(default)]
    faults: FaultSpec,
    #[serde(default)]
    settings: Vec<SettingsChange>,
}

fn default_step_ms() -> u64 {
    10_000
}

/// A loaded feeder: the parsed script and the solvable network.
#[derive(Debug, Clone)]
pub struct LoadedFeeder {
    /// The spec.
    pub spec: FeederSpec,
    /// Its name.
    pub name: String,
    /// The parsed script (load points with their bus and phases).
    pub model: DssModel,
    /// The network (cloned per branch).
    pub network: Network,
    /// The transformer's rating, kVA (0 without one).
    pub rated_kva: f64,
}

/// One branch: a copy of a feeder.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchSpec {
    /// Branch id (1-based, in file order of feeders and copies).
    pub branch_id: u32,
    /// Index into [`FleetScenario::feeders`].
    pub feeder: usize,
    /// Which copy.
    pub copy: u32,
}

/// One household as the scenario places it.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseholdSpec {
    /// Site id: `branch_id * 10000 + index + 1`.
    pub site_id: u32,
    /// Branch.
    pub branch_id: u32,
    /// Load point index in the feeder's network.
    pub load: usize,
    /// The load point's bus.
    pub bus: String,
    /// Phase 1..=3.
    pub phase: u8,
    /// Archetype index.
    pub archetype: usize,
    /// AC demand archetype.
    pub demand: Archetype,
    /// Daily AC energy, kWh (None: the archetype's).
    pub daily_energy_kwh: Option<f64>,
    /// Whether it has a battery assembly.
    pub assembly: bool,
    /// PV strings (0: no PV).
    pub pv_strings: u32,
    /// Packs in parallel.
    pub packs: u32,
    /// Initial SOC.
    pub initial_soc: f64,
    /// Seed of its house twin.
    pub seed: u64,
    /// Export allowed, W (None: the templates').
    pub export_limit_w: Option<f64>,
}

/// A validated fleet scenario.
#[derive(Debug, Clone)]
pub struct FleetScenario {
    /// Name.
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// Master seed.
    pub seed: u64,
    /// Where the run's start sits in UTC and local time.
    pub calendar: twin::time::Calendar,
    /// Local clock hour of the run's start on the start date (windows and
    /// fault times are clock hours from the start date's local midnight).
    pub start_hour: f64,
    /// Length, minutes.
    pub duration_min: u32,
    /// Plant step, ms (divides 60 000).
    pub electrical_step_ms: u64,
    /// Template files, resolved.
    pub house_path: PathBuf,
    /// Controller template, resolved.
    pub controller_path: PathBuf,
    /// The house template.
    pub house: twin::house::HouseConfig,
    /// The controller template.
    pub controller: firmware::ControllerConfig,
    /// Server settings.
    pub server: ServerSpec,
    /// Archetypes.
    pub archetypes: Vec<ArchetypeSpec>,
    /// Feeders.
    pub feeders: Vec<LoadedFeeder>,
    /// Branches, by branch id order.
    pub branches: Vec<BranchSpec>,
    /// Faults.
    pub faults: FaultSpec,
    /// The server's configuration changes (`[[settings]]`).
    pub settings: Vec<SettingsChange>,
    /// Requirements on one branch alone (not from the fleet file: a
    /// scenario's `Given branch N must stay below …`), after its feeder's.
    pub branch_requirements: Vec<(u32, Requirement)>,
    /// A saboteur in every assembly (not from the fleet file: the rig's,
    /// or `--sabotage`).
    pub sabotage: Option<crate::sabotage::Saboteur>,
}

/// Mixes a seed with a stream id (splitmix64), for independent streams.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FleetScenario {
    /// Reads and validates a fleet file and the files it references.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses fleet TOML that came from `path` (references are relative to it).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let f: FleetFile = toml::from_str(text).map_err(|e| ScenarioError::Toml {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, message: String| ScenarioError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let reference = |key: &str, message: String| ScenarioError::Reference {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let mut calendar =
            parse_start(&f.start_date, f.utc_offset_h).map_err(|m| invalid("start_date", m))?;
        if !(0.0..24.0).contains(&f.start_hour) || (f.start_hour * 60.0).fract() != 0.0 {
            return Err(invalid(
                "start_hour",
                format!(
                    "must be a whole minute within 0..24, found {}",
                    f.start_hour
                ),
            ));
        }
        calendar.epoch_unix_s += (f.start_hour * 3600.0).round() as i64;
        if !(f.duration_h.is_finite() && f.duration_h > 0.0 && f.duration_h <= 24.0 * 366.0) {
            return Err(invalid(
                "duration_h",
                format!("must be > 0 and at most a year, found {}", f.duration_h),
            ));
        }
        if f.electrical_step_ms == 0 || 60_000 % f.electrical_step_ms != 0 {
            return Err(invalid(
                "electrical_step_ms",
                format!(
                    "must divide a minute (60000 ms), found {}",
                    f.electrical_step_ms
                ),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let house_path = dir.join(&f.template.house);
        let controller_path = dir.join(&f.template.controller);
        let house = twin::house::HouseConfig::load(&house_path)
            .map_err(|e| reference("template.house", e.to_string()))?;
        let controller = firmware::config_file::load(&controller_path)
            .map_err(|e| reference("template.controller", e.to_string()))?;
        if f.archetypes.is_empty() {
            return Err(invalid("archetypes", "give at least one archetype".into()));
        }
        for (i, a) in f.archetypes.iter().enumerate() {
            let k = |s: &str| format!("archetypes[{i}].{s}");
            if !(a.weight.is_finite() && a.weight > 0.0) {
                return Err(invalid(
                    &k("weight"),
                    format!("must be > 0, found {}", a.weight),
                ));
            }
            if !(0.0..=1.0).contains(&a.assembly_share) {
                return Err(invalid(
                    &k("assembly_share"),
                    format!("must be within 0..=1, found {}", a.assembly_share),
                ));
            }
            if a.pv_strings[0] > a.pv_strings[1] || a.pv_strings[1] > 4 {
                return Err(invalid(
                    &k("pv_strings"),
                    format!(
                        "must be [lo, hi] with lo <= hi <= 4, found {:?}",
                        a.pv_strings
                    ),
                ));
            }
            if a.packs[0] == 0 || a.packs[0] > a.packs[1] || a.packs[1] > 4 {
                return Err(invalid(
                    &k("packs"),
                    format!(
                        "must be [lo, hi] with 1 <= lo <= hi <= 4, found {:?}",
                        a.packs
                    ),
                ));
            }
            let s = a.initial_soc;
            if !(0.0..=1.0).contains(&s[0]) || !(0.0..=1.0).contains(&s[1]) || s[0] > s[1] {
                return Err(invalid(
                    &k("initial_soc"),
                    format!("must be [lo, hi] within 0..=1, found {s:?}"),
                ));
            }
            if let Some(x) = a.export_limit_w {
                if !(x.is_finite() && x >= 0.0) {
                    return Err(invalid(
                        &k("export_limit_w"),
                        format!("must be a power >= 0 W, found {x}"),
                    ));
                }
            }
            if let Some(e) = a.daily_energy_kwh {
                if !(e[0] > 0.0 && e[0] <= e[1] && e[1].is_finite()) {
                    return Err(invalid(
                        &k("daily_energy_kwh"),
                        format!("must be [lo, hi] with 0 < lo <= hi, found {e:?}"),
                    ));
                }
            }
        }
        if f.feeders.is_empty() {
            return Err(invalid("feeders", "give at least one feeder".into()));
        }
        let mut feeders = Vec::new();
        let mut branches = Vec::new();
        for (i, spec) in f.feeders.iter().enumerate() {
            let k = |s: &str| format!("feeders[{i}].{s}");
            let net_path = dir.join(&spec.network);
            let model = twin::feeder::parse_file(&net_path)
                .map_err(|e| reference(&k("network"), e.to_string()))?;
            let network =
                Network::from_dss(&model).map_err(|e| reference(&k("network"), e.to_string()))?;
            if model.loads.is_empty() {
                return Err(invalid(
                    &k("network"),
                    "the network has no Load elements to place households on".into(),
                ));
            }
            if spec.copies == 0 || spec.households == 0 || spec.households > 9999 {
                return Err(invalid(
                    &k("households"),
                    format!(
                        "copies must be >= 1 and households within 1..=9999, found copies {} households {}",
                        spec.copies, spec.households
                    ),
                ));
            }
            if !(spec.max_step_w.is_finite() && spec.max_step_w > 0.0) {
                return Err(invalid(
                    &k("max_step_w"),
                    format!("must be > 0 W, found {}", spec.max_step_w),
                ));
            }
            for (j, r) in spec.requirements.iter().enumerate() {
                let rk = k(&format!("requirements[{j}]"));
                for (a, b) in r.windows_h() {
                    if !(a.is_finite() && b.is_finite() && a >= 0.0 && a < b) {
                        return Err(invalid(
                            &rk,
                            format!("window {a} h to {b} h: give 0 <= from < to"),
                        ));
                    }
                }
                let p = match r {
                    Requirement::PeakCap { cap_kw, .. } => *cap_kw,
                    Requirement::AbsorbExport { max_export_kw, .. } => *max_export_kw,
                    Requirement::ShiftDemand { power_kw, .. } => *power_kw,
                };
                if !(p.is_finite() && p >= 0.0) {
                    return Err(invalid(
                        &rk,
                        format!("power must be finite and >= 0, found {p}"),
                    ));
                }
            }
            let name = spec.name.clone().unwrap_or_else(|| {
                net_path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("feeder{i}"))
            });
            let rated_kva = model.transformers.first().map(|t| t.kvas[1]).unwrap_or(0.0);
            for copy in 0..spec.copies {
                let branch_id = branches.len() as u32 + 1;
                branches.push(BranchSpec {
                    branch_id,
                    feeder: i,
                    copy,
                });
            }
            feeders.push(LoadedFeeder {
                spec: spec.clone(),
                name,
                model,
                network,
                rated_kva,
            });
        }
        if branches.len() > 400_000 {
            return Err(invalid("feeders", "too many branches".into()));
        }
        let fs = &f.faults;
        for (k, p) in [
            (
                "faults.message_drop_probability",
                fs.message_drop_probability,
            ),
            (
                "faults.message_delay_probability",
                fs.message_delay_probability,
            ),
            (
                "faults.message_duplicate_probability",
                fs.message_duplicate_probability,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(invalid(k, format!("must be within 0..=1, found {p}")));
            }
        }
        for (i, d) in fs.dropouts.iter().enumerate() {
            if d.branch == 0 || d.branch as usize > branches.len() {
                return Err(invalid(
                    &format!("faults.dropouts[{i}].branch"),
                    format!("no branch {} (1..={})", d.branch, branches.len()),
                ));
            }
        }
        for (j, c) in f.settings.iter().enumerate() {
            let ck = format!("settings[{j}]");
            if !(c.at_h.is_finite() && c.at_h >= 0.0) {
                return Err(invalid(
                    &ck,
                    format!("`at_h` must be >= 0, found {}", c.at_h),
                ));
            }
            if let Some(b) = c
                .branches
                .iter()
                .find(|b| **b == 0 || **b as usize > branches.len())
            {
                return Err(invalid(
                    &format!("{ck}.branches"),
                    format!("no branch {b} (1..={})", branches.len()),
                ));
            }
            c.to_settings().map_err(|m| invalid(&ck, m))?;
        }
        for (i, d) in fs.attacks.iter().enumerate() {
            if d.branch == 0 || d.branch as usize > branches.len() {
                return Err(invalid(
                    &format!("faults.attacks[{i}].branch"),
                    format!("no branch {} (1..={})", d.branch, branches.len()),
                ));
            }
        }
        let s = &f.server;
        let gain_ok = s.gain > 0.0 && s.gain <= 1.5;
        let margins_ok = (0.0..0.5).contains(&s.margin)
            && s.export_margin_kw.is_finite()
            && s.export_margin_kw >= 0.0;
        let deadband_ok =
            (0.0..1.0).contains(&s.deadband_rel) && s.deadband_w.is_finite() && s.deadband_w >= 0.0;
        if !(gain_ok && margins_ok && deadband_ok) {
            return Err(invalid(
                "server",
                format!(
                    "gain must be in (0, 1.5], margin in [0, 0.5), export_margin_kw and deadband_w >= 0, deadband_rel in [0, 1); found gain {} margin {}",
                    s.gain, s.margin
                ),
            ));
        }
        if !s.heartbeat_s.is_multiple_of(60) || !(10..=86_400).contains(&s.assembly_silence_s) {
            return Err(invalid(
                "server",
                format!(
                    "heartbeat_s must be whole minutes (0: none) and assembly_silence_s within 10..=86400, found {} and {}",
                    s.heartbeat_s, s.assembly_silence_s
                ),
            ));
        }
        if s.dispatch_duration_s < 120 || s.validity_s < 60 {
            return Err(invalid(
                "server",
                "dispatch_duration_s must be >= 120 and validity_s >= 60".into(),
            ));
        }
        Ok(FleetScenario {
            name: f.name,
            source: path.to_path_buf(),
            seed: f.seed,
            calendar,
            start_hour: f.start_hour,
            duration_min: (f.duration_h * 60.0).round() as u32,
            electrical_step_ms: f.electrical_step_ms,
            house_path,
            controller_path,
            house,
            controller,
            server: f.server,
            archetypes: f.archetypes,
            feeders,
            branches,
            faults: f.faults,
            settings: f.settings,
            branch_requirements: Vec::new(),
            sabotage: None,
        })
    }

    /// The requirements the server serves on branch `branch_id`: its
    /// feeder's, then those set on the branch alone.
    pub fn requirements_of(&self, branch_id: u32) -> Vec<Requirement> {
        let feeder = self
            .feeder_of(branch_id)
            .map(|f| f.spec.requirements.clone())
            .unwrap_or_default();
        let own = self
            .branch_requirements
            .iter()
            .filter(|(b, _)| *b == branch_id)
            .map(|(_, r)| r.clone());
        feeder.into_iter().chain(own).collect()
    }

    /// Overrides the seed (the `--seed` option).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Overrides the duration (the `--hours` option).
    pub fn with_hours(mut self, hours: f64) -> Self {
        self.duration_min = (hours * 60.0).round().max(1.0) as u32;
        self
    }

    /// A branch by id.
    pub fn branch(&self, branch_id: u32) -> Option<&BranchSpec> {
        branch_id
            .checked_sub(1)
            .and_then(|i| self.branches.get(i as usize))
    }

    /// The feeder of a branch.
    pub fn feeder_of(&self, branch_id: u32) -> Option<&LoadedFeeder> {
        self.branch(branch_id)
            .and_then(|b| self.feeders.get(b.feeder))
    }

    /// The households of a branch, deterministic from the seed.
    pub fn households(&self, branch_id: u32) -> Vec<HouseholdSpec> {
        let Some(feeder) = self.feeder_of(branch_id) else {
            return Vec::new();
        };
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, u64::from(branch_id)));
        let loads = &feeder.model.loads;
        let total_w: f64 = self.archetypes.iter().map(|a| a.weight).sum();
        let mut out = Vec::new();
        for k in 0..feeder.spec.households {
            let load = match feeder.spec.placement {
                Placement::RoundRobin => k as usize % loads.len(),
                Placement::Seeded => rng.gen_range(0..loads.len()),
            };
            let l = &loads[load];
            let phases: Vec<u8> = (0..3u8).filter(|p| l.phases[*p as usize]).collect();
            let phase = phases
                .get(k as usize / loads.len() % phases.len().max(1))
                .copied()
                .unwrap_or(0)
                + 1;
            let mut pick = rng.gen::<f64>() * total_w;
            let mut archetype = self.archetypes.len() - 1;
            for (i, a) in self.archetypes.iter().enumerate() {
                if pick < a.weight {
                    archetype = i;
                    break;
                }
                pick -= a.weight;
            }
            let a = &self.archetypes[archetype];
            let assembly = rng.gen::<f64>() < a.assembly_share;
            let pv_strings = rng.gen_range(a.pv_strings[0]..=a.pv_strings[1]);
            let packs = rng.gen_range(a.packs[0]..=a.packs[1]);
            let u: f64 = rng.gen();
            let initial_soc = a.initial_soc[0] + u * (a.initial_soc[1] - a.initial_soc[0]);
            let e: f64 = rng.gen();
            let daily_energy_kwh = a.daily_energy_kwh.map(|r| r[0] + e * (r[1] - r[0]));
            let site_id = branch_id * 10_000 + k + 1;
            out.push(HouseholdSpec {
                site_id,
                branch_id,
                load,
                bus: l.bus.clone(),
                phase,
                archetype,
                demand: a.demand,
                daily_energy_kwh,
                assembly,
                pv_strings: if assembly { pv_strings } else { 0 },
                packs,
                initial_soc,
                seed: mix(self.seed, u64::from(site_id) << 8),
                export_limit_w: a.export_limit_w,
            });
        }
        out
    }

    /// Ids of every branch.
    pub fn branch_ids(&self) -> Vec<u32> {
        self.branches.iter().map(|b| b.branch_id).collect()
    }

    /// The server's Ed25519 signing key, from `server.key_seed`.
    pub fn server_key(&self) -> ed25519_dalek::SigningKey {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.server.key_seed, 0x6b6579));
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        ed25519_dalek::SigningKey::from_bytes(&bytes)
    }

    /// The run minute of clock hour `h`.
    pub fn minute_of(&self, h: f64) -> u32 {
        minute_of(h, self.start_hour)
    }

    /// Local clock time `HH:MM` of run minute `m`, with ` on day N` past
    /// the start date (day 1), as the steps write a later day.
    pub fn clock(&self, minute: u32) -> String {
        let m = (self.start_hour * 60.0).round() as u64 + u64::from(minute);
        let day = m / (24 * 60) + 1;
        let hhmm = format!("{:02}:{:02}", m / 60 % 24, m % 60);
        if day == 1 {
            hhmm
        } else {
            format!("{hhmm} on day {day}")
        }
    }

    /// UTC seconds at the start of minute `m`.
    pub fn utc_s_at(&self, minute: u32) -> u64 {
        (self.calendar.epoch_unix_s + i64::from(minute) * 60).max(0) as u64
    }
}

/// `YYYY-MM-DD` (local midnight) and the offset → calendar.
fn parse_start(date: &str, utc_offset_h: f64) -> Result<twin::time::Calendar, String> {
    let bad = || format!("expected YYYY-MM-DD, found {date:?}");
    let mut it = date.split('-');
    let y: i64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let m: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let d: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    if !(utc_offset_h.is_finite() && utc_offset_h.abs() <= 14.0) {
        return Err(format!(
            "utc_offset_h must be within ±14 h, found {utc_offset_h}"
        ));
    }
    let days = twin::time::days_from_civil(y, m, d);
    let epoch = days * 86_400 - (utc_offset_h * 3600.0).round() as i64;
    Ok(twin::time::Calendar::new(epoch, utc_offset_h))
}

/// The default for a `PathBuf` key in error messages.
pub fn display(p: &Path) -> String {
    p.display().to_string()
}
