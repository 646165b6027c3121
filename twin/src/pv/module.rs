//! CEC module parameters, as they appear in the SAM/CEC module database.
//!
//! A module file is a flat TOML table whose keys are the database's field
//! names exactly (`Technology`, `Bifacial`, `STC`, `PTC`, `A_c`, `Length`,
//! `Width`, `N_s`, `I_sc_ref`, `V_oc_ref`, `I_mp_ref`, `V_mp_ref`,
//! `alpha_sc`, `beta_oc`, `T_NOCT`, `a_ref`, `I_L_ref`, `I_o_ref`, `R_s`,
//! `R_sh_ref`, `Adjust`, `gamma_r`, `BIPV`, `Version`, `Date`), plus the
//! optional `Name` and `Manufacturer` columns of SAM's CSV, so a database
//! row pastes in as it is. The model needs `N_s`, `alpha_sc`, `a_ref`,
//! `I_L_ref`, `I_o_ref`, `R_s`, `R_sh_ref` and `Adjust`; the rest are kept
//! for reference. Unknown keys are rejected, naming the key. Numbers may be
//! written as integers or floats; optional numbers may be `nan` (the
//! database has blanks for `Length`/`Width`).

use std::path::Path;

use serde::Deserialize;

use crate::params::{self, ParamError};

/// Single-diode parameters of one module at reference conditions (STC:
/// 1000 W/m², 25 °C cell), CEC/De Soto form, plus the datasheet fields the
/// database carries.
#[derive(Debug, Clone, PartialEq)]
pub struct CecModule {
    /// Database row name (`Name`), when given.
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    /// `Technology`, e.g. `Mono-c-Si`, `CdTe`.
    pub technology: Option<String>,
    pub bifacial: Option<bool>,
    /// `STC`: rated power at STC, W.
    pub stc_w: Option<f64>,
    /// `PTC`: PVUSA test-condition power, W.
    pub ptc_w: Option<f64>,
    /// `A_c`: module area, m².
    pub area_m2: Option<f64>,
    pub length_m: Option<f64>,
    pub width_m: Option<f64>,
    /// `N_s`: cells in series.
    pub n_s: u32,
    pub i_sc_ref: Option<f64>,
    pub v_oc_ref: Option<f64>,
    pub i_mp_ref: Option<f64>,
    pub v_mp_ref: Option<f64>,
    /// `alpha_sc`: short-circuit current temperature coefficient, A/K.
    pub alpha_sc: f64,
    /// `beta_oc`: open-circuit voltage temperature coefficient, V/K.
    pub beta_oc: Option<f64>,
    /// `T_NOCT`, °C.
    pub t_noct_c: Option<f64>,
    /// `a_ref`: modified ideality factor n·N_s·Vth at reference, V.
    pub a_ref: f64,
    /// `I_L_ref`: light-generated current at reference, A.
    pub i_l_ref: f64,
    /// `I_o_ref`: diode saturation current at reference, A.
    pub i_o_ref: f64,
    /// `R_s`: series resistance, Ω.
    pub r_s: f64,
    /// `R_sh_ref`: shunt resistance at reference, Ω.
    pub r_sh_ref: f64,
    /// `Adjust`: CEC adjustment to `alpha_sc`, percent.
    pub adjust: f64,
    /// `gamma_r`: power temperature coefficient, %/K.
    pub gamma_r: Option<f64>,
    pub bipv: Option<bool>,
    pub version: Option<String>,
    pub date: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// `Bifacial` / `BIPV`: the database writes 0/1 or "Y"/"N" (and NaN for
/// unknown).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Flag {
    fn to_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self {
            Flag::Bool(b) => Ok(Some(*b)),
            Flag::Int(0) => Ok(Some(false)),
            Flag::Int(1) => Ok(Some(true)),
            Flag::Float(f) if f.is_nan() => Ok(None),
            Flag::Float(f) if *f == 0.0 => Ok(Some(false)),
            Flag::Float(f) if *f == 1.0 => Ok(Some(true)),
            Flag::Text(s) => match s.trim() {
                "Y" | "y" | "Yes" | "yes" | "true" | "1" => Ok(Some(true)),
                "N" | "n" | "No" | "no" | "false" | "0" => Ok(Some(false)),
                "" => Ok(None),
                other => Err(format!("`{key}` = \"{other}\": expected Y or N")),
            },
            other => Err(format!("`{key}` = {other:?}: expected 0/1 or Y/N")),
        }
    }
}

#[allow(non_snake_case)]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCec {
    Name: Option<String>,
    Manufacturer: Option<String>,
    Technology: Option<String>,
    Bifacial: Option<Flag>,
    STC: Option<Num>,
    PTC: Option<Num>,
    A_c: Option<Num>,
    Length: Option<Num>,
    Width: Option<Num>,
    N_s: Option<Num>,
    I_sc_ref: Option<Num>,
    V_oc_ref: Option<Num>,
    I_mp_ref: Option<Num>,
    V_mp_ref: Option<Num>,
    alpha_sc: Option<Num>,
    beta_oc: Option<Num>,
    T_NOCT: Option<Num>,
    a_ref: Option<Num>,
    I_L_ref: Option<Num>,
    I_o_ref: Option<Num>,
    R_s: Option<Num>,
    R_sh_ref: Option<Num>,
    Adjust: Option<Num>,
    gamma_r: Option<Num>,
    BIPV: Option<Flag>,
    Version: Option<String>,
    Date: Option<String>,
}

fn opt(v: Option<Num>) -> Option<f64> {
    v.map(Num::f).filter(|x| !x.is_nan())
}

fn req(v: Option<Num>, key: &str) -> Result<f64, String> {
    let x = v
        .map(Num::f)
        .ok_or_else(|| format!("missing key `{key}` (required by the single-diode model)"))?;
    if !x.is_finite() {
        return Err(format!("`{key}` = {x}: must be a finite number"));
    }
    Ok(x)
}

impl CecModule {
    /// Reads a module file (see the module docs for the schema).
    pub fn load(path: &Path) -> Result<CecModule, ParamError> {
        let text = params::read_text(path)?;
        Self::parse(path, &text)
    }

    /// Parses module TOML text that came from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<CecModule, ParamError> {
        let raw: RawCec = params::parse_toml(path, text)?;
        Self::from_raw(raw).map_err(|m| ParamError::invalid(path, m))
    }

    fn from_raw(r: RawCec) -> Result<CecModule, String> {
        let n_s = req(r.N_s, "N_s")?;
        if n_s < 1.0 || n_s.fract() != 0.0 || n_s > 100_000.0 {
            return Err(format!(
                "`N_s` = {n_s}: must be a whole number of cells >= 1"
            ));
        }
        let m = CecModule {
            name: r.Name,
            manufacturer: r.Manufacturer,
            technology: r.Technology,
            bifacial: r
                .Bifacial
                .map(|f| f.to_bool("Bifacial"))
                .transpose()?
                .flatten(),
            stc_w: opt(r.STC),
            ptc_w: opt(r.PTC),
            area_m2: opt(r.A_c),
            length_m: opt(r.Length),
            width_m: opt(r.Width),
            n_s: n_s as u32,
            i_sc_ref: opt(r.I_sc_ref),
            v_oc_ref: opt(r.V_oc_ref),
            i_mp_ref: opt(r.I_mp_ref),
            v_mp_ref: opt(r.V_mp_ref),
            alpha_sc: req(r.alpha_sc, "alpha_sc")?,
            beta_oc: opt(r.beta_oc),
            t_noct_c: opt(r.T_NOCT),
            a_ref: req(r.a_ref, "a_ref")?,
            i_l_ref: req(r.I_L_ref, "I_L_ref")?,
            i_o_ref: req(r.I_o_ref, "I_o_ref")?,
            r_s: req(r.R_s, "R_s")?,
            r_sh_ref: req(r.R_sh_ref, "R_sh_ref")?,
            adjust: req(r.Adjust, "Adjust")?,
            gamma_r: opt(r.gamma_r),
            bipv: r.BIPV.map(|f| f.to_bool("BIPV")).transpose()?.flatten(),
            version: r.Version,
            date: r.Date,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks the physical ranges of the fields the model uses.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, k: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("`{k}` = {v}: must be a finite number > 0"))
            }
        };
        pos(self.a_ref, "a_ref")?;
        pos(self.i_l_ref, "I_L_ref")?;
        pos(self.i_o_ref, "I_o_ref")?;
        pos(self.r_sh_ref, "R_sh_ref")?;
        if !(self.r_s.is_finite() && self.r_s >= 0.0) {
            return Err(format!(
                "`R_s` = {}: must be a finite number >= 0",
                self.r_s
            ));
        }
        if !self.alpha_sc.is_finite() || !self.adjust.is_finite() {
            return Err("`alpha_sc` and `Adjust` must be finite".into());
        }
        if self.n_s == 0 {
            return Err("`N_s` must be >= 1".into());
        }
        Ok(())
    }

    /// A short label for messages: the name, else the technology.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .or(self.technology.as_deref())
            .unwrap_or("module")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"
Name = "Test_Module"
Technology = "Mono-c-Si"
Bifacial = 0
STC = 400
PTC = 370.5
A_c = 1.94
Length = nan
Width = nan
N_s = 72
I_sc_ref = 10.2
V_oc_ref = 48.8
I_mp_ref = 9.6
V_mp_ref = 41.7
alpha_sc = 0.005
beta_oc = -0.14
T_NOCT = 44.0
a_ref = 1.8
I_L_ref = 10.2
I_o_ref = 1.0e-11
R_s = 0.3
R_sh_ref = 500.0
Adjust = 8.0
gamma_r = -0.37
BIPV = "N"
Version = "SAM 2018.11.11 r2"
Date = "1/3/2019"
"#;

    #[test]
    fn parses_a_database_row() {
        let m = CecModule::parse(Path::new("m.toml"), ROW).unwrap();
        assert_eq!(m.n_s, 72);
        assert_eq!(m.stc_w, Some(400.0));
        assert_eq!(m.length_m, None);
        assert_eq!(m.bipv, Some(false));
        assert_eq!(m.bifacial, Some(false));
        assert_eq!(m.label(), "Test_Module");
    }

    #[test]
    fn rejects_unknown_keys_by_name() {
        let text = format!("{ROW}\nR_shunt = 3.0\n");
        let e = CecModule::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.toml") && e.contains("R_shunt"), "{e}");
    }

    #[test]
    fn requires_model_fields_and_checks_ranges() {
        let text = ROW.replace("a_ref = 1.8\n", "");
        let e = CecModule::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing key `a_ref`"), "{e}");
        let text = ROW.replace("R_sh_ref = 500.0", "R_sh_ref = -5.0");
        let e = CecModule::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("R_sh_ref"), "{e}");
        let text = ROW.replace("N_s = 72", "N_s = 7.5");
        let e = CecModule::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("N_s"), "{e}");
    }

    #[test]
    fn shipped_modules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/modules");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let m = CecModule::load(&p).unwrap();
                assert!(m.name.is_some());
                n += 1;
            }
        }
        assert!(n >= 4);
    }
}
