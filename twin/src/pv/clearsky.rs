//! Clear-sky irradiance: Ineichen–Perez (2002) with a configurable Linke
//! turbidity, as `pvlib.clearsky.ineichen` (without the optional Perez
//! enhancement), with Kasten–Young (1989) air mass, pressure from altitude
//! and Spencer (1971) extraterrestrial irradiance (solar constant
//! 1366.1 W/m²), as pvlib's `Location.get_clearsky`.

use super::solar::alt2pres;

/// Global horizontal, direct normal and diffuse horizontal irradiance, W/m².
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Irradiance {
    pub ghi: f64,
    pub dni: f64,
    pub dhi: f64,
}

/// Extraterrestrial normal irradiance, W/m², Spencer's series for the
/// day of year (as `pvlib.irradiance.get_extra_radiation(method='spencer')`).
pub fn extra_radiation(day_of_year: u32) -> f64 {
    let b = 2.0 * std::f64::consts::PI / 365.0 * (day_of_year as f64 - 1.0);
    1366.1
        * (1.00011
            + 0.034221 * b.cos()
            + 0.00128 * b.sin()
            + 0.000719 * (2.0 * b).cos()
            + 7.7e-05 * (2.0 * b).sin())
}

/// Relative air mass (Kasten & Young 1989) at an apparent zenith, or
/// `None` with the Sun below the horizon (zenith > 90°).
pub fn relative_airmass(apparent_zenith_deg: f64) -> Option<f64> {
    if apparent_zenith_deg.is_nan() || apparent_zenith_deg > 90.0 {
        return None;
    }
    let z = apparent_zenith_deg;
    Some(1.0 / (z.to_radians().cos() + 0.50572 * (6.07995 + (90.0 - z)).powf(-1.6364)))
}

/// Absolute (pressure-corrected) air mass at a site's altitude.
pub fn absolute_airmass(apparent_zenith_deg: f64, altitude_m: f64) -> Option<f64> {
    relative_airmass(apparent_zenith_deg).map(|am| am * alt2pres(altitude_m) / 101_325.0)
}

/// Ineichen–Perez clear-sky irradiance. `airmass_absolute = None` (Sun
/// down) gives zeros.
pub fn ineichen(
    apparent_zenith_deg: f64,
    airmass_absolute: Option<f64>,
    linke_turbidity: f64,
    altitude_m: f64,
    dni_extra: f64,
) -> Irradiance {
    let Some(am) = airmass_absolute.filter(|a| a.is_finite()) else {
        return Irradiance::default();
    };
    let cos_z = apparent_zenith_deg.to_radians().cos().max(0.0);
    let tl = linke_turbidity;
    let fh1 = (-altitude_m / 8000.0).exp();
    let fh2 = (-altitude_m / 1250.0).exp();
    let cg1 = 5.09e-05 * altitude_m + 0.868;
    let cg2 = 3.92e-05 * altitude_m + 0.0387;
    let ghi = cg1 * dni_extra * cos_z * (-cg2 * am * (fh1 + fh2 * (tl - 1.0))).exp().max(0.0);
    let b = 0.664 + 0.163 / fh1;
    let bnci = dni_extra * (b * (-0.09 * am * (tl - 1.0)).exp()).max(0.0);
    let bnci_2 = (1.0 - (0.1 - 0.2 * (-tl).exp()) / (0.1 + 0.882 / fh1)) / cos_z;
    let bnci_2 = ghi * bnci_2.clamp(0.0, 1e20);
    let dni = bnci.min(bnci_2);
    let dhi = ghi - dni * cos_z;
    Irradiance { ghi, dni, dhi }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_down_gives_zero_and_high_sun_is_plausible() {
        assert_eq!(
            ineichen(95.0, absolute_airmass(95.0, 0.0), 3.0, 0.0, 1361.0),
            Irradiance::default()
        );
        let c = ineichen(20.0, absolute_airmass(20.0, 0.0), 3.0, 0.0, 1361.0);
        assert!(c.ghi > 800.0 && c.ghi < 1100.0, "{c:?}");
        assert!(c.dni > 700.0 && c.dhi > 30.0 && c.dhi < 200.0, "{c:?}");
        // Grazing sun: finite, non-negative.
        let c = ineichen(90.0, absolute_airmass(90.0, 0.0), 3.0, 0.0, 1361.0);
        assert!(c.ghi >= 0.0 && c.dni.is_finite() && c.dhi >= 0.0, "{c:?}");
    }

    #[test]
    fn extra_radiation_peaks_in_january() {
        assert!(extra_radiation(3) > 1400.0 && extra_radiation(185) < 1330.0);
    }
}
