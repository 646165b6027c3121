//! A parser for the subset of the OpenDSS script language that maslow's
//! feeder model understands (see the module documentation of
//! [`crate::feeder`] for the list).
//!
//! The parser is sans-IO at its core: [`parse_str`] takes the text of the
//! top-level file and a reader closure for `redirect`ed files;
//! [`parse_file`] is the convenience helper that reads from disk.
//!
//! Every rejection is a [`FeederError::Dss`] naming the file, the line and
//! the unsupported thing; nothing in here panics on input.

use super::FeederError;
use nalgebra::{Complex, Matrix3};
use std::path::{Path, PathBuf};

/// Complex number used throughout the feeder model.
pub type C64 = Complex<f64>;

/// Where an element was defined: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// File as given to the parser (or the redirect path).
    pub file: String,
    /// 1-based line number of the command's first line.
    pub line: usize,
}

impl Origin {
    fn err(&self, message: impl Into<String>) -> FeederError {
        FeederError::Dss {
            file: self.file.clone(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// Winding connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// Grounded wye (`wye`, `y`, `ln`).
    Wye,
    /// Delta (`delta`, `d`, `ll`).
    Delta,
}

/// The circuit's source (`New Circuit.` / `Edit Vsource.source`): an ideal
/// three-phase voltage behind sequence impedances.
#[derive(Debug, Clone, PartialEq)]
pub struct DssSource {
    /// Bus name (lower case).
    pub bus: String,
    /// Base line-line voltage, kV.
    pub base_kv: f64,
    /// Per-unit set point.
    pub pu: f64,
    /// Angle of phase 1, degrees.
    pub angle_deg: f64,
    /// Positive- (and negative-) sequence impedance, Ω.
    pub z1_ohm: C64,
    /// Zero-sequence impedance, Ω.
    pub z0_ohm: C64,
    /// Where it was defined.
    pub origin: Origin,
}

/// A two-winding three-phase transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct DssTransformer {
    /// Name (lower case).
    pub name: String,
    /// Bus of winding 1 and 2 (names, lower case).
    pub buses: [String; 2],
    /// Connections of windings 1 and 2.
    pub conns: [Conn; 2],
    /// Rated line-line voltages, kV.
    pub kvs: [f64; 2],
    /// Rated powers, kVA (winding 1 is the impedance base).
    pub kvas: [f64; 2],
    /// Winding resistances, % on winding 1's base.
    pub r_pct: [f64; 2],
    /// Leakage reactance high-low, %.
    pub xhl_pct: f64,
    /// Per-unit taps.
    pub taps: [f64; 2],
    /// Where it was defined.
    pub origin: Origin,
}

/// A three-phase line with its total (length-multiplied) matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct DssLine {
    /// Name (lower case).
    pub name: String,
    /// From-bus (lower case).
    pub bus1: String,
    /// To-bus (lower case).
    pub bus2: String,
    /// Series phase impedance matrix of the whole line, Ω.
    pub z_ohm: Matrix3<C64>,
    /// Total shunt admittance of the line (half at each end), S.
    pub y_shunt_s: Matrix3<C64>,
    /// Where it was defined.
    pub origin: Origin,
}

/// A load (OpenDSS `model=1`: constant P and Q between `vminpu` and
/// `vmaxpu`, constant impedance outside).
#[derive(Debug, Clone, PartialEq)]
pub struct DssLoad {
    /// Name (lower case).
    pub name: String,
    /// Bus (lower case).
    pub bus: String,
    /// Phases supplied: `[true; 3]` for a three-phase load, one `true` for a
    /// single-phase load (phase to neutral/ground).
    pub phases: [bool; 3],
    /// Rated voltage, kV (line-line for three-phase, line-neutral for one phase).
    pub kv: f64,
    /// Active power, kW (total over its phases).
    pub kw: f64,
    /// Reactive power, kvar (total).
    pub kvar: f64,
    /// Below this per-unit voltage the load is a constant impedance.
    pub vminpu: f64,
    /// Above this per-unit voltage the load is a constant impedance.
    pub vmaxpu: f64,
    /// Where it was defined.
    pub origin: Origin,
}

/// Everything a parsed script defines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DssModel {
    /// Circuit name (lower case).
    pub circuit: String,
    /// The source, once a circuit is defined.
    pub source: Option<DssSource>,
    /// Transformers in definition order.
    pub transformers: Vec<DssTransformer>,
    /// Lines in definition order.
    pub lines: Vec<DssLine>,
    /// Loads in definition order.
    pub loads: Vec<DssLoad>,
    /// `set voltagebases`, line-line kV.
    pub voltage_bases_kv: Vec<f64>,
    /// Whether `calcvoltagebases` was given.
    pub calc_voltage_bases: bool,
    /// Things read and deliberately ignored (e.g. `Buscoords`), for the user.
    pub notes: Vec<String>,
}

/// Reads the file at `path` and everything it redirects to.
pub fn parse_file(path: &Path) -> Result<DssModel, FeederError> {
    let text = std::fs::read_to_string(path).map_err(|e| FeederError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut reader = |p: &Path| std::fs::read_to_string(p).map_err(|e| e.to_string());
    parse_str(&text, path, &mut reader)
}

/// Parses `text` as the file `name`; `redirect`ed files are resolved
/// relative to `name`'s directory and read with `read`.
pub fn parse_str(
    text: &str,
    name: &Path,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
) -> Result<DssModel, FeederError> {
    let mut p = Parser {
        model: DssModel::default(),
        sc: SourceSc::default(),
        codes: Vec::new(),
        pending_lines: Vec::new(),
        base_freq_hz: 60.0,
    };
    p.file(text, name, read, 0)?;
    p.finish()
}

#[derive(Debug, Clone)]
struct LineCode {
    name: String,
    z: Matrix3<C64>,
    c_nf: Matrix3<f64>,
    units: Option<f64>,
    base_freq_hz: f64,
}

#[derive(Debug, Clone)]
struct PendingLine {
    name: String,
    bus1: String,
    bus2: String,
    code: Option<String>,
    own: Option<LineCode>,
    length: f64,
    units: Option<f64>,
    origin: Origin,
}

/// A short-circuit level as given: MVA or amperes.
#[derive(Debug, Clone, Copy)]
enum Sc {
    Mva(f64),
    Amps(f64),
}

/// The source's impedance inputs, kept so that `Edit Vsource.source`
/// recomputes the impedances (e.g. on a new basekv) as OpenDSS does.
#[derive(Debug, Clone)]
struct SourceSc {
    sc3: Sc,
    sc1: Sc,
    x1r1: f64,
    x0r0: f64,
    r1: Option<f64>,
    x1: Option<f64>,
    r0: Option<f64>,
    x0: Option<f64>,
}

impl Default for SourceSc {
    fn default() -> Self {
        Self {
            sc3: Sc::Mva(2000.0),
            sc1: Sc::Mva(2100.0),
            x1r1: 4.0,
            x0r0: 3.0,
            r1: None,
            x1: None,
            r0: None,
            x0: None,
        }
    }
}

struct Parser {
    model: DssModel,
    sc: SourceSc,
    codes: Vec<LineCode>,
    pending_lines: Vec<PendingLine>,
    base_freq_hz: f64,
}

/// One `key=value` (key lower case) with the origin for errors.
#[derive(Debug, Clone)]
struct Prop {
    key: String,
    value: String,
}

fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let bytes: Vec<(usize, char)> = line.char_indices().collect();
    for (k, &(i, c)) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == '!' || (c == '/' && bytes.get(k + 1).map(|x| x.1) == Some('/')) {
                    return &line[..i];
                }
            }
        }
    }
    line
}

/// Splits a command into words, `=` and grouped values (`[..]`, `(..)`,
/// `{..}`, `".."`, `'..'`, returned without their delimiters).
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Eq,
    Group(String),
}

fn tokenize(s: &str, o: &Origin) -> Result<Vec<Tok>, FeederError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '=' {
            out.push(Tok::Eq);
            i += 1;
        } else if let Some(close) = match c {
            '[' => Some(']'),
            '(' => Some(')'),
            '{' => Some('}'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        } {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && chars[j] != close {
                j += 1;
            }
            if j >= chars.len() {
                return Err(o.err(format!(
                    "unclosed `{c}`: expected `{close}` before the end of the command"
                )));
            }
            out.push(Tok::Group(chars[start..j].iter().collect()));
            i = j + 1;
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '=' | '[' | '(' | '{' | '"' | '\'' | ',')
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

fn props(toks: &[Tok], o: &Origin) -> Result<Vec<Prop>, FeederError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
            (Tok::Word(k), Some(Tok::Eq), Some(Tok::Word(v) | Tok::Group(v))) => {
                out.push(Prop {
                    key: k.to_ascii_lowercase(),
                    value: v.clone(),
                });
                i += 3;
            }
            (Tok::Word(k), Some(Tok::Eq), _) => {
                return Err(o.err(format!("property `{k}=` has no value")));
            }
            (Tok::Word(w) | Tok::Group(w), _, _) => {
                return Err(o.err(format!(
                    "positional property `{w}` is not supported: write it as key=value"
                )));
            }
            (Tok::Eq, _, _) => return Err(o.err("`=` without a property name")),
        }
    }
    Ok(out)
}

fn num(v: &str, key: &str, o: &Origin) -> Result<f64, FeederError> {
    let x: f64 = v.trim().parse().map_err(|_| {
        o.err(format!(
            "`{key}={v}`: not a number (OpenDSS RPN expressions are not supported)"
        ))
    })?;
    if !x.is_finite() {
        return Err(o.err(format!("`{key}={v}`: must be finite")));
    }
    Ok(x)
}

fn nums(v: &str, key: &str, o: &Origin) -> Result<Vec<f64>, FeederError> {
    v.split(|c: char| c.is_whitespace() || c == ',' || c == '|')
        .filter(|s| !s.is_empty())
        .map(|s| num(s, key, o))
        .collect()
}

fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

fn yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().chars().next(),
        Some('y') | Some('t')
    )
}

fn conn(v: &str, o: &Origin) -> Result<Conn, FeederError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "wye" | "y" | "ln" => Ok(Conn::Wye),
        "delta" | "d" | "ll" => Ok(Conn::Delta),
        other => Err(o.err(format!("connection `{other}`: expected wye or delta"))),
    }
}

/// Metres per OpenDSS length unit; `None` for `none`.
fn unit_m(v: &str, o: &Origin) -> Result<Option<f64>, FeederError> {
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "none" => None,
        "mi" => Some(1609.344),
        "kft" => Some(304.8),
        "km" => Some(1000.0),
        "m" => Some(1.0),
        "ft" => Some(0.3048),
        "in" => Some(0.0254),
        "cm" => Some(0.01),
        "mm" => Some(0.001),
        other => {
            return Err(o.err(format!(
                "length unit `{other}`: expected one of none, mi, kft, km, m, ft, in, cm, mm"
            )))
        }
    })
}

/// Bus spec `name.1.2.3` → (lower-case name, nodes).
fn bus_spec(v: &str, o: &Origin) -> Result<(String, Vec<u32>), FeederError> {
    let mut parts = v.trim().split('.');
    let name = parts.next().unwrap_or("").to_ascii_lowercase();
    if name.is_empty() {
        return Err(o.err(format!("bus `{v}`: empty bus name")));
    }
    let mut nodes = Vec::new();
    for p in parts {
        let n: u32 = p
            .parse()
            .map_err(|_| o.err(format!("bus `{v}`: node `{p}` is not a number")))?;
        nodes.push(n);
    }
    Ok((name, nodes))
}

fn three_phase_bus(v: &str, o: &Origin) -> Result<String, FeederError> {
    let (name, nodes) = bus_spec(v, o)?;
    match nodes.as_slice() {
        [] | [1, 2, 3] | [1, 2, 3, 0] => Ok(name),
        _ => Err(o.err(format!(
            "bus `{v}`: three-phase elements must connect to nodes .1.2.3 in order (phase reordering is not supported)"
        ))),
    }
}

/// Symmetric matrix from sequence values: diag (x0+2x1)/3, off-diag (x0-x1)/3.
fn from_seq<T>(x1: T, x0: T) -> Matrix3<T>
where
    T: nalgebra::Scalar
        + Copy
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Div<f64, Output = T>,
{
    let s = (x0 + x1 + x1) / 3.0;
    let m = (x0 - x1) / 3.0;
    Matrix3::new(s, m, m, m, s, m, m, m, s)
}

/// A square matrix from OpenDSS's lower-triangle or full form.
#[allow(clippy::needless_range_loop)] // row/column indices are the clearest here
fn square(v: &[f64], n: usize, key: &str, o: &Origin) -> Result<Vec<Vec<f64>>, FeederError> {
    let mut m = vec![vec![0.0; n]; n];
    if v.len() == n * n {
        for r in 0..n {
            for c in 0..n {
                m[r][c] = v[r * n + c];
            }
        }
    } else if v.len() == n * (n + 1) / 2 {
        let mut k = 0;
        for r in 0..n {
            for c in 0..=r {
                m[r][c] = v[k];
                m[c][r] = v[k];
                k += 1;
            }
        }
    } else {
        return Err(o.err(format!(
            "`{key}` has {} values: expected {} (lower triangle) or {} (full) for nphases={n}",
            v.len(),
            n * (n + 1) / 2,
            n * n
        )));
    }
    Ok(m)
}

/// Kron reduction of the last conductor of an n×n complex matrix to 3×3.
fn kron3(m: &[Vec<C64>], o: &Origin) -> Result<Matrix3<C64>, FeederError> {
    let n = m.len();
    if n == 3 {
        return Ok(Matrix3::from_fn(|r, c| m[r][c]));
    }
    // n == 4: reduce the neutral (conductor 4).
    let znn = m[3][3];
    if znn.norm() == 0.0 {
        return Err(o.err("Kron reduction: the neutral's self term is zero"));
    }
    Ok(Matrix3::from_fn(|r, c| m[r][c] - m[r][3] * m[3][c] / znn))
}

#[derive(Default)]
struct CodeProps {
    nphases: Option<usize>,
    r1: Option<f64>,
    x1: Option<f64>,
    r0: Option<f64>,
    x0: Option<f64>,
    c1: Option<f64>,
    c0: Option<f64>,
    rmatrix: Option<Vec<f64>>,
    xmatrix: Option<Vec<f64>>,
    cmatrix: Option<Vec<f64>>,
    units: Option<Option<f64>>,
    kron: bool,
    base_freq_hz: Option<f64>,
    any_impedance: bool,
}

impl CodeProps {
    /// Takes the property if it is an impedance/line-code one.
    fn take(&mut self, p: &Prop, o: &Origin) -> Result<bool, FeederError> {
        let k = p.key.as_str();
        let v = p.value.as_str();
        match k {
            "nphases" => {
                let n = num(v, k, o)?;
                self.nphases = Some(n as usize);
                if n != 3.0 && n != 4.0 {
                    return Err(o.err(format!(
                        "nphases={v}: only 3-phase lines (or 4-wire with kron=yes) are supported"
                    )));
                }
            }
            "r1" => self.r1 = Some(num(v, k, o)?),
            "x1" => self.x1 = Some(num(v, k, o)?),
            "r0" => self.r0 = Some(num(v, k, o)?),
            "x0" => self.x0 = Some(num(v, k, o)?),
            "c1" => self.c1 = Some(num(v, k, o)?),
            "c0" => self.c0 = Some(num(v, k, o)?),
            "b1" => {
                self.c1 = Some(num(v, k, o)? * 1e3 / (2.0 * std::f64::consts::PI * self.freq()))
            }
            "b0" => {
                self.c0 = Some(num(v, k, o)? * 1e3 / (2.0 * std::f64::consts::PI * self.freq()))
            }
            "rmatrix" => self.rmatrix = Some(nums(v, k, o)?),
            "xmatrix" => self.xmatrix = Some(nums(v, k, o)?),
            "cmatrix" => self.cmatrix = Some(nums(v, k, o)?),
            "units" => self.units = Some(unit_m(v, o)?),
            "kron" => self.kron = yes(v),
            "basefreq" => self.base_freq_hz = Some(num(v, k, o)?),
            "neutral" => {
                if num(v, k, o)? != 4.0 {
                    return Err(o.err("neutral=: only the 4th conductor can be the neutral"));
                }
            }
            // Ratings and reliability data: no effect on the power flow.
            "normamps" | "emergamps" | "faultrate" | "pctperm" | "repair" | "like" | "seasons"
            | "ratings" | "linetype" => {
                if k == "like" {
                    return Err(o.err("`like=` is not supported: repeat the properties"));
                }
            }
            _ => return Ok(false),
        }
        if !matches!(k, "units" | "basefreq" | "kron" | "neutral" | "nphases") {
            self.any_impedance = true;
        }
        Ok(true)
    }

    fn freq(&self) -> f64 {
        self.base_freq_hz.unwrap_or(60.0)
    }

    fn build(&self, name: &str, default_freq: f64, o: &Origin) -> Result<LineCode, FeederError> {
        let n = self.nphases.unwrap_or(3);
        if n == 4 && !self.kron {
            return Err(o.err(format!(
                "{name}: nphases=4 needs kron=yes (an explicit neutral conductor is not supported)"
            )));
        }
        let (z, c_nf) = if let (Some(r), Some(x)) = (&self.rmatrix, &self.xmatrix) {
            let r = square(r, n, "rmatrix", o)?;
            let x = square(x, n, "xmatrix", o)?;
            let c = match &self.cmatrix {
                Some(c) => square(c, n, "cmatrix", o)?,
                None => {
                    return Err(o.err(format!(
                        "{name}: rmatrix/xmatrix given without cmatrix (give cmatrix=[0 |0 0 |0 0 0] for none; OpenDSS's default capacitance is not applied)"
                    )))
                }
            };
            let zc: Vec<Vec<C64>> = (0..n)
                .map(|i| (0..n).map(|j| C64::new(r[i][j], x[i][j])).collect())
                .collect();
            let z = kron3(&zc, o)?;
            // Kron-reducing capacitance is done on the potential-coefficient
            // side in OpenDSS; for a neutral we keep the phase block.
            let c3 = Matrix3::from_fn(|i, j| c[i][j]);
            (z, c3)
        } else if self.rmatrix.is_some() || self.xmatrix.is_some() {
            return Err(o.err(format!("{name}: give both rmatrix and xmatrix")));
        } else {
            if n == 4 {
                return Err(o.err(format!(
                    "{name}: nphases=4 with sequence values: use nphases=3 (sequence values already include the neutral return)"
                )));
            }
            let (Some(r1), Some(x1), Some(r0), Some(x0)) = (self.r1, self.x1, self.r0, self.x0)
            else {
                return Err(o.err(format!(
                    "{name}: give r1, x1, r0 and x0 (or rmatrix/xmatrix/cmatrix); OpenDSS's default impedances are not applied"
                )));
            };
            let (Some(c1), Some(c0)) = (self.c1, self.c0) else {
                return Err(o.err(format!(
                    "{name}: give c1 and c0 (0 for none); OpenDSS's default capacitances are not applied"
                )));
            };
            (
                from_seq(C64::new(r1, x1), C64::new(r0, x0)),
                from_seq(c1, c0),
            )
        };
        Ok(LineCode {
            name: name.to_string(),
            z,
            c_nf,
            units: self.units.flatten(),
            base_freq_hz: self.base_freq_hz.unwrap_or(default_freq),
        })
    }
}

impl Parser {
    fn file(
        &mut self,
        text: &str,
        name: &Path,
        read: &mut dyn FnMut(&Path) -> Result<String, String>,
        depth: usize,
    ) -> Result<(), FeederError> {
        let file = name.display().to_string();
        // Join `~` continuation lines onto their command.
        let mut commands: Vec<(usize, String)> = Vec::new();
        for (k, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            // `~ …` and `more …` continue the command before them.
            let lower = line.to_ascii_lowercase();
            let continuation = match line.strip_prefix('~') {
                Some(rest) => Some(("~", rest)),
                None if lower == "more" || lower.starts_with("more ") => Some(("more", &line[4..])),
                None => None,
            };
            if let Some((word, rest)) = continuation {
                match commands.last_mut() {
                    Some((_, c)) => {
                        c.push(' ');
                        c.push_str(rest);
                    }
                    None => {
                        return Err(FeederError::Dss {
                            file,
                            line: k + 1,
                            message: format!("continuation `{word}` with no command before it"),
                        })
                    }
                }
                continue;
            }
            commands.push((k + 1, line.to_string()));
        }
        for (line, cmd) in commands {
            let o = Origin {
                file: file.clone(),
                line,
            };
            self.command(&cmd, &o, name, read, depth)?;
        }
        Ok(())
    }

    fn command(
        &mut self,
        cmd: &str,
        o: &Origin,
        name: &Path,
        read: &mut dyn FnMut(&Path) -> Result<String, String>,
        depth: usize,
    ) -> Result<(), FeederError> {
        let cmd = cmd.trim();
        let (verb, rest) = match cmd.find(char::is_whitespace) {
            Some(i) => (&cmd[..i], cmd[i..].trim()),
            None => (cmd, ""),
        };
        let verb_l = verb.to_ascii_lowercase();
        match verb_l.as_str() {
            "clear" | "clearall" => {
                self.model = DssModel::default();
                self.codes.clear();
                self.pending_lines.clear();
                self.base_freq_hz = 60.0;
                Ok(())
            }
            "redirect" | "compile" => {
                let target = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                if target.is_empty() {
                    return Err(o.err(format!("{verb}: no file named")));
                }
                if depth >= 16 {
                    return Err(o.err(format!(
                        "{verb} {target}: redirects nested more than 16 deep (a loop?)"
                    )));
                }
                let path: PathBuf = match name.parent() {
                    Some(dir) => dir.join(target),
                    None => PathBuf::from(target),
                };
                let text = read(&path)
                    .map_err(|e| o.err(format!("{verb} {}: {e}", path.display())))?;
                self.file(&text, &path, read, depth + 1)
            }
            "buscoords" | "latlongcoords" => {
                self.model.notes.push(format!(
                    "{}:{}: `{verb}` ignored (coordinates do not affect the power flow)",
                    o.file, o.line
                ));
                Ok(())
            }
            "solve" => {
                self.model.notes.push(format!(
                    "{}:{}: `solve` ignored (maslow solves through Network::solve)",
                    o.file, o.line
                ));
                Ok(())
            }
            "calcvoltagebases" | "calcv" => {
                self.model.calc_voltage_bases = true;
                Ok(())
            }
            "set" => {
                let toks = tokenize(rest, o)?;
                for p in props(&toks, o)? {
                    match p.key.as_str() {
                        "voltagebases" => {
                            let v = nums(&p.value, "voltagebases", o)?;
                            if v.iter().any(|x| *x <= 0.0) {
                                return Err(o.err("voltagebases must be positive kV"));
                            }
                            self.model.voltage_bases_kv = v;
                        }
                        "defaultbasefrequency" => {
                            self.base_freq_hz = num(&p.value, "defaultbasefrequency", o)?;
                        }
                        other => {
                            return Err(o.err(format!(
                                "`set {other}` is not supported (supported: voltagebases, defaultbasefrequency)"
                            )))
                        }
                    }
                }
                Ok(())
            }
            "new" | "edit" => {
                let toks = tokenize(rest, o)?;
                let (obj, toks) = match toks.as_slice() {
                    [Tok::Word(k), Tok::Eq, Tok::Word(v), tail @ ..]
                        if k.eq_ignore_ascii_case("object") =>
                    {
                        (v.clone(), tail)
                    }
                    [Tok::Word(v), tail @ ..] => (v.clone(), tail),
                    _ => return Err(o.err(format!("{verb}: expected Class.name"))),
                };
                let Some((class, ename)) = obj.split_once('.') else {
                    return Err(o.err(format!("{verb} {obj}: expected Class.name")));
                };
                let class = class.to_ascii_lowercase();
                let ename = ename.to_ascii_lowercase();
                if ename.is_empty() {
                    return Err(o.err(format!("{verb} {obj}: empty name")));
                }
                let ps = props(toks, o)?;
                match (verb_l.as_str(), class.as_str()) {
                    ("new", "circuit") => {
                        self.model.circuit = ename;
                        self.model.source = None;
                        self.source(&ps, o)
                    }
                    ("edit", "vsource") if ename == "source" => {
                        if self.model.source.is_none() {
                            return Err(o.err("Edit Vsource.source before New Circuit"));
                        }
                        self.source(&ps, o)
                    }
                    ("new", "transformer") => self.transformer(ename, &ps, o),
                    ("new", "linecode") => self.linecode(ename, &ps, o),
                    ("new", "line") => self.line(ename, &ps, o),
                    ("new", "load") => self.load(ename, &ps, o),
                    ("new", "loadshape" | "monitor" | "energymeter") => {
                        self.model.notes.push(format!(
                            "{}:{}: `New {class}.{ename}` ignored (does not change a snapshot power flow)",
                            o.file, o.line
                        ));
                        Ok(())
                    }
                    (v, c) => Err(o.err(format!(
                        "`{v} {c}.` is not supported (supported: New Circuit, Edit Vsource.source, New Transformer, New LineCode, New Line, New Load)"
                    ))),
                }
            }
            _ => Err(o.err(format!(
                "command `{verb}` is not supported (supported: Clear, New, Edit Vsource.source, Set voltagebases, CalcVoltageBases, Redirect, Compile, Buscoords (ignored), Solve (ignored))"
            ))),
        }
    }

    fn source(&mut self, ps: &[Prop], o: &Origin) -> Result<(), FeederError> {
        // OpenDSS defaults.
        let mut s = self.model.source.clone().unwrap_or(DssSource {
            bus: "sourcebus".into(),
            base_kv: 115.0,
            pu: 1.0,
            angle_deg: 0.0,
            z1_ohm: C64::new(0.0, 0.0),
            z0_ohm: C64::new(0.0, 0.0),
            origin: o.clone(),
        });
        if self.model.source.is_none() {
            self.sc = SourceSc::default();
        }
        let st = &mut self.sc;
        for p in ps {
            let (k, v) = (p.key.as_str(), p.value.as_str());
            match k {
                "bus1" => s.bus = three_phase_bus(v, o)?,
                "basekv" => s.base_kv = num(v, k, o)?,
                "pu" => s.pu = num(v, k, o)?,
                "angle" => s.angle_deg = num(v, k, o)?,
                "phases" => {
                    if num(v, k, o)? != 3.0 {
                        return Err(o.err("only a three-phase source is supported"));
                    }
                }
                "mvasc3" => st.sc3 = Sc::Mva(num(v, k, o)?),
                "mvasc1" => st.sc1 = Sc::Mva(num(v, k, o)?),
                "isc3" => st.sc3 = Sc::Amps(num(v, k, o)?),
                "isc1" => st.sc1 = Sc::Amps(num(v, k, o)?),
                "x1r1" => st.x1r1 = num(v, k, o)?,
                "x0r0" => st.x0r0 = num(v, k, o)?,
                "r1" => st.r1 = Some(num(v, k, o)?),
                "x1" => st.x1 = Some(num(v, k, o)?),
                "r0" => st.r0 = Some(num(v, k, o)?),
                "x0" => st.x0 = Some(num(v, k, o)?),
                "frequency" | "basefreq" => {}
                other => {
                    return Err(o.err(format!(
                        "Vsource property `{other}` is not supported (supported: bus1, basekv, pu, angle, phases, mvasc3, mvasc1, isc3, isc1, x1r1, x0r0, r1, x1, r0, x0)"
                    )))
                }
            }
        }
        if !(s.base_kv > 0.0 && s.pu > 0.0) {
            return Err(o.err("basekv and pu must be positive"));
        }
        // Short-circuit levels on the final basekv, whatever the order given.
        let mva = |sc: Sc| match sc {
            Sc::Mva(m) => m,
            Sc::Amps(i) => i * s.base_kv * 3f64.sqrt() / 1000.0,
        };
        let (m3, m1) = (mva(st.sc3), mva(st.sc1));
        if m3 <= 0.0 || m1 <= 0.0 {
            return Err(o.err("mvasc3/isc3 and mvasc1/isc1 must be positive"));
        }
        let z1 = C64::from_polar(s.base_kv * s.base_kv / m3, st.x1r1.atan());
        // |2 Z1 + Z0| = 3 V_ln / I_sc1 = kV² / MVAsc1, Z0 = R0 (1 + j x0r0).
        let x0r0 = st.x0r0;
        let a = 1.0 + x0r0 * x0r0;
        let b = 4.0 * (z1.re + z1.im * x0r0);
        let zs = s.base_kv * s.base_kv / m1;
        let c = 4.0 * z1.norm_sqr() - zs * zs;
        let disc = b * b - 4.0 * a * c;
        if disc < 0.0 {
            return Err(o.err("mvasc1/isc1 inconsistent with mvasc3/isc3"));
        }
        let r0v = (-b + disc.sqrt()) / (2.0 * a);
        s.z1_ohm = C64::new(st.r1.unwrap_or(z1.re), st.x1.unwrap_or(z1.im));
        s.z0_ohm = C64::new(st.r0.unwrap_or(r0v), st.x0.unwrap_or(r0v * x0r0));
        self.model.source = Some(s);
        Ok(())
    }

    fn transformer(&mut self, name: String, ps: &[Prop], o: &Origin) -> Result<(), FeederError> {
        let mut t = DssTransformer {
            name,
            buses: [String::new(), String::new()],
            conns: [Conn::Wye, Conn::Wye],
            kvs: [12.47, 12.47],
            kvas: [1000.0, 1000.0],
            r_pct: [0.2, 0.2],
            xhl_pct: 7.0,
            taps: [1.0, 1.0],
            origin: o.clone(),
        };
        let mut wdg = 0usize;
        let two = |v: &str, k: &str| -> Result<[f64; 2], FeederError> {
            let x = nums(v, k, o)?;
            match x.as_slice() {
                [a, b] => Ok([*a, *b]),
                _ => Err(o.err(format!(
                    "`{k}` needs 2 values (2-winding transformers only)"
                ))),
            }
        };
        for p in ps {
            let (k, v) = (p.key.as_str(), p.value.as_str());
            match k {
                "phases" => {
                    if num(v, k, o)? != 3.0 {
                        return Err(o.err("only three-phase transformers are supported"));
                    }
                }
                "windings" => {
                    if num(v, k, o)? != 2.0 {
                        return Err(o.err("only 2-winding transformers are supported"));
                    }
                }
                "buses" => {
                    let b = list(v);
                    if b.len() != 2 {
                        return Err(o.err("`buses` needs 2 buses (2-winding transformers only)"));
                    }
                    for (i, bb) in b.iter().enumerate() {
                        t.buses[i] = three_phase_bus(bb, o)?;
                    }
                }
                "conns" => {
                    let c = list(v);
                    if c.len() != 2 {
                        return Err(o.err("`conns` needs 2 values"));
                    }
                    for (i, cc) in c.iter().enumerate() {
                        t.conns[i] = conn(cc, o)?;
                    }
                }
                "kvs" => t.kvs = two(v, k)?,
                "kvas" => t.kvas = two(v, k)?,
                "%rs" => t.r_pct = two(v, k)?,
                "taps" => t.taps = two(v, k)?,
                "xhl" | "x12" => t.xhl_pct = num(v, k, o)?,
                "%loadloss" => {
                    let r = num(v, k, o)?;
                    t.r_pct = [r / 2.0, r / 2.0];
                }
                "wdg" => {
                    let w = num(v, k, o)?;
                    if w != 1.0 && w != 2.0 {
                        return Err(o.err("wdg= must be 1 or 2"));
                    }
                    wdg = w as usize - 1;
                }
                "bus" => t.buses[wdg] = three_phase_bus(v, o)?,
                "conn" => t.conns[wdg] = conn(v, o)?,
                "kv" => t.kvs[wdg] = num(v, k, o)?,
                "kva" => t.kvas[wdg] = num(v, k, o)?,
                "%r" => t.r_pct[wdg] = num(v, k, o)?,
                "tap" => t.taps[wdg] = num(v, k, o)?,
                "%noloadloss" | "%imag" => {
                    if num(v, k, o)? != 0.0 {
                        return Err(o.err(format!(
                            "`{k}={v}`: magnetising branches are not supported (give 0)"
                        )));
                    }
                }
                "sub" | "normhkva" | "emerghkva" => {}
                other => {
                    return Err(o.err(format!(
                        "Transformer property `{other}` is not supported (supported: phases, windings, buses, conns, kvs, kvas, %rs, %r, %loadloss, xhl, taps, wdg/bus/conn/kv/kva/tap, %noloadloss=0, %imag=0, sub)"
                    )))
                }
            }
        }
        if t.buses.iter().any(|b| b.is_empty()) {
            return Err(o.err(format!("Transformer.{}: both buses must be given", t.name)));
        }
        if t.kvs
            .iter()
            .chain(&t.kvas)
            .chain(&t.taps)
            .any(|x| *x <= 0.0)
        {
            return Err(o.err(format!(
                "Transformer.{}: kvs, kvas and taps must be positive",
                t.name
            )));
        }
        if t.r_pct.iter().any(|x| *x < 0.0) || t.xhl_pct < 0.0 {
            return Err(o.err(format!(
                "Transformer.{}: %r and xhl must not be negative",
                t.name
            )));
        }
        self.model.transformers.push(t);
        Ok(())
    }

    fn linecode(&mut self, name: String, ps: &[Prop], o: &Origin) -> Result<(), FeederError> {
        let mut cp = CodeProps {
            base_freq_hz: Some(self.base_freq_hz),
            ..Default::default()
        };
        for p in ps {
            if !cp.take(p, o)? {
                return Err(o.err(format!(
                    "LineCode property `{}` is not supported (supported: nphases, r1, x1, r0, x0, c1, c0, b1, b0, rmatrix, xmatrix, cmatrix, units, kron, neutral, basefreq, normamps, emergamps)",
                    p.key
                )));
            }
        }
        let code = cp.build(&name, self.base_freq_hz, o)?;
        self.codes.retain(|c| c.name != name);
        self.codes.push(code);
        Ok(())
    }

    fn line(&mut self, name: String, ps: &[Prop], o: &Origin) -> Result<(), FeederError> {
        let mut cp = CodeProps {
            base_freq_hz: Some(self.base_freq_hz),
            ..Default::default()
        };
        let mut pl = PendingLine {
            name,
            bus1: String::new(),
            bus2: String::new(),
            code: None,
            own: None,
            length: 1.0,
            units: None,
            origin: o.clone(),
        };
        let mut units_given = None;
        for p in ps {
            let (k, v) = (p.key.as_str(), p.value.as_str());
            match k {
                "bus1" => pl.bus1 = three_phase_bus(v, o)?,
                "bus2" => pl.bus2 = three_phase_bus(v, o)?,
                "linecode" => pl.code = Some(v.trim().to_ascii_lowercase()),
                "length" => {
                    pl.length = num(v, k, o)?;
                    if pl.length < 0.0 {
                        return Err(o.err("length must not be negative"));
                    }
                }
                "units" => units_given = Some(unit_m(v, o)?),
                "phases" => {
                    if num(v, k, o)? != 3.0 {
                        return Err(o.err(format!(
                            "Line.{}: phases={v}: only three-phase lines are supported",
                            pl.name
                        )));
                    }
                }
                "switch" | "enabled" => {
                    return Err(o.err(format!("Line property `{k}` is not supported")));
                }
                _ => {
                    if !cp.take(p, o)? {
                        return Err(o.err(format!(
                            "Line property `{k}` is not supported (supported: bus1, bus2, linecode, length, units, phases=3, and the LineCode impedance properties)"
                        )));
                    }
                }
            }
        }
        if pl.bus1.is_empty() || pl.bus2.is_empty() {
            return Err(o.err(format!("Line.{}: bus1 and bus2 must be given", pl.name)));
        }
        pl.units = units_given.flatten();
        if cp.any_impedance {
            if pl.code.is_some() {
                return Err(o.err(format!(
                    "Line.{}: give either linecode= or impedance properties, not both",
                    pl.name
                )));
            }
            cp.units = units_given;
            pl.own = Some(cp.build(&pl.name, self.base_freq_hz, o)?);
        } else if pl.code.is_none() {
            return Err(o.err(format!(
                "Line.{}: give linecode= (OpenDSS's default line impedances are not applied)",
                pl.name
            )));
        }
        self.pending_lines.push(pl);
        Ok(())
    }

    fn load(&mut self, name: String, ps: &[Prop], o: &Origin) -> Result<(), FeederError> {
        let mut bus = None;
        let mut nphases = 3usize;
        let mut kv = 12.47;
        let mut kw = 10.0;
        let mut pf = 0.88;
        let mut kvar: Option<f64> = None;
        let (mut vminpu, mut vmaxpu) = (0.95, 1.05);
        for p in ps {
            let (k, v) = (p.key.as_str(), p.value.as_str());
            match k {
                "bus1" => bus = Some(bus_spec(v, o)?),
                "phases" => {
                    let n = num(v, k, o)?;
                    if n != 1.0 && n != 3.0 {
                        return Err(o.err("Load phases must be 1 or 3"));
                    }
                    nphases = n as usize;
                }
                "kv" => kv = num(v, k, o)?,
                "kw" => kw = num(v, k, o)?,
                "pf" => {
                    pf = num(v, k, o)?;
                    if pf == 0.0 || pf.abs() > 1.0 {
                        return Err(o.err(format!("pf={v}: must be within [-1, 0) or (0, 1]")));
                    }
                    kvar = None;
                }
                "kvar" => kvar = Some(num(v, k, o)?),
                "model" => {
                    if num(v, k, o)? != 1.0 {
                        return Err(o.err(format!(
                            "Load model={v} is not supported (only model=1, constant P and Q)"
                        )));
                    }
                }
                "conn" => {
                    if conn(v, o)? != Conn::Wye {
                        return Err(o.err("delta-connected loads are not supported"));
                    }
                }
                "vminpu" => vminpu = num(v, k, o)?,
                "vmaxpu" => vmaxpu = num(v, k, o)?,
                "yearly" | "daily" | "duty" | "status" | "class" => {
                    self.model.notes.push(format!(
                        "{}:{}: Load.{name}: `{k}` ignored (snapshot power flow)",
                        o.file, o.line
                    ));
                }
                other => {
                    return Err(o.err(format!(
                        "Load property `{other}` is not supported (supported: bus1, phases, kv, kw, kvar, pf, model=1, conn=wye, vminpu, vmaxpu; yearly/daily/duty ignored)"
                    )))
                }
            }
        }
        let Some((bus, nodes)) = bus else {
            return Err(o.err(format!("Load.{name}: bus1 must be given")));
        };
        let mut phases = [false; 3];
        if nphases == 3 {
            match nodes.as_slice() {
                [] | [1, 2, 3] | [1, 2, 3, 0] => phases = [true; 3],
                _ => {
                    return Err(o.err(format!(
                        "Load.{name}: a three-phase load must connect to .1.2.3"
                    )))
                }
            }
        } else {
            match nodes.as_slice() {
                [p @ 1..=3] | [p @ 1..=3, 0] => phases[*p as usize - 1] = true,
                [] => phases[0] = true,
                _ => {
                    return Err(o.err(format!(
                        "Load.{name}: a single-phase load must connect one phase to ground (bus.1, bus.2 or bus.3, optionally .0); phase-to-phase loads are not supported"
                    )))
                }
            }
        }
        if kv <= 0.0 || !(vminpu > 0.0 && vmaxpu > vminpu) {
            return Err(o.err(format!(
                "Load.{name}: kv must be positive and 0 < vminpu < vmaxpu"
            )));
        }
        let kvar = kvar.unwrap_or_else(|| kw.abs() * (1.0 / (pf * pf) - 1.0).sqrt() * pf.signum());
        self.model.loads.retain(|l| l.name != name);
        self.model.loads.push(DssLoad {
            name,
            bus,
            phases,
            kv,
            kw,
            kvar,
            vminpu,
            vmaxpu,
            origin: o.clone(),
        });
        Ok(())
    }

    fn finish(mut self) -> Result<DssModel, FeederError> {
        for pl in std::mem::take(&mut self.pending_lines) {
            let code = match (&pl.own, &pl.code) {
                (Some(c), _) => c.clone(),
                (None, Some(name)) => match self.codes.iter().find(|c| &c.name == name) {
                    Some(c) => c.clone(),
                    None => {
                        return Err(pl.origin.err(format!(
                            "Line.{}: LineCode `{name}` is not defined",
                            pl.name
                        )))
                    }
                },
                (None, None) => {
                    return Err(pl.origin.err(format!("Line.{}: no impedance", pl.name)))
                }
            };
            // Length in code units.
            let scale = match (code.units, pl.units) {
                (Some(cu), Some(lu)) => pl.length * lu / cu,
                _ => pl.length,
            };
            let w = 2.0 * std::f64::consts::PI * code.base_freq_hz;
            let z_ohm = code.z * C64::new(scale, 0.0);
            let y_shunt_s = code.c_nf.map(|c| C64::new(0.0, w * c * 1e-9 * scale));
            self.model.lines.push(DssLine {
                name: pl.name,
                bus1: pl.bus1,
                bus2: pl.bus2,
                z_ohm,
                y_shunt_s,
                origin: pl.origin,
            });
        }
        Ok(self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DssModel, FeederError> {
        let mut files = |p: &Path| -> Result<String, String> {
            if p.ends_with("codes.dss") {
                Ok(
                    "New LineCode.lc nphases=3 r1=0.1 x1=0.05 r0=0.4 x0=0.1 c1=0 c0=0 units=km\n"
                        .into(),
                )
            } else {
                Err(format!("no such file {}", p.display()))
            }
        };
        parse_str(text, Path::new("dir/master.dss"), &mut files)
    }

    const BASIC: &str = "Clear\n\
        New Circuit.t basekv=11 pu=1.05 r1=0.01 x1=0.1 r0=0.01 x0=0.1\n\
        New Transformer.tr buses=[sourcebus lv] conns=[delta wye] kvs=[11 0.416] kvas=[800 800] %rs=[0.2 0.2] xhl=4\n\
        redirect codes.dss\n\
        New Line.l1 bus1=lv bus2=b2 linecode=lc length=100 units=m\n\
        New Load.ld1 bus1=b2.2 phases=1 kv=0.24 kw=2 pf=0.95 model=1\n\
        set voltagebases=[11 0.416]\n\
        calcvoltagebases\n";

    #[test]
    fn parses_the_basic_subset() {
        let m = parse(BASIC).unwrap();
        assert_eq!(m.lines.len(), 1);
        assert!((m.lines[0].z_ohm[(0, 0)].re - (0.4 + 0.2) / 3.0 * 0.1).abs() < 1e-12);
        assert_eq!(m.loads[0].phases, [false, true, false]);
        assert_eq!(m.transformers[0].conns, [Conn::Delta, Conn::Wye]);
        assert_eq!(m.voltage_bases_kv, vec![11.0, 0.416]);
    }

    #[test]
    fn errors_name_file_line_and_thing() {
        let e = parse("Clear\nNew Circuit.x\nNew Capacitor.c1 bus1=a\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("dir/master.dss:3:"), "{s}");
        assert!(s.contains("capacitor"), "{s}");
        let e = parse("New Circuit.x foo=3\n").unwrap_err().to_string();
        assert!(e.contains("foo") && e.contains(":1:"), "{e}");
        let e = parse("redirect nothere.dss\n").unwrap_err().to_string();
        assert!(e.contains("nothere.dss"), "{e}");
    }

    #[test]
    fn continuation_and_comments() {
        let a = parse(BASIC).unwrap();
        let b = parse(&BASIC.replace(
            "New Line.l1 bus1=lv bus2=b2 linecode=lc length=100 units=m",
            "NEW line.L1 ! a comment\n~ Bus1 = LV  // another\n~ bus2=B2 LineCode=LC\n~ length=0.1 units=km",
        ))
        .unwrap();
        assert_eq!(a.lines.len(), b.lines.len());
        assert!((a.lines[0].z_ohm - b.lines[0].z_ohm).norm() < 1e-15);
    }

    #[test]
    fn short_circuit_levels_give_the_sequence_impedances() {
        // The IEEE European LV feeder's original source: 11 kV, Isc3 3000 A, Isc1 5 A.
        let m = parse("New Circuit.x\nEdit Vsource.source isc3=3000 isc1=5 basekv=11 pu=1.05\nNew Loadshape.s npts=2\nNew Monitor.m element=line.a\n").unwrap();
        let s = m.source.unwrap();
        let mvasc3 = 3000.0 * 11.0 * 3f64.sqrt() / 1000.0;
        let mvasc1 = 5.0 * 11.0 * 3f64.sqrt() / 1000.0;
        assert!((s.z1_ohm.norm() - 121.0 / mvasc3).abs() < 1e-9);
        assert!((s.z1_ohm.im / s.z1_ohm.re - 4.0).abs() < 1e-9);
        // |2 Z1 + Z0| = 3 V_ln / I_sc1 = kV² / MVAsc1, with X0/R0 = 3.
        assert!(((s.z1_ohm * 2.0 + s.z0_ohm).norm() - 121.0 / mvasc1).abs() < 1e-6);
        assert!((s.z0_ohm.im / s.z0_ohm.re - 3.0).abs() < 1e-9);
        assert_eq!(s.pu, 1.05);
        assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
    }

    #[test]
    fn editing_basekv_recomputes_the_source_impedance() {
        let m =
            parse("New Circuit.x mvasc3=100 mvasc1=100\nEdit Vsource.source basekv=0.4\n").unwrap();
        let z1 = m.source.unwrap().z1_ohm;
        assert!((z1.norm() - 0.16 / 100.0).abs() < 1e-12, "{z1}");
    }

    #[test]
    fn kron_reduces_four_wire_codes() {
        let m = parse(
            "New Circuit.x\nNew LineCode.k nphases=4 kron=yes units=km rmatrix=[1|0 1|0 0 1|0 0 0 1] xmatrix=[0|0 0|0 0 0|0 0 0 0] cmatrix=[0|0 0|0 0 0|0 0 0 0]\nNew Line.a bus1=s bus2=b linecode=k length=1 units=km\n",
        )
        .unwrap();
        // Diagonal matrix: Kron reduction leaves the phase block.
        assert!((m.lines[0].z_ohm[(0, 0)].re - 1.0).abs() < 1e-12);
    }
}
