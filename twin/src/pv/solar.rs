//! Solar position for a site at a UTC Unix time.
//!
//! Algorithm: the NOAA solar calculator / Meeus "Astronomical Algorithms"
//! ch. 25 low-precision Sun (apparent longitude with aberration and the
//! main nutation term, obliquity corrected), apparent sidereal time (Meeus
//! 12.4 plus nutation in right ascension), a topocentric parallax
//! correction, and SPA's atmospheric refraction (pressure from altitude,
//! 12 °C, as pvlib). Terrestrial time uses the NASA (Espenak & Meeus)
//! ΔT polynomial.
//!
//! Accuracy: the Meeus low-precision Sun is good to about 0.01° in the
//! years 1950–2050; against pvlib's NREL SPA (`get_solarposition`) the
//! measured error over five sites and five dates 2021–2030 is reported by
//! `tests/pv_vs_pvlib.rs` (0.0022° max in zenith, 0.0023° angular separation) and
//! asserted below 0.01°.

use crate::time::civil_from_days;

/// A site on the Earth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// Latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east.
    pub longitude_deg: f64,
    /// Altitude above sea level, m.
    pub altitude_m: f64,
}

/// Where the Sun is, seen from the site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolarPosition {
    /// Topocentric zenith angle without refraction, degrees.
    pub zenith_deg: f64,
    /// Zenith angle with atmospheric refraction, degrees.
    pub apparent_zenith_deg: f64,
    /// Azimuth, degrees east of north (0 = N, 90 = E, 180 = S).
    pub azimuth_deg: f64,
    /// Earth–Sun distance, AU.
    pub earth_sun_au: f64,
}

/// Atmospheric pressure at an altitude, Pa (as `pvlib.atmosphere.alt2pres`).
pub fn alt2pres(altitude_m: f64) -> f64 {
    100.0 * ((44331.514 - altitude_m) / 11880.516).powf(1.0 / 0.1902632)
}

/// ΔT = TT − UT in seconds (NASA polynomials, Espenak & Meeus), for a
/// decimal year.
pub fn delta_t_s(year: f64) -> f64 {
    if (2005.0..2050.0).contains(&year) {
        let t = year - 2000.0;
        62.92 + 0.32217 * t + 0.005589 * t * t
    } else if (1986.0..2005.0).contains(&year) {
        let t = year - 2000.0;
        63.86 + 0.3345 * t - 0.060374 * t.powi(2)
            + 0.0017275 * t.powi(3)
            + 0.000651814 * t.powi(4)
            + 0.00002373599 * t.powi(5)
    } else if (2050.0..2150.0).contains(&year) {
        -20.0 + 32.0 * ((year - 1820.0) / 100.0).powi(2) - 0.5628 * (2150.0 - year)
    } else {
        // Long-term parabola (Morrison & Stephenson).
        let u = (year - 1820.0) / 100.0;
        -20.0 + 32.0 * u * u
    }
}

fn sind(x: f64) -> f64 {
    x.to_radians().sin()
}
fn cosd(x: f64) -> f64 {
    x.to_radians().cos()
}

/// Solar position at `unix_s` (UTC seconds since 1970) for `loc`.
/// Non-finite inputs give NaN angles (callers check); finite inputs always
/// give finite angles.
pub fn solar_position(loc: &Location, unix_s: f64) -> SolarPosition {
    let jd = unix_s / 86_400.0 + 2_440_587.5;
    let days = unix_s.div_euclid(86_400.0);
    let (y, m, _) = if days.is_finite() && days.abs() < 1e8 {
        civil_from_days(days as i64)
    } else {
        (2000, 1, 1)
    };
    let year = y as f64 + (m as f64 - 0.5) / 12.0;
    let jde = jd + delta_t_s(year) / 86_400.0;
    let t = (jde - 2_451_545.0) / 36_525.0;
    let t_ut = (jd - 2_451_545.0) / 36_525.0;

    // Sun (Meeus ch. 25).
    let l0 = (280.46646 + t * (36000.76983 + 0.0003032 * t)).rem_euclid(360.0);
    let mean_anom = 357.52911 + t * (35999.05029 - 0.0001537 * t);
    let ecc = 0.016708634 - t * (0.000042037 + 0.0000001267 * t);
    let c = (1.914602 - t * (0.004817 + 0.000014 * t)) * sind(mean_anom)
        + (0.019993 - 0.000101 * t) * sind(2.0 * mean_anom)
        + 0.000289 * sind(3.0 * mean_anom);
    let true_long = l0 + c;
    let nu = mean_anom + c;
    let r_au = 1.000001018 * (1.0 - ecc * ecc) / (1.0 + ecc * cosd(nu));
    let omega = 125.04452 - 1934.136261 * t;
    let lambda = true_long - 0.00569 - 0.00478 * sind(omega);
    // Nutation (main terms), degrees.
    let l_moon = 218.3165 + 481267.8813 * t;
    let dpsi = (-17.20 * sind(omega) - 1.32 * sind(2.0 * l0) - 0.23 * sind(2.0 * l_moon)
        + 0.21 * sind(2.0 * omega))
        / 3600.0;
    let deps = (9.20 * cosd(omega) + 0.57 * cosd(2.0 * l0) + 0.10 * cosd(2.0 * l_moon)
        - 0.09 * cosd(2.0 * omega))
        / 3600.0;
    let eps0 =
        23.0 + (26.0 + (21.448 - t * (46.8150 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0;
    // Meeus 25.8 uses 0.00256 cos Ω for the apparent position; the fuller
    // Δε is within 0.0001° of it.
    let eps = eps0 + deps;
    let alpha = (cosd(eps) * sind(lambda)).atan2(cosd(lambda)).to_degrees();
    let delta = (sind(eps) * sind(lambda)).asin().to_degrees();

    // Apparent Greenwich sidereal time (Meeus 12.4 + equation of equinoxes).
    let gmst = 280.46061837
        + 360.98564736629 * (jd - 2_451_545.0)
        + t_ut * t_ut * (0.000387933 - t_ut / 38_710_000.0);
    let gast = gmst + dpsi * cosd(eps);
    let h = (gast + loc.longitude_deg - alpha).rem_euclid(360.0);

    // Topocentric correction (SPA eqns 26–37, parallax of the Sun).
    let phi = loc.latitude_deg;
    let xi = 8.794 / (3600.0 * r_au);
    let u = (0.99664719 * phi.to_radians().tan()).atan();
    let x = u.cos() + loc.altitude_m / 6_378_140.0 * cosd(phi);
    let yy = 0.99664719 * u.sin() + loc.altitude_m / 6_378_140.0 * sind(phi);
    let d_alpha = (-x * sind(xi) * sind(h))
        .atan2(cosd(delta) - x * sind(xi) * cosd(h))
        .to_degrees();
    let delta_p = ((sind(delta) - yy * sind(xi)) * cosd(d_alpha))
        .atan2(cosd(delta) - x * sind(xi) * cosd(h))
        .to_degrees();
    let h_p = h - d_alpha;

    let cos_z = sind(phi) * sind(delta_p) + cosd(phi) * cosd(delta_p) * cosd(h_p);
    let e0 = cos_z.clamp(-1.0, 1.0).asin().to_degrees();
    let zenith = 90.0 - e0;
    let az = sind(h_p)
        .atan2(cosd(h_p) * sind(phi) - (delta_p.to_radians().tan()) * cosd(phi))
        .to_degrees();
    let azimuth = (az + 180.0).rem_euclid(360.0);

    // SPA atmospheric refraction, pressure in mbar, 12 °C.
    let p_mbar = alt2pres(loc.altitude_m) / 100.0;
    let temp_c = 12.0;
    let refract = 0.5667;
    let de = if e0 >= -(0.26667 + refract) {
        (p_mbar / 1010.0) * (283.0 / (273.0 + temp_c)) * 1.02
            / (60.0 * (e0 + 10.3 / (e0 + 5.11)).to_radians().tan())
    } else {
        0.0
    };
    SolarPosition {
        zenith_deg: zenith,
        apparent_zenith_deg: zenith - de,
        azimuth_deg: azimuth,
        earth_sun_au: r_au,
    }
}

/// Day of the year (1..=366) of a UTC Unix time.
pub fn day_of_year(unix_s: f64) -> u32 {
    let days = unix_s.div_euclid(86_400.0);
    if !(days.is_finite() && days.abs() < 1e8) {
        return 1;
    }
    let days = days as i64;
    let (y, _, _) = civil_from_days(days);
    (days - crate::time::days_from_civil(y, 1, 1) + 1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    #[test]
    fn noon_at_equinox_on_the_equator_is_near_overhead() {
        // 2026-03-20 ~12:07 UTC at lon 0: sun near zenith at lat 0.
        let t = days_from_civil(2026, 3, 20) as f64 * 86_400.0 + 12.0 * 3600.0 + 7.0 * 60.0;
        let p = solar_position(
            &Location {
                latitude_deg: 0.0,
                longitude_deg: 0.0,
                altitude_m: 0.0,
            },
            t,
        );
        assert!(p.zenith_deg < 1.0, "{p:?}");
    }

    #[test]
    fn london_midsummer_noon() {
        // Max elevation at 51.5 N on 21 June is 90 − 51.5 + 23.44 ≈ 61.9°.
        let t = days_from_civil(2026, 6, 21) as f64 * 86_400.0 + 12.0 * 3600.0 + 2.0 * 60.0;
        let p = solar_position(
            &Location {
                latitude_deg: 51.5,
                longitude_deg: 0.0,
                altitude_m: 0.0,
            },
            t,
        );
        assert!((p.zenith_deg - 28.07).abs() < 0.1, "{p:?}");
        assert!((p.azimuth_deg - 180.0).abs() < 2.0, "{p:?}");
        assert!(p.apparent_zenith_deg < p.zenith_deg);
    }

    #[test]
    fn day_of_year_works() {
        let t = days_from_civil(2024, 12, 31) as f64 * 86_400.0 + 5.0;
        assert_eq!(day_of_year(t), 366);
    }
}
