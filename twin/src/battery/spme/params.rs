//! The SPMe parameter file (schema in `twin/params/README.md`): file
//! structs mirroring the TOML one to one (unknown keys rejected), and the
//! validated [`SpmeParams`] the model takes. Every error names the file and
//! the key.

use std::path::Path;

use serde::Deserialize;

use super::func::{Func, FuncSpec};
use crate::params::{parse_toml, read_text, ParamError};

/// One electrode as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectrodeFile {
    pub thickness_m: f64,
    pub porosity: f64,
    pub active_material_volume_fraction: f64,
    pub particle_radius_m: f64,
    pub max_concentration_mol_m3: f64,
    /// Initial concentration of the parameter set: with the other
    /// electrode's, fixes the cyclable lithium (as PyBaMM's electrode SOH).
    pub initial_concentration_mol_m3: f64,
    pub diffusivity_m2_s: f64,
    #[serde(default)]
    pub diffusivity_activation_energy_j_mol: f64,
    pub conductivity_s_m: f64,
    pub bruggeman_electrolyte: f64,
    pub bruggeman_electrode: f64,
    /// `m_ref` of `j0 = m_ref·exp(E/R (1/T_ref − 1/T))·c_e^½ c_s^½ (c_max − c_s)^½`.
    pub exchange_current_ref: f64,
    #[serde(default)]
    pub exchange_current_activation_energy_j_mol: f64,
    /// Open-circuit potential over stoichiometry (V).
    pub ocp_v: FuncSpec,
    /// dU/dT over stoichiometry (V/K); 0 if absent.
    #[serde(default)]
    pub entropic_v_per_k: Option<FuncSpec>,
}

/// The separator as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparatorFile {
    pub thickness_m: f64,
    pub porosity: f64,
    pub bruggeman_electrolyte: f64,
}

/// The electrolyte as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectrolyteFile {
    pub initial_concentration_mol_m3: f64,
    pub transference_number: f64,
    #[serde(default = "one")]
    pub thermodynamic_factor: f64,
    /// Diffusivity over concentration (m²/s).
    pub diffusivity_m2_s: FuncSpec,
    /// Conductivity over concentration (S/m).
    pub conductivity_s_m: FuncSpec,
    #[serde(default)]
    pub diffusivity_activation_energy_j_mol: f64,
    #[serde(default)]
    pub conductivity_activation_energy_j_mol: f64,
}

fn one() -> f64 {
    1.0
}

/// The lumped thermal model as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpmeThermalFile {
    /// `"isothermal"` (temperature held at ambient) or `"lumped"`.
    pub model: String,
    /// Whole-cell heat capacity (J/K): PyBaMM's effective volumetric heat
    /// capacity × cell volume.
    #[serde(default)]
    pub heat_capacity_j_per_k: Option<f64>,
    /// Cell-to-ambient conductance (W/K): total heat transfer coefficient ×
    /// cooling area.
    #[serde(default)]
    pub cooling_conductance_w_per_k: Option<f64>,
}

/// SEI growth on the negative particles as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeiFile {
    /// `"solvent-diffusion limited"` (PyBaMM's option of that name).
    pub model: String,
    pub initial_thickness_m: f64,
    pub partial_molar_volume_m3_mol: f64,
    /// Film resistivity (Ω m); the film adds `j L_sei ρ` to the negative
    /// overpotential (PyBaMM's "distributed" film resistance).
    pub resistivity_ohm_m: f64,
    pub solvent_diffusivity_m2_s: f64,
    pub bulk_solvent_concentration_mol_m3: f64,
    /// Lithium moles per SEI mole (PyBaMM's `z_sei`).
    pub lithium_moles_per_sei_mole: f64,
    #[serde(default)]
    pub activation_energy_j_mol: f64,
}

/// The mesh as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFile {
    #[serde(default = "twenty")]
    pub particle_shells: usize,
    #[serde(default = "twenty")]
    pub electrolyte_cells_per_domain: usize,
}

fn twenty() -> usize {
    20
}

impl Default for MeshFile {
    fn default() -> Self {
        MeshFile {
            particle_shells: 20,
            electrolyte_cells_per_domain: 20,
        }
    }
}

/// An SPMe cell parameter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpmeFile {
    /// Must be `"spme"`.
    pub model: String,
    pub name: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub chemistry: Option<String>,
    pub nominal_capacity_ah: f64,
    pub voltage_min_v: f64,
    pub voltage_max_v: f64,
    /// Electrode-pair area (m²): height × width × electrodes in parallel.
    pub electrode_area_m2: f64,
    #[serde(default = "tref")]
    pub reference_temperature_k: f64,
    #[serde(default)]
    pub contact_resistance_ohm: f64,
    #[serde(default = "default_tmax")]
    pub temperature_max_c: f64,
    #[serde(default = "default_tmin")]
    pub temperature_min_c: f64,
    pub negative: ElectrodeFile,
    pub separator: SeparatorFile,
    pub positive: ElectrodeFile,
    pub electrolyte: ElectrolyteFile,
    pub thermal: SpmeThermalFile,
    #[serde(default)]
    pub sei: Option<SeiFile>,
    #[serde(default)]
    pub mesh: MeshFile,
}

fn tref() -> f64 {
    298.15
}
fn default_tmax() -> f64 {
    60.0
}
fn default_tmin() -> f64 {
    -20.0
}

/// A validated electrode.
#[derive(Debug, Clone, PartialEq)]
pub struct Electrode {
    pub thickness_m: f64,
    pub porosity: f64,
    pub active_material_volume_fraction: f64,
    pub particle_radius_m: f64,
    pub max_concentration_mol_m3: f64,
    pub initial_concentration_mol_m3: f64,
    pub diffusivity_m2_s: f64,
    pub diffusivity_activation_energy_j_mol: f64,
    pub conductivity_s_m: f64,
    pub bruggeman_electrolyte: f64,
    pub bruggeman_electrode: f64,
    pub exchange_current_ref: f64,
    pub exchange_current_activation_energy_j_mol: f64,
    pub ocp_v: Func,
    pub entropic_v_per_k: Func,
}

impl Electrode {
    /// Specific interfacial area `3 ε_s / R` (1/m).
    pub fn surface_area_per_volume_1_m(&self) -> f64 {
        3.0 * self.active_material_volume_fraction / self.particle_radius_m
    }
}

/// A validated separator.
#[derive(Debug, Clone, PartialEq)]
pub struct Separator {
    pub thickness_m: f64,
    pub porosity: f64,
    pub bruggeman_electrolyte: f64,
}

/// A validated electrolyte.
#[derive(Debug, Clone, PartialEq)]
pub struct Electrolyte {
    pub initial_concentration_mol_m3: f64,
    pub transference_number: f64,
    pub thermodynamic_factor: f64,
    pub diffusivity_m2_s: Func,
    pub conductivity_s_m: Func,
    pub diffusivity_activation_energy_j_mol: f64,
    pub conductivity_activation_energy_j_mol: f64,
}

/// The thermal model of an SPMe cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpmeThermal {
    /// Temperature held at ambient.
    Isothermal,
    /// One lumped temperature: `C dT/dt = Q − G (T − T_amb)`.
    Lumped {
        heat_capacity_j_per_k: f64,
        cooling_conductance_w_per_k: f64,
    },
}

/// Validated SEI parameters (solvent-diffusion limited growth:
/// `j_sei = −F D_sol c_sol / L_sei`, `dL_sei/dt = −V̄ j_sei / (z F)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sei {
    pub initial_thickness_m: f64,
    pub partial_molar_volume_m3_mol: f64,
    pub resistivity_ohm_m: f64,
    pub solvent_diffusivity_m2_s: f64,
    pub bulk_solvent_concentration_mol_m3: f64,
    pub lithium_moles_per_sei_mole: f64,
    pub activation_energy_j_mol: f64,
}

/// Validated SPMe cell parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmeParams {
    pub name: String,
    pub source: Option<String>,
    pub chemistry: Option<String>,
    pub nominal_capacity_ah: f64,
    pub voltage_min_v: f64,
    pub voltage_max_v: f64,
    pub electrode_area_m2: f64,
    pub reference_temperature_k: f64,
    pub contact_resistance_ohm: f64,
    pub temperature_max_c: f64,
    pub temperature_min_c: f64,
    pub negative: Electrode,
    pub separator: Separator,
    pub positive: Electrode,
    pub electrolyte: Electrolyte,
    pub thermal: SpmeThermal,
    /// SEI growth on the negative electrode, if modelled.
    pub sei: Option<Sei>,
    pub particle_shells: usize,
    pub electrolyte_cells_per_domain: usize,
}

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> ParamError {
        ParamError::invalid(self.path, format!("`{key}` {msg}"))
    }
    fn positive(&self, key: &str, v: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.err(key, format_args!("must be a finite number > 0, found {v}")))
        }
    }
    /// A positive value no larger than a physical bound.
    fn bounded(&self, key: &str, v: f64, max: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v > 0.0 && v <= max {
            Ok(v)
        } else {
            Err(self.err(key, format_args!("must be within (0, {max:e}], found {v}")))
        }
    }
    fn non_negative(&self, key: &str, v: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.err(key, format_args!("must be a finite number >= 0, found {v}")))
        }
    }
    fn fraction(&self, key: &str, v: f64) -> Result<f64, ParamError> {
        if v.is_finite() && v > 0.0 && v < 1.0 {
            Ok(v)
        } else {
            Err(self.err(key, format_args!("must be within (0, 1), found {v}")))
        }
    }
    fn func(&self, key: &str, spec: &FuncSpec) -> Result<Func, ParamError> {
        Func::from_spec(spec).map_err(|m| self.err(key, m))
    }

    fn electrode(&self, d: &str, e: &ElectrodeFile) -> Result<Electrode, ParamError> {
        let k = |name: &str| format!("{d}.{name}");
        let max_c = self.bounded(
            &k("max_concentration_mol_m3"),
            e.max_concentration_mol_m3,
            1e6,
        )?;
        let c0 = self.positive(
            &k("initial_concentration_mol_m3"),
            e.initial_concentration_mol_m3,
        )?;
        if c0 >= max_c {
            return Err(self.err(
                &k("initial_concentration_mol_m3"),
                format_args!("must be below max_concentration_mol_m3 ({max_c}), found {c0}"),
            ));
        }
        let porosity = self.fraction(&k("porosity"), e.porosity)?;
        let eps_s = self.fraction(
            &k("active_material_volume_fraction"),
            e.active_material_volume_fraction,
        )?;
        if porosity + eps_s > 1.0 + 1e-12 {
            return Err(self.err(
                &k("active_material_volume_fraction"),
                format_args!("plus porosity exceeds 1 ({eps_s} + {porosity})"),
            ));
        }
        let ocp_v = self.func(&k("ocp_v"), &e.ocp_v)?;
        let entropic_v_per_k = match &e.entropic_v_per_k {
            Some(s) => self.func(&k("entropic_v_per_k"), s)?,
            None => Func::Constant(0.0),
        };
        Ok(Electrode {
            thickness_m: self.bounded(&k("thickness_m"), e.thickness_m, 0.01)?,
            porosity,
            active_material_volume_fraction: eps_s,
            particle_radius_m: self.bounded(&k("particle_radius_m"), e.particle_radius_m, 1e-3)?,
            max_concentration_mol_m3: max_c,
            initial_concentration_mol_m3: c0,
            diffusivity_m2_s: self.bounded(&k("diffusivity_m2_s"), e.diffusivity_m2_s, 1e-3)?,
            diffusivity_activation_energy_j_mol: self.non_negative(
                &k("diffusivity_activation_energy_j_mol"),
                e.diffusivity_activation_energy_j_mol,
            )?,
            conductivity_s_m: self.bounded(&k("conductivity_s_m"), e.conductivity_s_m, 1e9)?,
            bruggeman_electrolyte: self
                .non_negative(&k("bruggeman_electrolyte"), e.bruggeman_electrolyte)?,
            bruggeman_electrode: self
                .non_negative(&k("bruggeman_electrode"), e.bruggeman_electrode)?,
            exchange_current_ref: self.bounded(
                &k("exchange_current_ref"),
                e.exchange_current_ref,
                1e3,
            )?,
            exchange_current_activation_energy_j_mol: self.non_negative(
                &k("exchange_current_activation_energy_j_mol"),
                e.exchange_current_activation_energy_j_mol,
            )?,
            ocp_v,
            entropic_v_per_k,
        })
    }
}

/// Loads and validates an SPMe parameter file.
pub fn load_spme_params(path: &Path) -> Result<SpmeParams, ParamError> {
    let text = read_text(path)?;
    parse_spme_params(path, &text)
}

/// Parses and validates SPMe parameter text that came from `path`.
pub fn parse_spme_params(path: &Path, text: &str) -> Result<SpmeParams, ParamError> {
    let f: SpmeFile = parse_toml(path, text)?;
    let cx = Ctx { path };
    if f.model != "spme" {
        return Err(cx.err(
            "model",
            format_args!("must be \"spme\" in an SPMe file, found \"{}\"", f.model),
        ));
    }
    let voltage_min_v = cx.positive("voltage_min_v", f.voltage_min_v)?;
    let voltage_max_v = cx.positive("voltage_max_v", f.voltage_max_v)?;
    if voltage_max_v <= voltage_min_v {
        return Err(cx.err(
            "voltage_max_v",
            format_args!("must be above voltage_min_v ({voltage_min_v})"),
        ));
    }
    if !(f.temperature_max_c.is_finite() && f.temperature_min_c.is_finite())
        || f.temperature_max_c <= f.temperature_min_c
    {
        return Err(cx.err(
            "temperature_max_c",
            "must be finite and above temperature_min_c",
        ));
    }
    let e = &f.electrolyte;
    let t_plus = e.transference_number;
    if !(t_plus.is_finite() && (0.0..1.0).contains(&t_plus)) {
        return Err(cx.err(
            "electrolyte.transference_number",
            format_args!("must be within [0, 1), found {t_plus}"),
        ));
    }
    let electrolyte = Electrolyte {
        initial_concentration_mol_m3: cx.positive(
            "electrolyte.initial_concentration_mol_m3",
            e.initial_concentration_mol_m3,
        )?,
        transference_number: t_plus,
        thermodynamic_factor: cx
            .positive("electrolyte.thermodynamic_factor", e.thermodynamic_factor)?,
        diffusivity_m2_s: cx.func("electrolyte.diffusivity_m2_s", &e.diffusivity_m2_s)?,
        conductivity_s_m: cx.func("electrolyte.conductivity_s_m", &e.conductivity_s_m)?,
        diffusivity_activation_energy_j_mol: cx.non_negative(
            "electrolyte.diffusivity_activation_energy_j_mol",
            e.diffusivity_activation_energy_j_mol,
        )?,
        conductivity_activation_energy_j_mol: cx.non_negative(
            "electrolyte.conductivity_activation_energy_j_mol",
            e.conductivity_activation_energy_j_mol,
        )?,
    };
    // The transport properties must be positive over the range the model
    // can reach (0 .. 5× the initial concentration).
    let c0 = electrolyte.initial_concentration_mol_m3;
    for (key, func) in [
        (
            "electrolyte.diffusivity_m2_s",
            &electrolyte.diffusivity_m2_s,
        ),
        (
            "electrolyte.conductivity_s_m",
            &electrolyte.conductivity_s_m,
        ),
    ] {
        let v = func.eval(c0);
        if !(v.is_finite() && v > 0.0) {
            return Err(cx.err(
                key,
                format_args!("must be > 0 at the initial concentration ({c0} mol/m3), is {v}"),
            ));
        }
    }
    let thermal = match f.thermal.model.as_str() {
        "isothermal" => SpmeThermal::Isothermal,
        "lumped" => SpmeThermal::Lumped {
            heat_capacity_j_per_k: cx.positive(
                "thermal.heat_capacity_j_per_k",
                f.thermal.heat_capacity_j_per_k.unwrap_or(f64::NAN),
            )?,
            cooling_conductance_w_per_k: cx.non_negative(
                "thermal.cooling_conductance_w_per_k",
                f.thermal.cooling_conductance_w_per_k.unwrap_or(f64::NAN),
            )?,
        },
        other => {
            return Err(cx.err(
                "thermal.model",
                format_args!("must be \"isothermal\" or \"lumped\", found \"{other}\""),
            ))
        }
    };
    let sei = match &f.sei {
        None => None,
        Some(s) => {
            if s.model != "solvent-diffusion limited" {
                return Err(cx.err(
                    "sei.model",
                    format_args!(
                        "must be \"solvent-diffusion limited\" (the one SEI option implemented), found \"{}\"",
                        s.model
                    ),
                ));
            }
            Some(Sei {
                initial_thickness_m: cx.bounded(
                    "sei.initial_thickness_m",
                    s.initial_thickness_m,
                    1e-5,
                )?,
                partial_molar_volume_m3_mol: cx.bounded(
                    "sei.partial_molar_volume_m3_mol",
                    s.partial_molar_volume_m3_mol,
                    1.0,
                )?,
                resistivity_ohm_m: cx.non_negative("sei.resistivity_ohm_m", s.resistivity_ohm_m)?,
                solvent_diffusivity_m2_s: cx.bounded(
                    "sei.solvent_diffusivity_m2_s",
                    s.solvent_diffusivity_m2_s,
                    1e-3,
                )?,
                bulk_solvent_concentration_mol_m3: cx.bounded(
                    "sei.bulk_solvent_concentration_mol_m3",
                    s.bulk_solvent_concentration_mol_m3,
                    1e6,
                )?,
                lithium_moles_per_sei_mole: cx.bounded(
                    "sei.lithium_moles_per_sei_mole",
                    s.lithium_moles_per_sei_mole,
                    100.0,
                )?,
                activation_energy_j_mol: cx
                    .non_negative("sei.activation_energy_j_mol", s.activation_energy_j_mol)?,
            })
        }
    };
    let shells = f.mesh.particle_shells;
    if !(3..=200).contains(&shells) {
        return Err(cx.err(
            "mesh.particle_shells",
            format_args!("must be within 3..=200, found {shells}"),
        ));
    }
    let cells = f.mesh.electrolyte_cells_per_domain;
    if !(2..=200).contains(&cells) {
        return Err(cx.err(
            "mesh.electrolyte_cells_per_domain",
            format_args!("must be within 2..=200, found {cells}"),
        ));
    }
    let s = &f.separator;
    Ok(SpmeParams {
        name: f.name,
        source: f.source,
        chemistry: f.chemistry,
        nominal_capacity_ah: cx.positive("nominal_capacity_ah", f.nominal_capacity_ah)?,
        voltage_min_v,
        voltage_max_v,
        electrode_area_m2: cx.bounded("electrode_area_m2", f.electrode_area_m2, 1e3)?,
        reference_temperature_k: cx
            .positive("reference_temperature_k", f.reference_temperature_k)?,
        contact_resistance_ohm: cx
            .non_negative("contact_resistance_ohm", f.contact_resistance_ohm)?,
        temperature_max_c: f.temperature_max_c,
        temperature_min_c: f.temperature_min_c,
        negative: cx.electrode("negative", &f.negative)?,
        separator: Separator {
            thickness_m: cx.bounded("separator.thickness_m", s.thickness_m, 0.01)?,
            porosity: cx.fraction("separator.porosity", s.porosity)?,
            bruggeman_electrolyte: cx
                .non_negative("separator.bruggeman_electrolyte", s.bruggeman_electrolyte)?,
        },
        positive: cx.electrode("positive", &f.positive)?,
        electrolyte,
        thermal,
        sei,
        particle_shells: shells,
        electrolyte_cells_per_domain: cells,
    })
}
