//! From horizontal to the plane of array: Erbs (1982) decomposition of GHI
//! into DNI and DHI (used when clouds scale the clear-sky GHI), and the
//! Hay–Davies (1980) transposition with an isotropic ground-reflected term,
//! as `pvlib.irradiance.erbs` and `get_total_irradiance(model='haydavies')`.
//! No angle-of-incidence (reflection) losses are applied.

use super::clearsky::Irradiance;

fn cosd(x: f64) -> f64 {
    x.to_radians().cos()
}
fn sind(x: f64) -> f64 {
    x.to_radians().sin()
}

/// Erbs decomposition of `ghi` at true solar `zenith_deg`
/// (min cos zenith 0.065, max zenith 87°, clearness index capped at 1).
pub fn erbs(ghi: f64, zenith_deg: f64, dni_extra: f64) -> Irradiance {
    let cos_z = cosd(zenith_deg);
    let kt = (ghi / (dni_extra * cos_z.max(0.065))).clamp(0.0, 1.0);
    let df = if kt <= 0.22 {
        1.0 - 0.09 * kt
    } else if kt <= 0.8 {
        0.9511 - 0.1604 * kt + 4.388 * kt.powi(2) - 16.638 * kt.powi(3) + 12.336 * kt.powi(4)
    } else {
        0.165
    };
    let dhi = df * ghi;
    let dni = (ghi - dhi) / cos_z;
    if zenith_deg > 87.0 || ghi.is_nan() || ghi < 0.0 || dni.is_nan() || dni < 0.0 {
        return Irradiance {
            ghi,
            dni: 0.0,
            dhi: ghi,
        };
    }
    Irradiance { ghi, dni, dhi }
}

/// Cosine of the angle of incidence on a surface (tilt from horizontal,
/// azimuth east of north), clipped to [-1, 1].
pub fn aoi_projection(
    tilt_deg: f64,
    surface_azimuth_deg: f64,
    zenith_deg: f64,
    azimuth_deg: f64,
) -> f64 {
    (cosd(tilt_deg) * cosd(zenith_deg)
        + sind(tilt_deg) * sind(zenith_deg) * cosd(azimuth_deg - surface_azimuth_deg))
    .clamp(-1.0, 1.0)
}

/// Plane-of-array irradiance components, W/m².
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoaIrradiance {
    pub global: f64,
    pub direct: f64,
    pub sky_diffuse: f64,
    pub ground_diffuse: f64,
}

/// Hay–Davies sky diffuse + beam + isotropic ground reflection.
#[allow(clippy::too_many_arguments)]
pub fn hay_davies(
    tilt_deg: f64,
    surface_azimuth_deg: f64,
    zenith_deg: f64,
    azimuth_deg: f64,
    irr: &Irradiance,
    dni_extra: f64,
    albedo: f64,
) -> PoaIrradiance {
    let proj = aoi_projection(tilt_deg, surface_azimuth_deg, zenith_deg, azimuth_deg);
    let rb = proj.max(0.0) / cosd(zenith_deg).max(0.01745);
    let ai = irr.dni / dni_extra;
    let iso = (irr.dhi * (1.0 - ai) * 0.5 * (1.0 + cosd(tilt_deg))).max(0.0);
    let circ = (irr.dhi * ai * rb).max(0.0);
    let sky = iso + circ;
    let ground = irr.ghi * albedo * (1.0 - cosd(tilt_deg)) * 0.5;
    let direct = (irr.dni * proj).max(0.0);
    PoaIrradiance {
        global: direct + sky + ground,
        direct,
        sky_diffuse: sky,
        ground_diffuse: ground,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_plane_sees_ghi() {
        let irr = Irradiance {
            ghi: 600.0,
            dni: 700.0,
            dhi: 600.0 - 700.0 * cosd(50.0),
        };
        let p = hay_davies(0.0, 180.0, 50.0, 150.0, &irr, 1361.0, 0.2);
        assert!((p.global - 600.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn erbs_closure_holds() {
        for ghi in [0.0, 50.0, 300.0, 800.0] {
            let d = erbs(ghi, 40.0, 1361.0);
            assert!((d.dhi + d.dni * cosd(40.0) - ghi).abs() < 1e-9);
        }
        let d = erbs(50.0, 88.0, 1361.0);
        assert_eq!((d.dni, d.dhi), (0.0, 50.0));
    }
}
