//! Strings and arrays of identical modules: `modules_in_series` modules
//! per string, `strings` strings in parallel (no mismatch, no bypass-diode
//! action, no wiring loss). Array voltage = series count × module voltage,
//! array current = string count × module current.

use super::module::CecModule;
use super::single_diode::{calcparams_cec, DiodeParams, IvSummary};

/// An array of identical CEC modules.
#[derive(Debug, Clone, PartialEq)]
pub struct PvArray {
    module: CecModule,
    modules_in_series: u32,
    strings: u32,
}

impl PvArray {
    pub fn new(module: CecModule, modules_in_series: u32, strings: u32) -> Result<Self, String> {
        module.validate()?;
        if modules_in_series == 0 || strings == 0 {
            return Err(format!(
                "array: modules_in_series ({modules_in_series}) and strings ({strings}) must be >= 1"
            ));
        }
        Ok(PvArray {
            module,
            modules_in_series,
            strings,
        })
    }

    pub fn module(&self) -> &CecModule {
        &self.module
    }
    pub fn modules_in_series(&self) -> u32 {
        self.modules_in_series
    }
    pub fn strings(&self) -> u32 {
        self.strings
    }

    /// The array's I-V curve at a plane-of-array irradiance and cell
    /// temperature.
    pub fn iv(&self, poa_w_m2: f64, temp_cell_c: f64) -> ArrayIv {
        let params = calcparams_cec(&self.module, poa_w_m2, temp_cell_c);
        ArrayIv {
            params,
            module: params.solve(),
            ns: self.modules_in_series as f64,
            np: self.strings as f64,
        }
    }

    /// Nameplate DC power (module `STC` × count), W, when the module gives it.
    pub fn nameplate_w(&self) -> Option<f64> {
        self.module
            .stc_w
            .map(|p| p * self.modules_in_series as f64 * self.strings as f64)
    }
}

/// An array I-V curve at given conditions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayIv {
    /// Single-diode parameters of one module.
    pub params: DiodeParams,
    /// One module's characteristic points.
    pub module: IvSummary,
    ns: f64,
    np: f64,
}

impl ArrayIv {
    /// The array's characteristic points.
    pub fn summary(&self) -> IvSummary {
        let m = &self.module;
        IvSummary {
            i_sc: m.i_sc * self.np,
            v_oc: m.v_oc * self.ns,
            i_mp: m.i_mp * self.np,
            v_mp: m.v_mp * self.ns,
            p_mp: m.p_mp * self.ns * self.np,
        }
    }

    /// Array current at array voltage `v`, A.
    pub fn i_from_v(&self, v: f64) -> f64 {
        if !self.params.is_lit() {
            return 0.0;
        }
        self.params.i_from_v(v / self.ns) * self.np
    }

    /// Array voltage at array current `i`, V.
    pub fn v_from_i(&self, i: f64) -> f64 {
        if !self.params.is_lit() {
            return 0.0;
        }
        self.params.v_from_i(i / self.np) * self.ns
    }

    /// `(v, i)` on the high-voltage side of the MPP where the array power
    /// is `p_w`.
    pub fn point_at_power(&self, p_w: f64) -> (f64, f64) {
        if !self.params.is_lit() {
            return (0.0, 0.0);
        }
        let (v, i) = self
            .params
            .point_at_power(&self.module, p_w / (self.ns * self.np));
        (v * self.ns, i * self.np)
    }

    /// `n >= 2` points `(v, i)` from short circuit to open circuit.
    pub fn curve(&self, n: usize) -> Vec<(f64, f64)> {
        let s = self.summary();
        let n = n.max(2);
        (0..n)
            .map(|k| {
                let v = s.v_oc * k as f64 / (n - 1) as f64;
                (v, self.i_from_v(v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn array_scales_module() {
        let m = CecModule::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("params/pv/modules/Canadian_Solar_Inc__CS6K_275P.toml"),
        )
        .unwrap();
        let a = PvArray::new(m.clone(), 4, 3).unwrap();
        let iv = a.iv(700.0, 35.0);
        let s = iv.summary();
        let ms = calcparams_cec(&m, 700.0, 35.0).solve();
        assert!((s.p_mp - 12.0 * ms.p_mp).abs() < 1e-9 * s.p_mp);
        assert!((s.v_oc - 4.0 * ms.v_oc).abs() < 1e-12 * s.v_oc);
        assert!((iv.i_from_v(s.v_mp) - s.i_mp).abs() < 1e-9);
        let c = iv.curve(50);
        assert!((c[0].1 - s.i_sc).abs() < 1e-12 && c[49].1.abs() < 1e-9);
        assert!(PvArray::new(m, 0, 1).is_err());
    }
}
