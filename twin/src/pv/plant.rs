//! The composite PV plant for the house model, its site/array file, and
//! the pure per-module MPP table behind `maslow twin pv`.
//!
//! # The site/array file
//!
//! ```toml
//! [site]
//! latitude_deg = 51.5072       # north positive
//! longitude_deg = -0.1276      # east positive
//! altitude_m = 20.0            # default 0
//! tilt_deg = 35.0              # from horizontal, 0..=90
//! azimuth_deg = 180.0          # surface azimuth east of north (180 = south)
//! albedo = 0.2                 # ground reflectance, default 0.2
//! linke_turbidity = 3.0        # Ineichen–Perez clear sky, default 3.0
//!
//! [array]
//! module = "modules/Canadian_Solar_Inc__CS1U_400MS.toml"  # relative to this file
//! modules_in_series = 4
//! strings = 2
//!
//! [temperature]                # optional; Faiman, defaults shown
//! u0 = 25.0
//! u1 = 6.84
//! wind_speed_m_s = 1.0
//! time_constant_s = 0.0        # first-order lag, 0 = steady state
//!
//! [converter]
//! rated_output_w = 3000.0
//! efficiency = 0.97            # or efficiency_curve = [[0.05, 0.90], [0.2, 0.96], [1.0, 0.97]]
//!                              #   (efficiency against DC input / rated output)
//! mppt_voltage_range_v = [60.0, 250.0]   # optional MPPT window, V
//! max_input_voltage_v = 300.0  # optional: off while the array V_oc is above it
//!
//! [weather]
//! mode = "clouds"              # "clear" | "overcast" | "clouds"
//! # clear_sky_index = 0.3      # "overcast" only: fixed GHI / clear-sky GHI
//! # seed = 42                  # "clouds" only: overrides the scenario seed
//! # [weather.broken]           # "clouds" only: override a regime's statistics
//! # mean = 0.65
//! # sd = 0.25
//! # tau_s = 120.0
//! # dwell_s = 5400.0           # likewise [weather.clear], [weather.overcast]
//! ```
//!
//! # The chain in [`PvPlant::step`]
//!
//! Solar position → extraterrestrial irradiance → Ineichen–Perez clear sky
//! → weather: "clear" uses the clear-sky GHI/DNI/DHI as they are;
//! "overcast" and "clouds" scale the clear-sky GHI by the clear-sky index
//! and split it into DNI/DHI with Erbs → Hay–Davies plane of array →
//! Faiman module temperature (taken as the cell temperature) → CEC
//! single-diode array I-V → MPPT converter with rating and curtailment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::array::PvArray;
use super::clearsky::{absolute_airmass, extra_radiation, ineichen, Irradiance};
use super::clouds::{CloudParams, CloudProcess, CloudRegime};
use super::module::CecModule;
use super::mppt::{ConverterConfig, Limit, MpptConverter};
use super::single_diode::calcparams_cec;
use super::solar::{day_of_year, solar_position, Location};
use super::temperature::{FaimanParams, ModuleTemperature};
use super::transposition::{erbs, hay_davies};
use crate::params::{self, ParamError};

/// Errors from the PV models that are not about reading a file.
#[derive(Debug, thiserror::Error)]
pub enum PvError {
    /// A configuration built in code is out of range.
    #[error("invalid PV configuration: {0}")]
    Config(String),
    /// A row of input data is unusable.
    #[error("input row {row}: {message}")]
    Input { row: usize, message: String },
}

/// The `[site]` table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub latitude_deg: f64,
    pub longitude_deg: f64,
    #[serde(default)]
    pub altitude_m: f64,
    pub tilt_deg: f64,
    pub azimuth_deg: f64,
    #[serde(default = "default_albedo")]
    pub albedo: f64,
    #[serde(default = "default_tl")]
    pub linke_turbidity: f64,
}

fn default_albedo() -> f64 {
    0.2
}
fn default_tl() -> f64 {
    3.0
}

impl SiteConfig {
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str, v: f64| {
            if ok {
                Ok(())
            } else {
                Err(format!("site.{what} = {v}: out of range"))
            }
        };
        check(
            (-90.0..=90.0).contains(&self.latitude_deg),
            "latitude_deg",
            self.latitude_deg,
        )?;
        check(
            (-180.0..=360.0).contains(&self.longitude_deg),
            "longitude_deg",
            self.longitude_deg,
        )?;
        check(
            (-500.0..=9000.0).contains(&self.altitude_m),
            "altitude_m (-500..=9000)",
            self.altitude_m,
        )?;
        check(
            (0.0..=90.0).contains(&self.tilt_deg),
            "tilt_deg (0..=90)",
            self.tilt_deg,
        )?;
        check(
            (-360.0..=360.0).contains(&self.azimuth_deg),
            "azimuth_deg",
            self.azimuth_deg,
        )?;
        check(
            (0.0..=1.0).contains(&self.albedo),
            "albedo (0..=1)",
            self.albedo,
        )?;
        check(
            (1.0..=10.0).contains(&self.linke_turbidity),
            "linke_turbidity (1..=10)",
            self.linke_turbidity,
        )
    }

    pub fn location(&self) -> Location {
        Location {
            latitude_deg: self.latitude_deg,
            longitude_deg: self.longitude_deg,
            altitude_m: self.altitude_m,
        }
    }
}

/// Weather source for the plant.
#[derive(Debug, Clone, PartialEq)]
pub enum Weather {
    /// Ineichen–Perez clear sky.
    Clear,
    /// Clear-sky GHI scaled by a fixed clear-sky index (0, 1.4].
    Overcast { clear_sky_index: f64 },
    /// The seeded cloud process; `seed` overrides the scenario seed.
    Clouds {
        seed: Option<u64>,
        params: CloudParams,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum WeatherMode {
    Clear,
    Overcast,
    Clouds,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeather {
    mode: WeatherMode,
    clear_sky_index: Option<f64>,
    seed: Option<u64>,
    clear: Option<CloudRegime>,
    broken: Option<CloudRegime>,
    overcast: Option<CloudRegime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArray {
    module: String,
    modules_in_series: u32,
    strings: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlant {
    site: SiteConfig,
    array: RawArray,
    #[serde(default)]
    temperature: FaimanParams,
    converter: ConverterConfig,
    weather: RawWeather,
}

impl RawWeather {
    fn into_weather(self) -> Result<Weather, String> {
        let has_regimes = self.clear.is_some() || self.broken.is_some() || self.overcast.is_some();
        match self.mode {
            WeatherMode::Clear => {
                if self.clear_sky_index.is_some() || self.seed.is_some() || has_regimes {
                    return Err("weather: mode \"clear\" takes no other keys".into());
                }
                Ok(Weather::Clear)
            }
            WeatherMode::Overcast => {
                if self.seed.is_some() || has_regimes {
                    return Err("weather: mode \"overcast\" takes only `clear_sky_index`".into());
                }
                let k = self
                    .clear_sky_index
                    .ok_or("weather: mode \"overcast\" needs `clear_sky_index`")?;
                Ok(Weather::Overcast { clear_sky_index: k })
            }
            WeatherMode::Clouds => {
                if self.clear_sky_index.is_some() {
                    return Err("weather: `clear_sky_index` is for mode \"overcast\"".into());
                }
                let d = CloudParams::default();
                Ok(Weather::Clouds {
                    seed: self.seed,
                    params: CloudParams {
                        clear: self.clear.unwrap_or(d.clear),
                        broken: self.broken.unwrap_or(d.broken),
                        overcast: self.overcast.unwrap_or(d.overcast),
                    },
                })
            }
        }
    }
}

/// A validated-on-construction description of a PV plant.
#[derive(Debug, Clone, PartialEq)]
pub struct PvPlantConfig {
    pub site: SiteConfig,
    pub array: PvArray,
    /// Where the module file was read from, when loaded from a file.
    pub module_file: Option<PathBuf>,
    pub temperature: FaimanParams,
    pub converter: ConverterConfig,
    pub weather: Weather,
}

impl PvPlantConfig {
    /// Reads a site/array file and the module file it names.
    pub fn load(path: &Path) -> Result<PvPlantConfig, ParamError> {
        let text = params::read_text(path)?;
        Self::parse(path, &text)
    }

    /// Parses site/array TOML that came from `path`; the module path inside
    /// is resolved relative to `path` and read.
    pub fn parse(path: &Path, text: &str) -> Result<PvPlantConfig, ParamError> {
        let raw: RawPlant = params::parse_toml(path, text)?;
        let module_file = params::resolve_relative(path, &raw.array.module);
        let module = CecModule::load(&module_file)?;
        let inv = |m: String| ParamError::invalid(path, m);
        let weather = raw.weather.into_weather().map_err(inv)?;
        let array =
            PvArray::new(module, raw.array.modules_in_series, raw.array.strings).map_err(inv)?;
        let cfg = PvPlantConfig {
            site: raw.site,
            array,
            module_file: Some(module_file),
            temperature: raw.temperature,
            converter: raw.converter,
            weather,
        };
        cfg.validate().map_err(inv)?;
        Ok(cfg)
    }

    /// Checks every range.
    pub fn validate(&self) -> Result<(), String> {
        self.site.validate()?;
        self.array.module().validate()?;
        self.temperature.validate()?;
        MpptConverter::new(&self.converter)?;
        match &self.weather {
            Weather::Clear => Ok(()),
            Weather::Overcast { clear_sky_index } => {
                if clear_sky_index.is_finite() && *clear_sky_index > 0.0 && *clear_sky_index <= 1.4
                {
                    Ok(())
                } else {
                    Err(format!(
                        "weather.clear_sky_index = {clear_sky_index}: must be in (0, 1.4]"
                    ))
                }
            }
            Weather::Clouds { params, .. } => params.validate(),
        }
    }
}

/// One step of the plant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PvStep {
    /// Apparent (refracted) solar zenith, degrees.
    pub zenith_deg: f64,
    /// Solar azimuth, degrees east of north.
    pub azimuth_deg: f64,
    /// Clear-sky index applied (1 in "clear" mode).
    pub clear_sky_index: f64,
    pub ghi_w_m2: f64,
    pub dni_w_m2: f64,
    pub dhi_w_m2: f64,
    /// Plane-of-array global irradiance, W/m².
    pub poa_w_m2: f64,
    /// Cell (module) temperature, °C.
    pub cell_temp_c: f64,
    /// Array DC power at the maximum power point, W.
    pub p_mpp_dc_w: f64,
    /// Output available at the MPP before rating and curtailment, W.
    pub p_available_w: f64,
    /// Array DC power at the operating point, W.
    pub p_dc_w: f64,
    /// Power delivered onto the DC bus, W.
    pub p_output_w: f64,
    /// Array voltage and current at the operating point.
    pub v_array_v: f64,
    pub i_array_a: f64,
    /// Array open-circuit voltage and short-circuit current.
    pub v_oc_array_v: f64,
    pub i_sc_array_a: f64,
    /// What limited the output.
    pub limit: Limit,
}

/// The PV plant: array, weather, temperature and converter.
///
/// ```
/// use std::path::Path;
/// use twin::pv::{PvPlant, PvPlantConfig};
/// let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/house_roof.toml");
/// let mut plant = PvPlant::new(PvPlantConfig::load(&path).unwrap(), 42).unwrap();
/// let noon = 1_782_043_200.0; // 2026-06-21 12:00 UTC
/// let s = plant.step(noon, 1.0, 20.0, Some(1000.0)); // export capped at 1 kW
/// assert!(s.p_output_w <= 1000.0 && s.p_output_w <= s.p_available_w);
/// ```
#[derive(Debug, Clone)]
pub struct PvPlant {
    config: PvPlantConfig,
    location: Location,
    converter: MpptConverter,
    clouds: Option<CloudProcess>,
    temperature: ModuleTemperature,
}

impl PvPlant {
    /// Builds a plant; `seed` drives the cloud process unless the file
    /// gives its own `weather.seed`.
    pub fn new(config: PvPlantConfig, seed: u64) -> Result<PvPlant, PvError> {
        config.validate().map_err(PvError::Config)?;
        let converter = MpptConverter::new(&config.converter).map_err(PvError::Config)?;
        let clouds = match &config.weather {
            Weather::Clouds { seed: s, params } => {
                Some(CloudProcess::new(*params, s.unwrap_or(seed)))
            }
            _ => None,
        };
        Ok(PvPlant {
            location: config.site.location(),
            converter,
            clouds,
            temperature: ModuleTemperature::new(config.temperature),
            config,
        })
    }

    pub fn config(&self) -> &PvPlantConfig {
        &self.config
    }

    /// [`PvPlant::step`] at simulated time `now` on a scenario calendar.
    pub fn step_at(
        &mut self,
        calendar: &crate::time::Calendar,
        now: crate::time::SimTime,
        dt_s: f64,
        ambient_c: f64,
        curtail_w: Option<f64>,
    ) -> PvStep {
        self.step(calendar.unix_s(now), dt_s, ambient_c, curtail_w)
    }

    /// Advances weather and module temperature by `dt_s` and evaluates the
    /// plant at UTC Unix time `now_unix_s` with ambient `ambient_c` and an
    /// optional curtailment setpoint (output cap, W).
    ///
    /// Input hygiene (so that every output is finite): a non-finite time
    /// is treated as night, a non-finite or negative `dt_s` as 0, a
    /// non-finite ambient as 25 °C (clamped to −60..=60 °C), and a NaN or
    /// negative setpoint as 0 W.
    pub fn step(
        &mut self,
        now_unix_s: f64,
        dt_s: f64,
        ambient_c: f64,
        curtail_w: Option<f64>,
    ) -> PvStep {
        let dt = if dt_s.is_finite() && dt_s > 0.0 {
            dt_s
        } else {
            0.0
        };
        let ambient = if ambient_c.is_finite() {
            ambient_c.clamp(-60.0, 60.0)
        } else {
            25.0
        };
        let kc = match (&self.config.weather, &mut self.clouds) {
            (Weather::Overcast { clear_sky_index }, _) => *clear_sky_index,
            (Weather::Clouds { .. }, Some(c)) => c.step(dt),
            _ => 1.0,
        };
        let site = &self.config.site;
        let (zenith_app, azimuth, irr, e0) = if now_unix_s.is_finite() && now_unix_s.abs() < 1e12 {
            let pos = solar_position(&self.location, now_unix_s);
            let e0 = extra_radiation(day_of_year(now_unix_s));
            let am = absolute_airmass(pos.apparent_zenith_deg, site.altitude_m);
            let cs = ineichen(
                pos.apparent_zenith_deg,
                am,
                site.linke_turbidity,
                site.altitude_m,
                e0,
            );
            let irr = match self.config.weather {
                Weather::Clear => cs,
                _ => erbs(cs.ghi * kc, pos.zenith_deg, e0),
            };
            (pos.apparent_zenith_deg, pos.azimuth_deg, irr, e0)
        } else {
            (180.0, 0.0, Irradiance::default(), 1361.0)
        };
        let poa = hay_davies(
            site.tilt_deg,
            site.azimuth_deg,
            zenith_app,
            azimuth,
            &irr,
            e0,
            site.albedo,
        );
        let poa_g = if poa.global.is_finite() {
            poa.global.max(0.0)
        } else {
            0.0
        };
        let cell = self.temperature.step(dt, poa_g, ambient);
        let iv = self.config.array.iv(poa_g, cell);
        let out = self.converter.operate(&iv, curtail_w);
        let s = iv.summary();
        PvStep {
            zenith_deg: zenith_app,
            azimuth_deg: azimuth,
            clear_sky_index: kc,
            ghi_w_m2: irr.ghi,
            dni_w_m2: irr.dni,
            dhi_w_m2: irr.dhi,
            poa_w_m2: poa_g,
            cell_temp_c: cell,
            p_mpp_dc_w: out.p_mpp_dc_w,
            p_available_w: out.p_available_w,
            p_dc_w: out.p_dc_w,
            p_output_w: out.p_output_w,
            v_array_v: out.v_array_v,
            i_array_a: out.i_array_a,
            v_oc_array_v: s.v_oc,
            i_sc_array_a: s.i_sc,
            limit: out.limit,
        }
    }
}

/// One output row of [`module_mpp_table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModuleMppRow {
    pub time_s: f64,
    pub p_mp_w: f64,
    pub v_mp_v: f64,
    pub i_mp_a: f64,
    pub v_oc_v: f64,
    pub i_sc_a: f64,
}

/// The pure core of `maslow twin pv`: for one module and rows of
/// `(time_s, poa_w_m2, cell_temp_c)`, the maximum power point, open-circuit
/// voltage and short-circuit current of the module at each row
/// (CEC single-diode model; POA is used as the effective irradiance).
/// A non-finite value in a row is an error naming the (0-based) row.
///
/// ```
/// use std::path::Path;
/// use twin::pv::{module_mpp_table, CecModule};
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/modules");
/// let m = CecModule::load(&dir.join("First_Solar__Inc__FS_6420.toml")).unwrap();
/// let rows = module_mpp_table(&m, &[(0.0, 1000.0, 25.0), (60.0, 0.0, 10.0)]).unwrap();
/// assert!((rows[0].p_mp_w - 420.0).abs() < 10.0);
/// assert_eq!(rows[1].p_mp_w, 0.0);
/// ```
pub fn module_mpp_table(
    module: &CecModule,
    rows: &[(f64, f64, f64)],
) -> Result<Vec<ModuleMppRow>, PvError> {
    module.validate().map_err(PvError::Config)?;
    rows.iter()
        .enumerate()
        .map(|(k, &(t, g, tc))| {
            for (v, name) in [(t, "time_s"), (g, "poa_w_m2"), (tc, "cell_temp_c")] {
                if !v.is_finite() {
                    return Err(PvError::Input {
                        row: k,
                        message: format!("`{name}` = {v} is not a finite number"),
                    });
                }
            }
            let s = calcparams_cec(module, g, tc).solve();
            Ok(ModuleMppRow {
                time_s: t,
                p_mp_w: s.p_mp,
                v_mp_v: s.v_mp,
                i_mp_a: s.i_mp,
                v_oc_v: s.v_oc,
                i_sc_a: s.i_sc,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/house_roof.toml")
    }

    fn with_weather(weather: &str) -> String {
        let text = std::fs::read_to_string(example_path()).unwrap();
        let head = text.split("[weather]").next().unwrap().to_owned();
        format!("{head}[weather]\n{weather}\n")
    }

    fn plant(weather: &str, seed: u64) -> PvPlant {
        let cfg = PvPlantConfig::parse(&example_path(), &with_weather(weather)).unwrap();
        PvPlant::new(cfg, seed).unwrap()
    }

    fn noon_june() -> f64 {
        days_from_civil(2026, 6, 21) as f64 * 86_400.0 + 12.0 * 3600.0
    }

    #[test]
    fn example_file_loads() {
        let cfg = PvPlantConfig::load(&example_path()).unwrap();
        assert!(cfg.module_file.unwrap().exists());
        assert!(matches!(cfg.weather, Weather::Clouds { .. }));
    }

    #[test]
    fn clear_summer_noon_produces_near_nameplate_and_night_nothing() {
        let mut p = plant("mode = \"clear\"", 1);
        let s = p.step(noon_june(), 60.0, 20.0, None);
        let nameplate = p.config().array.nameplate_w().unwrap();
        assert!(s.poa_w_m2 > 900.0 && s.poa_w_m2 < 1200.0, "{s:?}");
        assert!(
            s.p_mpp_dc_w > 0.75 * nameplate && s.p_mpp_dc_w < 1.1 * nameplate,
            "{s:?}"
        );
        assert!(
            s.p_output_w <= s.p_available_w && s.p_output_w <= p.config().converter.rated_output_w
        );
        // Twelve hours later (the module has cooled through its lag).
        let night = p.step(noon_june() + 12.0 * 3600.0, 12.0 * 3600.0, 15.0, None);
        assert_eq!(night.p_output_w, 0.0);
        assert_eq!(night.poa_w_m2, 0.0);
        assert!((night.cell_temp_c - 15.0).abs() < 1e-9, "{night:?}");
    }

    #[test]
    fn curtailment_moves_towards_voc() {
        let mut p = plant("mode = \"clear\"", 1);
        let free = p.step(noon_june(), 60.0, 20.0, None);
        let capped = p.step(noon_june(), 0.0, 20.0, Some(500.0));
        assert_eq!(capped.limit, Limit::Curtailment);
        assert!((capped.p_output_w - 500.0).abs() < 1e-6, "{capped:?}");
        assert!(capped.v_array_v > free.v_array_v && capped.v_array_v < capped.v_oc_array_v);
        assert!((capped.p_available_w - free.p_available_w).abs() < 1e-9);
        let zero = p.step(noon_june(), 0.0, 20.0, Some(0.0));
        assert!(
            zero.p_output_w.abs() < 1e-6
                && (zero.v_array_v - zero.v_oc_array_v).abs() < 1e-6 * zero.v_oc_array_v
        );
        let nan = p.step(noon_june(), 0.0, 20.0, Some(f64::NAN));
        assert!(nan.p_output_w.abs() < 1e-6);
    }

    #[test]
    fn rating_clips_and_efficiency_curve_applies() {
        // The example converter (3 kW, efficiency curve) on a 3.2 kW array
        // at a cold clear noon: clipped at the rating, operating above v_mp.
        let mut p = plant("mode = \"clear\"", 1);
        let s = p.step(noon_june(), 60.0, -5.0, None);
        let rated = p.config().converter.rated_output_w;
        assert!(s.p_available_w > rated, "{s:?}");
        assert_eq!(s.limit, Limit::Rating);
        assert!((s.p_output_w - rated).abs() < 1e-6 * rated, "{s:?}");
        assert!(s.p_dc_w < s.p_mpp_dc_w && s.v_array_v > s.v_oc_array_v * 0.5);
        // At the MPP the output is the curve's efficiency times DC power.
        let t = noon_june() - 5.0 * 3600.0;
        let s = p.step(t, 0.0, 10.0, None);
        assert_eq!(s.limit, Limit::None);
        let conv = MpptConverter::new(&p.config().converter).unwrap();
        assert!((s.p_output_w - s.p_mpp_dc_w * conv.efficiency_at(s.p_mpp_dc_w)).abs() < 1e-9);
        assert!(s.p_output_w < s.p_mpp_dc_w);
        // step_at on a calendar is the same as step at the Unix time.
        let cal = crate::time::Calendar::new(noon_june() as i64, 0.0);
        let mut q = plant("mode = \"clear\"", 1);
        let a = q.step_at(&cal, crate::time::SimTime::from_secs(60), 0.0, 10.0, None);
        let mut r = plant("mode = \"clear\"", 1);
        assert_eq!(a, r.step(noon_june() + 60.0, 0.0, 10.0, None));
    }

    #[test]
    fn overcast_scales_ghi() {
        let mut clear = plant("mode = \"clear\"", 1);
        let mut over = plant("mode = \"overcast\"\nclear_sky_index = 0.3", 1);
        let a = clear.step(noon_june(), 60.0, 20.0, None);
        let b = over.step(noon_june(), 60.0, 20.0, None);
        assert!((b.ghi_w_m2 - 0.3 * a.ghi_w_m2).abs() < 1e-9);
        assert!(b.p_output_w < 0.45 * a.p_output_w);
    }

    #[test]
    fn clouds_are_reproducible_and_seed_in_file_wins() {
        let run = |w: &str, seed| {
            let mut p = plant(w, seed);
            (0..600)
                .map(|k| {
                    p.step(noon_june() + 60.0 * k as f64, 60.0, 20.0, None)
                        .p_output_w
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run("mode = \"clouds\"", 5), run("mode = \"clouds\"", 5));
        assert_ne!(run("mode = \"clouds\"", 5), run("mode = \"clouds\"", 6));
        assert_eq!(
            run("mode = \"clouds\"\nseed = 9", 5),
            run("mode = \"clouds\"\nseed = 9", 6)
        );
    }

    #[test]
    fn file_errors_are_specific() {
        let e = PvPlantConfig::parse(&example_path(), &with_weather("mode = \"overcast\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("clear_sky_index"), "{e}");
        let e = PvPlantConfig::parse(&example_path(), &with_weather("mode = \"sunny\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sunny"), "{e}");
        let text = with_weather("mode = \"clear\"").replace("tilt_deg = 35.0", "tilt_deg = 135.0");
        let e = PvPlantConfig::parse(&example_path(), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tilt_deg"), "{e}");
        let text = with_weather("mode = \"clear\"").replace("[site]", "[site]\nlatitude = 3.0");
        let e = PvPlantConfig::parse(&example_path(), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `latitude`"), "{e}");
        let text = with_weather("mode = \"clear\"").replace("modules/", "nowhere/");
        let e = PvPlantConfig::parse(&example_path(), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nowhere"), "{e}");
    }

    #[test]
    fn non_finite_inputs_give_finite_outputs() {
        let mut p = plant("mode = \"clouds\"", 3);
        for (t, dt, amb) in [
            (f64::NAN, 60.0, 20.0),
            (noon_june(), f64::NAN, f64::NAN),
            (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY),
        ] {
            let s = p.step(t, dt, amb, Some(f64::INFINITY));
            assert!(
                s.p_output_w.is_finite() && s.cell_temp_c.is_finite() && s.zenith_deg.is_finite(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn module_table_rows() {
        let cfg = PvPlantConfig::load(&example_path()).unwrap();
        let m = cfg.array.module();
        let rows = module_mpp_table(m, &[(0.0, 1000.0, 25.0), (60.0, 0.0, 10.0)]).unwrap();
        assert!((rows[0].p_mp_w - m.stc_w.unwrap()).abs() < 0.01 * m.stc_w.unwrap());
        assert_eq!(rows[1].p_mp_w, 0.0);
        let e = module_mpp_table(m, &[(0.0, 1.0, 1.0), (1.0, f64::NAN, 1.0)]).unwrap_err();
        assert!(
            e.to_string().contains("row 1") && e.to_string().contains("poa_w_m2"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn plant(weather: &str, seed: u64) -> PvPlant {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/house_roof.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let head = text.split("[weather]").next().unwrap().to_owned();
        let cfg = PvPlantConfig::parse(&path, &format!("{head}[weather]\n{weather}\n")).unwrap();
        PvPlant::new(cfg, seed).unwrap()
    }

    fn all_finite(s: &PvStep) -> bool {
        [
            s.zenith_deg,
            s.azimuth_deg,
            s.clear_sky_index,
            s.ghi_w_m2,
            s.dni_w_m2,
            s.dhi_w_m2,
            s.poa_w_m2,
            s.cell_temp_c,
            s.p_mpp_dc_w,
            s.p_available_w,
            s.p_dc_w,
            s.p_output_w,
            s.v_array_v,
            s.i_array_a,
            s.v_oc_array_v,
            s.i_sc_array_a,
        ]
        .iter()
        .all(|x| x.is_finite())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn module_model_never_gives_nan(g in -1e6f64..1e6, t in -1e4f64..1e4, cap_frac in -1.0f64..2.0) {
            let m = plant("mode = \"clear\"", 0).config().array.module().clone();
            let p = calcparams_cec(&m, g, t);
            let s = p.solve();
            for x in [s.i_sc, s.v_oc, s.i_mp, s.v_mp, s.p_mp] {
                prop_assert!(x.is_finite() && x >= 0.0, "{s:?} at g={g} t={t}");
            }
            prop_assert!(s.p_mp <= s.i_sc * s.v_oc * (1.0 + 1e-12));
            let (v, i) = p.point_at_power(&s, cap_frac * s.p_mp);
            prop_assert!(v.is_finite() && i.is_finite());
            prop_assert!(v * i <= s.p_mp * (1.0 + 1e-12) + 1e-12);
        }

        #[test]
        fn plant_outputs_are_finite_and_bounded(
            t in 1.5e9f64..2.0e9,
            dt in -10.0f64..4000.0,
            amb in -1e3f64..1e3,
            curtail in proptest::option::of(-1e5f64..1e5),
            seed in any::<u64>(),
        ) {
            for weather in ["mode = \"clear\"", "mode = \"overcast\"\nclear_sky_index = 0.4", "mode = \"clouds\""] {
                let mut p = plant(weather, seed);
                for k in 0..3 {
                    let s = p.step(t + k as f64 * dt.abs(), dt, amb, curtail);
                    prop_assert!(all_finite(&s), "{s:?}");
                    prop_assert!(s.p_output_w >= 0.0);
                    prop_assert!(s.p_output_w <= s.p_available_w * (1.0 + 1e-12) + 1e-9, "{s:?}");
                    prop_assert!(s.p_output_w <= p.config().converter.rated_output_w * (1.0 + 1e-12));
                    if let Some(c) = curtail {
                        prop_assert!(s.p_output_w <= c.max(0.0) * (1.0 + 1e-9) + 1e-6, "{s:?}");
                    }
                    prop_assert!(s.p_dc_w <= s.p_mpp_dc_w * (1.0 + 1e-12) + 1e-9);
                }
            }
        }

        #[test]
        fn clouds_reproducible_by_seed(seed in any::<u64>(), dts in proptest::collection::vec(0.0f64..900.0, 1..50)) {
            let run = || {
                let mut p = plant("mode = \"clouds\"", seed);
                dts.iter()
                    .scan(1.75e9, |t, dt| {
                        *t += dt;
                        Some(p.step(*t, *dt, 15.0, None))
                    })
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(run(), run());
        }
    }
}
