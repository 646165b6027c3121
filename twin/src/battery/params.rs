//! Battery parameter files: the TOML schema (see `twin/params/README.md`),
//! loading, and validation into typed [`CellParams`] / [`PackParams`].
//!
//! The file structs (`*File`) mirror the TOML one to one and reject unknown
//! keys; the typed structs are what the models take. Every error names the
//! file, and where it can the line and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ageing::AgeingParams;
use super::thermal::ThermalParams;
use crate::interp::{Axis, MultiTable};
use crate::params::{load_numeric_csv, parse_toml, read_text, resolve_relative, ParamError};

/// Maximum number of RC pairs a cell may have (the state is a fixed array so
/// that the pack's hot loop does not chase pointers).
pub const MAX_RC: usize = 6;

// ---------------------------------------------------------------- file schema

/// A lookup table as written in a parameter file: exactly one of
/// - `value = 0.001` (a constant),
/// - `file = "tables/r0.csv", column = "r0_ohm"` (a long-format CSV: one
///   row per grid node, axis columns named `soc`, `temperature_c`,
///   `current_a`, `ocv_v`; `axes` may list them explicitly),
/// - inline over one axis: `soc = [..], values = [..]` (or `temperature_c`,
///   `current_a`, `ocv_v` instead of `soc`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub value: Option<f64>,
    pub file: Option<String>,
    pub column: Option<String>,
    pub axes: Option<Vec<String>>,
    pub soc: Option<Vec<f64>>,
    pub temperature_c: Option<Vec<f64>>,
    pub current_a: Option<Vec<f64>>,
    pub ocv_v: Option<Vec<f64>>,
    pub values: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcFile {
    pub r: TableSpec,
    pub c: TableSpec,
    #[serde(default)]
    pub initial_v: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalFile {
    pub cell_heat_capacity_j_per_k: f64,
    pub jig_heat_capacity_j_per_k: f64,
    pub cell_jig_conductance_w_per_k: f64,
    pub jig_air_conductance_w_per_k: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeingFile {
    #[serde(default = "default_ref_t")]
    pub reference_temperature_c: f64,
    #[serde(default = "default_update")]
    pub update_interval_s: f64,
    pub calendar_capacity_fade_per_sqrt_day: f64,
    pub calendar_resistance_growth_per_sqrt_day: f64,
    pub calendar_activation_energy_j_per_mol: f64,
    /// SOC stress factor for calendar ageing: breakpoints and factors.
    pub calendar_soc_stress_soc: Vec<f64>,
    pub calendar_soc_stress: Vec<f64>,
    pub cycle_capacity_fade_per_efc: f64,
    pub cycle_resistance_growth_per_efc: f64,
    pub cycle_activation_energy_j_per_mol: f64,
    #[serde(default = "default_dod_ref")]
    pub cycle_dod_reference: f64,
    #[serde(default = "one")]
    pub cycle_dod_exponent: f64,
    #[serde(default = "one")]
    pub cycle_c_rate_reference: f64,
    #[serde(default)]
    pub cycle_c_rate_coefficient: f64,
}

fn default_ref_t() -> f64 {
    25.0
}
fn default_update() -> f64 {
    60.0
}
fn default_dod_ref() -> f64 {
    1.0
}
fn one() -> f64 {
    1.0
}

/// A cell parameter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellFile {
    /// `"ecm"` if present (an SPMe file says `"spme"`; see
    /// [`load_battery_params`]).
    #[serde(default)]
    pub model: Option<String>,
    pub name: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub chemistry: Option<String>,
    pub capacity_ah: f64,
    #[serde(default)]
    pub nominal_capacity_ah: Option<f64>,
    pub voltage_min_v: f64,
    pub voltage_max_v: f64,
    #[serde(default = "default_tmax")]
    pub temperature_max_c: f64,
    #[serde(default = "default_tmin")]
    pub temperature_min_c: f64,
    pub ocv: TableSpec,
    pub r0: TableSpec,
    #[serde(default)]
    pub rc: Vec<RcFile>,
    #[serde(default)]
    pub entropic: Option<TableSpec>,
    pub thermal: ThermalFile,
    #[serde(default)]
    pub ageing: Option<AgeingFile>,
}

fn default_tmax() -> f64 {
    60.0
}
fn default_tmin() -> f64 {
    -20.0
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SpreadFile {
    #[serde(default)]
    pub capacity_rel_sd: f64,
    #[serde(default)]
    pub resistance_rel_sd: f64,
    #[serde(default)]
    pub initial_soc_sd: f64,
}

/// A pack parameter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// `"ecm"` (default) or `"spme"`: the model of the cells; the cell file
    /// must say the same (see [`load_battery_pack_params`]).
    #[serde(default)]
    pub model: Option<String>,
    pub name: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Path of the cell file, relative to the pack file.
    pub cell: String,
    pub series: usize,
    pub parallel: usize,
    #[serde(default)]
    pub spread: SpreadFile,
}

// ---------------------------------------------------------------- typed params

/// The variables a table may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisKind {
    Soc,
    TemperatureC,
    CurrentA,
    OcvV,
}

impl AxisKind {
    pub fn name(self) -> &'static str {
        match self {
            AxisKind::Soc => "soc",
            AxisKind::TemperatureC => "temperature_c",
            AxisKind::CurrentA => "current_a",
            AxisKind::OcvV => "ocv_v",
        }
    }
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "soc" => AxisKind::Soc,
            "temperature_c" => AxisKind::TemperatureC,
            "current_a" => AxisKind::CurrentA,
            "ocv_v" => AxisKind::OcvV,
            _ => return None,
        })
    }
}

/// A validated parameter table over up to three of the [`AxisKind`]s,
/// multilinear and clamped at the ends.
#[derive(Debug, Clone)]
pub struct ParamTable {
    /// The axes in the order `(a0, a1, a2)` of `table` (unused ones have one point).
    pub kinds: Vec<AxisKind>,
    table: MultiTable,
}

impl ParamTable {
    /// A constant.
    pub fn constant(v: f64) -> Self {
        Self::from_grid(vec![], vec![], vec![v]).expect("a finite constant")
    }

    /// A table over the given axes; `values` in C order (first axis slowest).
    pub fn from_grid(
        kinds: Vec<AxisKind>,
        axes: Vec<Vec<f64>>,
        values: Vec<f64>,
    ) -> Result<Self, String> {
        assert!(kinds.len() == axes.len() && kinds.len() <= 3);
        let mut built: Vec<Axis> = Vec::new();
        for (k, a) in kinds.iter().zip(axes) {
            built.push(Axis::new(a).map_err(|e| format!("axis `{}`: {e}", k.name()))?);
        }
        let n: usize = built.iter().map(Axis::len).product();
        if values.len() != n {
            return Err(format!("expected {n} values, found {}", values.len()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("value {i} is not finite"));
        }
        while built.len() < 3 {
            built.push(Axis::new(vec![0.0]).expect("one point"));
        }
        let mut it = built.into_iter();
        let (a, b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let (nb, nc) = (b.len(), c.len());
        let (pa, pb, pc) = (
            a.points().to_vec(),
            b.points().to_vec(),
            c.points().to_vec(),
        );
        let locate = |pts: &[f64], x: f64| pts.iter().position(|&p| p == x).unwrap();
        let table = MultiTable::from_fn(a, b, c, 1, |x, y, z, o| {
            let (i, j, k) = (locate(&pa, x), locate(&pb, y), locate(&pc, z));
            o[0] = values[(i * nb + j) * nc + k];
        })
        .map_err(|e| e.to_string())?;
        Ok(ParamTable { kinds, table })
    }

    /// Evaluates at the given variable values.
    pub fn eval(&self, soc: f64, temperature_c: f64, current_a: f64, ocv_v: f64) -> f64 {
        let pick = |i: usize| match self.kinds.get(i) {
            Some(AxisKind::Soc) => soc,
            Some(AxisKind::TemperatureC) => temperature_c,
            Some(AxisKind::CurrentA) => current_a,
            Some(AxisKind::OcvV) => ocv_v,
            None => 0.0,
        };
        let mut o = [0.0];
        self.table.eval_into(pick(0), pick(1), pick(2), &mut o);
        o[0]
    }

    /// The breakpoints of one axis, if the table depends on it.
    pub fn axis_points(&self, kind: AxisKind) -> Option<&[f64]> {
        let i = self.kinds.iter().position(|&k| k == kind)?;
        Some(match i {
            0 => self.table.x.points(),
            1 => self.table.y.points(),
            _ => self.table.z.points(),
        })
    }

    /// Smallest and largest tabulated value.
    pub fn value_range(&self) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &x in self.table.x.points() {
            for &y in self.table.y.points() {
                for &z in self.table.z.points() {
                    let mut o = [0.0];
                    self.table.eval_into(x, y, z, &mut o);
                    lo = lo.min(o[0]);
                    hi = hi.max(o[0]);
                }
            }
        }
        (lo, hi)
    }
}

/// One RC pair.
#[derive(Debug, Clone)]
pub struct RcParams {
    pub r_ohm: ParamTable,
    pub c_f: ParamTable,
    pub initial_v: f64,
}

/// Validated parameters of one cell: what [`super::EcmCell`] and
/// [`super::Pack`] take. Build from a file with [`load_cell_params`].
#[derive(Debug, Clone)]
pub struct CellParams {
    pub name: String,
    pub capacity_ah: f64,
    pub nominal_capacity_ah: f64,
    pub voltage_min_v: f64,
    pub voltage_max_v: f64,
    pub temperature_max_c: f64,
    pub temperature_min_c: f64,
    /// OCV(SOC[, T]).
    pub ocv_v: ParamTable,
    /// R0(SOC[, T][, I]).
    pub r0_ohm: ParamTable,
    pub rc: Vec<RcParams>,
    /// dOCV/dT (V/K) over (SOC or OCV)[, T]; `None` disables reversible heat.
    pub entropic_v_per_k: Option<ParamTable>,
    pub thermal: ThermalParams,
    pub ageing: Option<AgeingParams>,
}

/// Cell-to-cell spread inside a pack (relative standard deviations of a
/// normal distribution truncated at ±3 σ; SOC spread is absolute).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub capacity_rel_sd: f64,
    pub resistance_rel_sd: f64,
    pub initial_soc_sd: f64,
}

/// Validated pack parameters.
#[derive(Debug, Clone)]
pub struct PackParams {
    pub name: String,
    pub cell: CellParams,
    pub series: usize,
    pub parallel: usize,
    pub spread: Spread,
}

// ---------------------------------------------------------------- loading

/// Finds the 1-based line of `key` inside `[section]` (or at top level when
/// `section` is empty) for error messages; 0 if not found.
fn line_of(text: &str, section: &str, key: &str) -> usize {
    let mut in_section = section.is_empty();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            in_section = name == section;
            if !in_section && section.is_empty() {
                break;
            }
            continue;
        }
        if in_section {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return n + 1;
                }
            }
        }
    }
    if !section.is_empty() {
        // key may be written inline, e.g. `r = { file = .. }` or the section itself.
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.contains(&format!("[{section}]")) || t.starts_with(&format!("{section} ")) {
                return n + 1;
            }
        }
    }
    0
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, section: &str, key: &str, msg: impl AsRef<str>) -> ParamError {
        let line = line_of(self.text, section, key);
        let full = if section.is_empty() {
            key.to_string()
        } else if key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{key}")
        };
        let at = if line > 0 {
            format!("line {line}: ")
        } else {
            String::new()
        };
        ParamError::invalid(self.path, format!("{at}`{full}`: {}", msg.as_ref()))
    }

    fn positive(&self, section: &str, key: &str, v: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.err(
                section,
                key,
                format!("must be a finite number > 0, found {v}"),
            ))
        }
    }

    fn non_negative(&self, section: &str, key: &str, v: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.err(
                section,
                key,
                format!("must be a finite number >= 0, found {v}"),
            ))
        }
    }

    /// Builds a table from its spec, allowing only `allowed` axes.
    fn table(
        &self,
        section: &str,
        spec: &TableSpec,
        allowed: &[AxisKind],
    ) -> Result<ParamTable, ParamError> {
        let inline: Vec<(AxisKind, &Vec<f64>)> = [
            (AxisKind::Soc, &spec.soc),
            (AxisKind::TemperatureC, &spec.temperature_c),
            (AxisKind::CurrentA, &spec.current_a),
            (AxisKind::OcvV, &spec.ocv_v),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let forms = spec.value.is_some() as u8
            + spec.file.is_some() as u8
            + (!inline.is_empty() || spec.values.is_some()) as u8;
        if forms != 1 {
            return Err(self.err(
                section,
                "",
                "give exactly one of `value = ..`, `file = .. , column = ..`, or an inline axis (`soc = [..]`) with `values = [..]`",
            ));
        }
        if let Some(v) = spec.value {
            if !v.is_finite() {
                return Err(self.err(section, "value", "must be finite"));
            }
            return Ok(ParamTable::constant(v));
        }
        let check_allowed = |k: AxisKind, key: &str| -> Result<(), ParamError> {
            if allowed.contains(&k) {
                Ok(())
            } else {
                Err(self.err(
                    section,
                    key,
                    format!(
                        "this table may depend only on {}",
                        allowed
                            .iter()
                            .map(|a| a.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        if let Some(file) = &spec.file {
            let column = spec.column.as_deref().ok_or_else(|| {
                self.err(
                    section,
                    "column",
                    "`file` needs `column` (the value column's name)",
                )
            })?;
            let csv_path = resolve_relative(self.path, file);
            let t = load_numeric_csv(&csv_path)?;
            let vi = t.column_index(column).ok_or_else(|| {
                self.err(
                    section,
                    "column",
                    format!(
                        "{}: no column `{column}` (columns: {})",
                        csv_path.display(),
                        t.columns.join(",")
                    ),
                )
            })?;
            let axis_names: Vec<String> = match &spec.axes {
                Some(a) => a.clone(),
                None => t
                    .columns
                    .iter()
                    .filter(|c| c.as_str() != column && AxisKind::from_name(c).is_some())
                    .cloned()
                    .collect(),
            };
            if axis_names.len() > 3 {
                return Err(self.err(section, "axes", "at most three axes"));
            }
            let mut kinds = Vec::new();
            let mut idx = Vec::new();
            for a in &axis_names {
                let k = AxisKind::from_name(a).ok_or_else(|| {
                    self.err(
                        section,
                        "axes",
                        format!("unknown axis `{a}` (soc, temperature_c, current_a, ocv_v)"),
                    )
                })?;
                check_allowed(k, "file")?;
                let i = t.column_index(a).ok_or_else(|| {
                    self.err(
                        section,
                        "axes",
                        format!("{}: no column `{a}`", csv_path.display()),
                    )
                })?;
                kinds.push(k);
                idx.push(i);
            }
            if t.rows.is_empty() {
                return Err(ParamError::Csv {
                    path: csv_path,
                    line: 2,
                    message: "the table has no rows".into(),
                });
            }
            // Unique, sorted breakpoints per axis (merging float noise).
            let mut axes: Vec<Vec<f64>> = Vec::new();
            for &i in &idx {
                let mut v: Vec<f64> = t.rows.iter().map(|r| r[i]).collect();
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                axes.push(dedup_close(v));
            }
            let n: usize = axes.iter().map(Vec::len).product();
            let mut values = vec![f64::NAN; n];
            for (row_no, r) in t.rows.iter().enumerate() {
                let mut flat = 0;
                for (a, &i) in axes.iter().zip(&idx) {
                    let j = nearest(a, r[i]);
                    flat = flat * a.len() + j;
                }
                if !values[flat].is_nan() {
                    return Err(ParamError::Csv {
                        path: csv_path,
                        line: row_no as u64 + 2,
                        message: "duplicate grid point".into(),
                    });
                }
                values[flat] = r[vi];
            }
            if let Some(missing) = values.iter().position(|v| v.is_nan()) {
                let mut rem = missing;
                let mut coords = vec![0.0; axes.len()];
                for (d, a) in axes.iter().enumerate().rev() {
                    coords[d] = a[rem % a.len()];
                    rem /= a.len();
                }
                let desc: Vec<String> = axis_names
                    .iter()
                    .zip(&coords)
                    .map(|(n, c)| format!("{n}={c}"))
                    .collect();
                return Err(ParamError::invalid(
                    csv_path,
                    format!(
                        "`{section}.{column}`: the table is not a full grid: no row for {}",
                        desc.join(", ")
                    ),
                ));
            }
            return ParamTable::from_grid(kinds, axes, values)
                .map_err(|e| ParamError::invalid(csv_path, format!("`{section}.{column}`: {e}")));
        }
        // Inline, one axis.
        if inline.len() != 1 {
            return Err(self.err(
                section,
                "",
                "an inline table has exactly one axis (use a CSV file for more)",
            ));
        }
        let (k, xs) = inline[0];
        check_allowed(k, k.name())?;
        let values = spec
            .values
            .clone()
            .ok_or_else(|| self.err(section, "values", "an inline table needs `values = [..]`"))?;
        if values.len() != xs.len() {
            return Err(self.err(
                section,
                "values",
                format!("{} values for {} breakpoints", values.len(), xs.len()),
            ));
        }
        ParamTable::from_grid(vec![k], vec![xs.clone()], values)
            .map_err(|e| self.err(section, k.name(), e))
    }
}

fn dedup_close(v: Vec<f64>) -> Vec<f64> {
    let span = (v[v.len() - 1] - v[0]).abs().max(1e-12);
    let mut out: Vec<f64> = Vec::new();
    for x in v {
        match out.last() {
            Some(&l) if (x - l).abs() <= 1e-9 * span => {}
            _ => out.push(x),
        }
    }
    out
}

fn nearest(a: &[f64], x: f64) -> usize {
    let mut best = 0;
    let mut bd = f64::INFINITY;
    for (i, &p) in a.iter().enumerate() {
        let d = (p - x).abs();
        if d < bd {
            bd = d;
            best = i;
        }
    }
    best
}

/// Loads and validates a cell parameter file (and the CSV tables it names).
pub fn load_cell_params(path: &Path) -> Result<CellParams, ParamError> {
    let text = read_text(path)?;
    parse_cell_params(path, &text)
}

/// Parses and validates cell parameter text that came from `path` (CSV
/// tables are resolved relative to `path`).
pub fn parse_cell_params(path: &Path, text: &str) -> Result<CellParams, ParamError> {
    let f: CellFile = parse_toml(path, text)?;
    let cx = Ctx { path, text };
    if let Some(m) = f.model.as_deref() {
        if m != "ecm" {
            return Err(cx.err(
                "",
                "model",
                format!("must be \"ecm\" in an equivalent-circuit cell file, found \"{m}\" (load it with load_battery_params)"),
            ));
        }
    }
    use AxisKind::*;
    let capacity_ah = cx.positive("", "capacity_ah", f.capacity_ah)?;
    let nominal_capacity_ah = cx.positive(
        "",
        "nominal_capacity_ah",
        f.nominal_capacity_ah.unwrap_or(capacity_ah),
    )?;
    let voltage_min_v = cx.positive("", "voltage_min_v", f.voltage_min_v)?;
    let voltage_max_v = cx.positive("", "voltage_max_v", f.voltage_max_v)?;
    if voltage_max_v <= voltage_min_v {
        return Err(cx.err(
            "",
            "voltage_max_v",
            format!("must be above voltage_min_v ({voltage_min_v})"),
        ));
    }
    if !(f.temperature_max_c.is_finite() && f.temperature_min_c.is_finite())
        || f.temperature_max_c <= f.temperature_min_c
    {
        return Err(cx.err(
            "",
            "temperature_max_c",
            "must be finite and above temperature_min_c",
        ));
    }
    let ocv_v = cx.table("ocv", &f.ocv, &[Soc, TemperatureC])?;
    let (lo, hi) = ocv_v.value_range();
    if lo <= 0.0 || hi > 10.0 {
        return Err(cx.err(
            "ocv",
            "",
            format!("OCV values must lie in (0, 10] V, found {lo}..{hi}"),
        ));
    }
    match ocv_v.axis_points(Soc) {
        Some(s) if s.len() >= 2 => {
            // OCV must not fall as SOC rises (at every tabulated temperature).
            let temps = ocv_v
                .axis_points(TemperatureC)
                .map(<[f64]>::to_vec)
                .unwrap_or(vec![25.0]);
            for &t in &temps {
                for w in s.windows(2) {
                    let (a, b) = (ocv_v.eval(w[0], t, 0.0, 0.0), ocv_v.eval(w[1], t, 0.0, 0.0));
                    if b < a {
                        return Err(cx.err(
                            "ocv",
                            "",
                            format!("OCV must not decrease with SOC: {a} V at soc={} but {b} V at soc={}", w[0], w[1]),
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(cx.err(
                "ocv",
                "",
                "the OCV table must depend on `soc` (at least two points)",
            ))
        }
    }
    let r0_ohm = cx.table("r0", &f.r0, &[Soc, TemperatureC, CurrentA])?;
    if r0_ohm.value_range().0 <= 0.0 {
        return Err(cx.err("r0", "", "R0 must be > 0 everywhere"));
    }
    if f.rc.len() > MAX_RC {
        return Err(cx.err("rc", "", format!("at most {MAX_RC} RC pairs")));
    }
    let mut rc = Vec::new();
    for (i, r) in f.rc.iter().enumerate() {
        let sec = "rc";
        let rt = cx.table(sec, &r.r, &[Soc, TemperatureC, CurrentA])?;
        let ct = cx.table(sec, &r.c, &[Soc, TemperatureC, CurrentA])?;
        if rt.value_range().0 <= 0.0 {
            return Err(cx.err(
                sec,
                "r",
                format!("RC pair {}: R must be > 0 everywhere", i + 1),
            ));
        }
        if ct.value_range().0 <= 0.0 {
            return Err(cx.err(
                sec,
                "c",
                format!("RC pair {}: C must be > 0 everywhere", i + 1),
            ));
        }
        if !r.initial_v.is_finite() {
            return Err(cx.err(sec, "initial_v", "must be finite"));
        }
        rc.push(RcParams {
            r_ohm: rt,
            c_f: ct,
            initial_v: r.initial_v,
        });
    }
    let entropic_v_per_k = match &f.entropic {
        None => None,
        Some(spec) => {
            let t = cx.table("entropic", spec, &[Soc, OcvV, TemperatureC])?;
            if t.kinds.contains(&Soc) && t.kinds.contains(&OcvV) {
                return Err(cx.err("entropic", "", "depends on `soc` or on `ocv_v`, not both"));
            }
            let (lo, hi) = t.value_range();
            if lo < -0.01 || hi > 0.01 {
                return Err(cx.err(
                    "entropic",
                    "",
                    format!("dOCV/dT beyond ±10 mV/K ({lo}..{hi}): check the units (V/K)"),
                ));
            }
            Some(t)
        }
    };
    let th = &f.thermal;
    let thermal = ThermalParams {
        cell_heat_capacity_j_per_k: cx.positive(
            "thermal",
            "cell_heat_capacity_j_per_k",
            th.cell_heat_capacity_j_per_k,
        )?,
        jig_heat_capacity_j_per_k: cx.positive(
            "thermal",
            "jig_heat_capacity_j_per_k",
            th.jig_heat_capacity_j_per_k,
        )?,
        cell_jig_conductance_w_per_k: cx.positive(
            "thermal",
            "cell_jig_conductance_w_per_k",
            th.cell_jig_conductance_w_per_k,
        )?,
        jig_air_conductance_w_per_k: cx.positive(
            "thermal",
            "jig_air_conductance_w_per_k",
            th.jig_air_conductance_w_per_k,
        )?,
    };
    let ageing = match &f.ageing {
        None => None,
        Some(a) => Some(ageing_params(&cx, a)?),
    };
    Ok(CellParams {
        name: f.name,
        capacity_ah,
        nominal_capacity_ah,
        voltage_min_v,
        voltage_max_v,
        temperature_max_c: f.temperature_max_c,
        temperature_min_c: f.temperature_min_c,
        ocv_v,
        r0_ohm,
        rc,
        entropic_v_per_k,
        thermal,
        ageing,
    })
}

fn ageing_params(cx: &Ctx, a: &AgeingFile) -> Result<AgeingParams, ParamError> {
    let s = "ageing";
    if !a.reference_temperature_c.is_finite() || a.reference_temperature_c <= -273.15 {
        return Err(cx.err(s, "reference_temperature_c", "must be above absolute zero"));
    }
    if a.calendar_soc_stress_soc.len() != a.calendar_soc_stress.len()
        || a.calendar_soc_stress.is_empty()
    {
        return Err(cx.err(
            s,
            "calendar_soc_stress",
            "needs as many factors as `calendar_soc_stress_soc` breakpoints (at least one)",
        ));
    }
    if a.calendar_soc_stress
        .iter()
        .any(|v| !(v.is_finite() && *v >= 0.0))
    {
        return Err(cx.err(s, "calendar_soc_stress", "factors must be finite and >= 0"));
    }
    let soc_stress = crate::interp::Table1::new(
        a.calendar_soc_stress_soc.clone(),
        a.calendar_soc_stress.clone(),
    )
    .map_err(|e| cx.err(s, "calendar_soc_stress_soc", e.to_string()))?;
    Ok(AgeingParams {
        reference_temperature_c: a.reference_temperature_c,
        update_interval_s: cx.positive(s, "update_interval_s", a.update_interval_s)?,
        calendar_capacity_fade_per_sqrt_day: cx.non_negative(
            s,
            "calendar_capacity_fade_per_sqrt_day",
            a.calendar_capacity_fade_per_sqrt_day,
        )?,
        calendar_resistance_growth_per_sqrt_day: cx.non_negative(
            s,
            "calendar_resistance_growth_per_sqrt_day",
            a.calendar_resistance_growth_per_sqrt_day,
        )?,
        calendar_activation_energy_j_per_mol: cx.non_negative(
            s,
            "calendar_activation_energy_j_per_mol",
            a.calendar_activation_energy_j_per_mol,
        )?,
        calendar_soc_stress: soc_stress,
        cycle_capacity_fade_per_efc: cx.non_negative(
            s,
            "cycle_capacity_fade_per_efc",
            a.cycle_capacity_fade_per_efc,
        )?,
        cycle_resistance_growth_per_efc: cx.non_negative(
            s,
            "cycle_resistance_growth_per_efc",
            a.cycle_resistance_growth_per_efc,
        )?,
        cycle_activation_energy_j_per_mol: cx.non_negative(
            s,
            "cycle_activation_energy_j_per_mol",
            a.cycle_activation_energy_j_per_mol,
        )?,
        cycle_dod_reference: cx.positive(s, "cycle_dod_reference", a.cycle_dod_reference)?,
        cycle_dod_exponent: cx.non_negative(s, "cycle_dod_exponent", a.cycle_dod_exponent)?,
        cycle_c_rate_reference: cx.positive(
            s,
            "cycle_c_rate_reference",
            a.cycle_c_rate_reference,
        )?,
        cycle_c_rate_coefficient: cx.non_negative(
            s,
            "cycle_c_rate_coefficient",
            a.cycle_c_rate_coefficient,
        )?,
        caches: None,
    }
    .with_caches())
}

/// Loads and validates a pack file and the cell file it references.
pub fn load_pack_params(path: &Path) -> Result<PackParams, ParamError> {
    match load_battery_pack_params(path)? {
        BatteryPackParams::Ecm(p) => Ok(p),
        BatteryPackParams::Spme(_) => Err(ParamError::invalid(
            path,
            "`model` is \"spme\": load it with load_battery_pack_params (this loader is for \
             equivalent-circuit packs)",
        )),
    }
}

/// A pack of either model, as selected by the pack file's `model` key.
#[derive(Debug, Clone)]
pub enum BatteryPackParams {
    /// `model = "ecm"` or no `model` key.
    Ecm(PackParams),
    /// `model = "spme"`.
    Spme(crate::battery::spme::SpmePackParams),
}

/// A cell's datasheet limits: the window the pack must stay in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellLimits {
    pub voltage_min_v: f64,
    pub voltage_max_v: f64,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
}

impl BatteryPackParams {
    /// The pack's cells' datasheet limits.
    pub fn cell_limits(&self) -> CellLimits {
        match self {
            BatteryPackParams::Ecm(p) => CellLimits {
                voltage_min_v: p.cell.voltage_min_v,
                voltage_max_v: p.cell.voltage_max_v,
                temperature_min_c: p.cell.temperature_min_c,
                temperature_max_c: p.cell.temperature_max_c,
            },
            BatteryPackParams::Spme(p) => CellLimits {
                voltage_min_v: p.cell.voltage_min_v,
                voltage_max_v: p.cell.voltage_max_v,
                temperature_min_c: p.cell.temperature_min_c,
                temperature_max_c: p.cell.temperature_max_c,
            },
        }
    }
}

/// Loads a pack file of either model: `model = "ecm"` (default) or
/// `"spme"`; the cell file it names must be of the same model.
pub fn load_battery_pack_params(path: &Path) -> Result<BatteryPackParams, ParamError> {
    let text = read_text(path)?;
    let f: PackFile = parse_toml(path, &text)?;
    let cx = Ctx { path, text: &text };
    let model = f.model.clone().unwrap_or_else(|| "ecm".into());
    if model != "ecm" && model != "spme" {
        return Err(cx.err(
            "",
            "model",
            format!("must be \"ecm\" or \"spme\", found \"{model}\""),
        ));
    }
    if f.series == 0 || f.series > 1000 {
        return Err(cx.err(
            "",
            "series",
            format!("must be 1..=1000, found {}", f.series),
        ));
    }
    if f.parallel == 0 || f.parallel > 1000 {
        return Err(cx.err(
            "",
            "parallel",
            format!("must be 1..=1000, found {}", f.parallel),
        ));
    }
    let sp = &f.spread;
    let check_sd = |key: &str, v: f64, max: f64| -> Result<f64, ParamError> {
        if v.is_finite() && (0.0..=max).contains(&v) {
            Ok(v)
        } else {
            Err(cx.err("spread", key, format!("must be in [0, {max}], found {v}")))
        }
    };
    let spread = Spread {
        capacity_rel_sd: check_sd("capacity_rel_sd", sp.capacity_rel_sd, 0.2)?,
        resistance_rel_sd: check_sd("resistance_rel_sd", sp.resistance_rel_sd, 0.3)?,
        initial_soc_sd: check_sd("initial_soc_sd", sp.initial_soc_sd, 0.2)?,
    };
    let cell_path: PathBuf = resolve_relative(path, &f.cell);
    let cell_text = read_text(&cell_path)?;
    let cell_model = cell_model_of(&cell_path, &cell_text)?;
    if cell_model != model {
        return Err(cx.err(
            "",
            "cell",
            format!(
                "names a `model = \"{cell_model}\"` cell file but the pack says model = \"{model}\""
            ),
        ));
    }
    if model == "spme" {
        let cell = crate::battery::spme::parse_spme_params(&cell_path, &cell_text)?;
        return Ok(BatteryPackParams::Spme(
            crate::battery::spme::SpmePackParams {
                name: f.name,
                cell,
                series: f.series,
                parallel: f.parallel,
                spread,
            },
        ));
    }
    let cell = parse_cell_params(&cell_path, &cell_text)?;
    Ok(BatteryPackParams::Ecm(PackParams {
        name: f.name,
        cell,
        series: f.series,
        parallel: f.parallel,
        spread,
    }))
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub const MINIMAL: &str = r#"
name = "test cell"
capacity_ah = 10.0
voltage_min_v = 2.5
voltage_max_v = 3.65
[ocv]
soc = [0.0, 0.1, 0.9, 1.0]
values = [2.0, 3.2, 3.35, 3.6]
[r0]
value = 0.002
[[rc]]
r = { value = 0.001 }
c = { value = 20000.0 }
[thermal]
cell_heat_capacity_j_per_k = 200.0
jig_heat_capacity_j_per_k = 500.0
cell_jig_conductance_w_per_k = 1.0
jig_air_conductance_w_per_k = 2.0
"#;

    /// [`MINIMAL`] with an SOC-based entropic table and ageing (every
    /// optional path of the cell model).
    pub fn minimal_with_entropic_and_ageing() -> String {
        format!(
            "{MINIMAL}\n[entropic]\nsoc = [0.0, 1.0]\nvalues = [0.0002, -0.0002]\n\n[ageing]\n\
             update_interval_s = 5.0\n\
             calendar_capacity_fade_per_sqrt_day = 0.01\n\
             calendar_resistance_growth_per_sqrt_day = 0.01\n\
             calendar_activation_energy_j_per_mol = 50000.0\n\
             calendar_soc_stress_soc = [0.0, 1.0]\n\
             calendar_soc_stress = [0.5, 1.5]\n\
             cycle_capacity_fade_per_efc = 0.001\n\
             cycle_resistance_growth_per_efc = 0.001\n\
             cycle_activation_energy_j_per_mol = 30000.0\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::MINIMAL;
    use super::*;

    #[test]
    fn minimal_file_parses() {
        let p = parse_cell_params(Path::new("c.toml"), MINIMAL).unwrap();
        assert_eq!(p.rc.len(), 1);
        assert!((p.ocv_v.eval(0.5, 25.0, 0.0, 0.0) - 3.275).abs() < 1e-12);
        assert_eq!(p.nominal_capacity_ah, 10.0);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad = MINIMAL.replace("capacity_ah = 10.0", "capacity_ah = -1.0");
        let e = parse_cell_params(Path::new("c.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: line 3: `capacity_ah`"), "{e}");
        let bad = MINIMAL.replace("[r0]\nvalue = 0.002", "[r0]\nvalue = 0.002\nvlaue = 1");
        let e = parse_cell_params(Path::new("c.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml") && e.contains("unknown field `vlaue`"),
            "{e}"
        );
        let bad = MINIMAL.replace("c = { value = 20000.0 }", "c = { value = 0.0 }");
        let e = parse_cell_params(Path::new("c.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`rc.c`") && e.contains("C must be > 0"), "{e}");
        let bad = MINIMAL.replace("3.35, 3.6", "3.1, 3.6");
        let e = parse_cell_params(Path::new("c.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not decrease"), "{e}");
        let bad = MINIMAL.replace("voltage_max_v = 3.65", "voltage_max_v = 2.0");
        let e = parse_cell_params(Path::new("c.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("voltage_max_v"), "{e}");
    }

    #[test]
    fn csv_tables_load_and_report_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r0.csv");
        std::fs::write(
            &csv,
            "temperature_c,soc,r0_ohm\n0,0,0.004\n0,1,0.003\n25,0,0.002\n25,1,0.001\n",
        )
        .unwrap();
        let toml = MINIMAL.replace(
            "[r0]\nvalue = 0.002",
            "[r0]\nfile = \"r0.csv\"\ncolumn = \"r0_ohm\"",
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &toml).unwrap();
        let p = load_cell_params(&path).unwrap();
        assert!((p.r0_ohm.eval(0.5, 12.5, 0.0, 0.0) - 0.0025).abs() < 1e-12);
        std::fs::write(
            &csv,
            "temperature_c,soc,r0_ohm\n0,0,0.004\n0,1,0.003\n25,0,0.002\n",
        )
        .unwrap();
        let e = load_cell_params(&path).unwrap_err().to_string();
        assert!(
            e.contains("r0.csv") && e.contains("not a full grid") && e.contains("soc=1"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod shipped_files {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params")
    }

    #[test]
    fn ecm_example_loads_with_its_3d_tables() {
        let p = load_cell_params(&dir().join("ecm_example.toml")).unwrap();
        assert_eq!(p.capacity_ah, 100.0);
        assert_eq!(
            p.r0_ohm.kinds,
            vec![AxisKind::TemperatureC, AxisKind::CurrentA, AxisKind::Soc]
        );
        // PyBaMM's docstring: DCIR (R0 + R1) = 1 mOhm at 25 C, 50 % SOC, 100 A.
        let dcir = p.r0_ohm.eval(0.5, 25.0, 100.0, 0.0) + p.rc[0].r_ohm.eval(0.5, 25.0, 100.0, 0.0);
        assert!((dcir - 0.001).abs() < 2e-5, "{dcir}");
        assert!(p
            .entropic_v_per_k
            .as_ref()
            .unwrap()
            .kinds
            .contains(&AxisKind::OcvV));
    }

    #[test]
    fn shipped_packs_load_and_are_what_they_say() {
        let lfp = load_pack_params(&dir().join("lfp_home_16s.toml")).unwrap();
        assert_eq!((lfp.series, lfp.parallel), (16, 1));
        assert_eq!(lfp.cell.rc.len(), 2);
        let kwh = lfp.series as f64 * 3.2 * lfp.cell.capacity_ah / 1000.0;
        assert!((kwh - 5.12).abs() < 1e-9);
        // The LFP plateau: OCV moves < 100 mV between 20 % and 90 % SOC.
        let o = |s: f64| lfp.cell.ocv_v.eval(s, 25.0, 0.0, 0.0);
        assert!(o(0.9) - o(0.2) < 0.1 && o(1.0) - o(0.9) > 0.1 && o(0.2) - o(0.0) > 0.7);
        let nmc = load_pack_params(&dir().join("nmc_pack.toml")).unwrap();
        let v_nom = nmc.series as f64 * nmc.cell.ocv_v.eval(0.5, 25.0, 0.0, 0.0);
        assert!(v_nom > 44.0 && v_nom < 52.0, "{v_nom}");
        assert!(nmc.parallel > 1);
        assert!(nmc.cell.ageing.is_some() && lfp.cell.ageing.is_some());
    }
}

/// A battery cell of either model, as selected by the file's `model` key.
#[derive(Debug, Clone)]
pub enum BatteryParams {
    /// `model = "ecm"` or no `model` key: the equivalent-circuit cell.
    Ecm(CellParams),
    /// `model = "spme"`: the electrochemical SPMe cell.
    Spme(crate::battery::spme::SpmeParams),
}

/// Which model a cell parameter file is for: its `model` key, `"ecm"` if
/// absent.
pub fn cell_model_of(path: &Path, text: &str) -> Result<String, ParamError> {
    let table: toml::Table = parse_toml(path, text)?;
    match table.get("model") {
        None => Ok("ecm".into()),
        Some(toml::Value::String(m)) if m == "ecm" || m == "spme" => Ok(m.clone()),
        Some(v) => Err(ParamError::invalid(
            path,
            format!("`model` must be \"ecm\" or \"spme\", found {v}"),
        )),
    }
}

/// Loads a cell parameter file of either model (selected by its `model`
/// key: `"ecm"`, the default, or `"spme"`).
pub fn load_battery_params(path: &Path) -> Result<BatteryParams, ParamError> {
    let text = read_text(path)?;
    match cell_model_of(path, &text)?.as_str() {
        "spme" => Ok(BatteryParams::Spme(
            crate::battery::spme::parse_spme_params(path, &text)?,
        )),
        _ => Ok(BatteryParams::Ecm(parse_cell_params(path, &text)?)),
    }
}
