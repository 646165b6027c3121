//! Material property functions of an SPMe parameter file: open-circuit
//! potentials over stoichiometry and electrolyte transport properties over
//! concentration, each either a constant, a table (linear interpolation,
//! clamped at the ends) or one of the named published fits PyBaMM ships
//! (same formulas, same coefficients).

use serde::Deserialize;

/// A property function as written in the file: a bare number, or a table
/// with exactly one of `value`, `function`, or `x` + `y`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FuncSpec {
    /// A constant.
    Number(f64),
    /// `{ value = .. }`, `{ function = "name" }` or `{ x = [..], y = [..] }`.
    Table(FuncTable),
}

/// The table form of [`FuncSpec`].
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FuncTable {
    /// A constant.
    pub value: Option<f64>,
    /// A named built-in fit (see [`Builtin`]).
    pub function: Option<String>,
    /// Breakpoints (stoichiometry, or concentration in mol/m³), increasing.
    pub x: Option<Vec<f64>>,
    /// Values at the breakpoints.
    pub y: Option<Vec<f64>>,
}

/// The published fits that parameter files may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// LG M50 graphite OCP, Chen et al. 2020 (V over stoichiometry).
    GraphiteChen2020Ocp,
    /// LG M50 NMC811 OCP, Chen et al. 2020 (V over stoichiometry).
    NmcChen2020Ocp,
    /// LFP OCP, Afshar et al. 2017 (V over stoichiometry).
    LfpAfshar2017Ocp,
    /// LiPF6 in EC:EMC diffusivity, Nyman et al. 2008 (m²/s over mol/m³).
    Nyman2008Diffusivity,
    /// LiPF6 in EC:EMC conductivity, Nyman et al. 2008 (S/m over mol/m³).
    Nyman2008Conductivity,
    /// Electrolyte conductivity of Prada et al. 2013 (S/m over mol/m³).
    Prada2013Conductivity,
}

impl Builtin {
    /// All names a file may use, with the fit they select.
    pub const NAMES: [(&'static str, Builtin); 6] = [
        ("graphite_chen2020_ocp", Builtin::GraphiteChen2020Ocp),
        ("nmc_chen2020_ocp", Builtin::NmcChen2020Ocp),
        ("lfp_afshar2017_ocp", Builtin::LfpAfshar2017Ocp),
        ("nyman2008_diffusivity", Builtin::Nyman2008Diffusivity),
        ("nyman2008_conductivity", Builtin::Nyman2008Conductivity),
        ("prada2013_conductivity", Builtin::Prada2013Conductivity),
    ];

    fn eval(self, x: f64) -> f64 {
        match self {
            Builtin::GraphiteChen2020Ocp => {
                1.9793 * (-39.3631 * x).exp() + 0.2482
                    - 0.0909 * (29.8538 * (x - 0.1234)).tanh()
                    - 0.04478 * (14.9159 * (x - 0.2769)).tanh()
                    - 0.0205 * (30.4444 * (x - 0.6103)).tanh()
            }
            Builtin::NmcChen2020Ocp => {
                -0.8090 * x + 4.4875
                    - 0.0428 * (18.5138 * (x - 0.5542)).tanh()
                    - 17.7326 * (15.7890 * (x - 0.3117)).tanh()
                    + 17.5842 * (15.9308 * (x - 0.3120)).tanh()
            }
            Builtin::LfpAfshar2017Ocp => {
                3.4077 - 0.020269 * x + 0.5 * (-150.0 * x).exp() - 0.9 * (-30.0 * (1.0 - x)).exp()
            }
            Builtin::Nyman2008Diffusivity => {
                let c = x / 1000.0;
                8.794e-11 * c * c - 3.972e-10 * c + 4.862e-10
            }
            Builtin::Nyman2008Conductivity => {
                let c = x / 1000.0;
                0.1297 * c * c * c - 2.51 * c * c.max(0.0).sqrt() + 3.329 * c
            }
            Builtin::Prada2013Conductivity => {
                let c = x / 1e6;
                (4.1253e-4 + 5.007 * c - 4721.2 * c * c + 1.5094e6 * c * c * c
                    - 1.6018e8 * c * c * c * c)
                    * 1e3
            }
        }
    }
}

/// A validated property function.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// A constant.
    Constant(f64),
    /// Linear interpolation over increasing `x`, clamped at the ends.
    Table {
        /// Breakpoints.
        x: Vec<f64>,
        /// Values.
        y: Vec<f64>,
    },
    /// A named fit.
    Builtin(Builtin),
}

impl Func {
    /// Validates a spec; the error text says what to write instead.
    pub fn from_spec(spec: &FuncSpec) -> Result<Func, String> {
        let t = match spec {
            FuncSpec::Number(v) => {
                return if v.is_finite() {
                    Ok(Func::Constant(*v))
                } else {
                    Err(format!("must be a finite number, found {v}"))
                }
            }
            FuncSpec::Table(t) => t,
        };
        match (&t.value, &t.function, &t.x, &t.y) {
            (Some(v), None, None, None) => {
                if v.is_finite() {
                    Ok(Func::Constant(*v))
                } else {
                    Err(format!("`value` must be finite, found {v}"))
                }
            }
            (None, Some(name), None, None) => Builtin::NAMES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| Func::Builtin(*b))
                .ok_or_else(|| {
                    let names: Vec<&str> = Builtin::NAMES.iter().map(|(n, _)| *n).collect();
                    format!("unknown function \"{name}\"; known: {}", names.join(", "))
                }),
            (None, None, Some(x), Some(y)) => {
                if x.len() != y.len() || x.len() < 2 {
                    return Err(format!(
                        "`x` and `y` need the same length, at least 2 (found {} and {})",
                        x.len(),
                        y.len()
                    ));
                }
                if x.iter().chain(y).any(|v| !v.is_finite()) {
                    return Err("`x` and `y` must be finite numbers".into());
                }
                if x.windows(2).any(|w| w[1] <= w[0]) {
                    return Err("`x` must be strictly increasing".into());
                }
                Ok(Func::Table {
                    x: x.clone(),
                    y: y.clone(),
                })
            }
            _ => Err(
                "write exactly one of: a number, `{ value = .. }`, `{ function = \"name\" }`, \
                 or `{ x = [..], y = [..] }`"
                    .into(),
            ),
        }
    }

    /// Evaluates at `x`.
    #[inline]
    pub fn eval(&self, x: f64) -> f64 {
        match self {
            Func::Constant(v) => *v,
            Func::Builtin(b) => b.eval(x),
            Func::Table { x: xs, y } => {
                let n = xs.len();
                if x <= xs[0] {
                    return y[0];
                }
                if x >= xs[n - 1] {
                    return y[n - 1];
                }
                let k = xs.partition_point(|&v| v <= x).clamp(1, n - 1);
                let (x0, x1) = (xs[k - 1], xs[k]);
                y[k - 1] + (y[k] - y[k - 1]) * (x - x0) / (x1 - x0)
            }
        }
    }

    /// Whether the function is a constant.
    pub fn is_constant(&self) -> bool {
        matches!(self, Func::Constant(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_match_pybamm_values() {
        // Values printed by PyBaMM 26.10.1.1 for the same functions.
        let g = Func::Builtin(Builtin::GraphiteChen2020Ocp);
        let n = Func::Builtin(Builtin::NmcChen2020Ocp);
        assert!(
            (g.eval(0.5) - 0.1330855128593352).abs() < 1e-12,
            "{}",
            g.eval(0.5)
        );
        assert!(
            (n.eval(0.5) - 3.9719586564036504).abs() < 1e-12,
            "{}",
            n.eval(0.5)
        );
    }

    #[test]
    fn table_interpolates_and_clamps() {
        let f = Func::from_spec(&FuncSpec::Table(FuncTable {
            x: Some(vec![0.0, 1.0, 2.0]),
            y: Some(vec![0.0, 10.0, 30.0]),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(f.eval(0.5), 5.0);
        assert_eq!(f.eval(1.5), 20.0);
        assert_eq!(f.eval(-1.0), 0.0);
        assert_eq!(f.eval(3.0), 30.0);
    }

    #[test]
    fn bad_specs_say_what_to_write() {
        let e = Func::from_spec(&FuncSpec::Table(FuncTable {
            function: Some("nope".into()),
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.contains("graphite_chen2020_ocp"), "{e}");
        let e = Func::from_spec(&FuncSpec::Table(FuncTable::default())).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
    }
}
