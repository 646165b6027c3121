//! Fast linear table interpolation: 1-D, 2-D and 3-D tables on rectilinear
//! grids, clamped at the ends (no extrapolation).
//!
//! An [`Axis`] is a strictly increasing list of breakpoints. When the
//! breakpoints are evenly spaced (to a relative tolerance of 1e-9) the axis
//! is stored as `x0` and the inverse spacing, so locating a value is one
//! multiply and a truncation; otherwise a binary search is used. Outside the
//! axis the value is clamped to the first or last breakpoint, so a table
//! never extrapolates and never returns NaN for a finite input (a NaN input
//! is treated as the first breakpoint).
//!
//! [`MultiTable`] holds several quantities on the same grid, interleaved per
//! node, so that one lookup (one index computation, contiguous loads) gives
//! them all: this is what the battery model's hot path uses.

use std::fmt;

/// A problem building a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableError(pub String);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TableError {}

/// One grid axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    points: Vec<f64>,
    uniform: bool,
    x0: f64,
    inv_dx: f64,
}

/// A located value on an axis: the lower breakpoint index and the fraction
/// (in `[0, 1]`) of the way to the next one. For a one-point axis `i = 0`,
/// `frac = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loc {
    pub i: usize,
    pub frac: f64,
}

impl Axis {
    /// Builds an axis from strictly increasing, finite breakpoints (at least one).
    pub fn new(points: Vec<f64>) -> Result<Self, TableError> {
        if points.is_empty() {
            return Err(TableError("an axis needs at least one breakpoint".into()));
        }
        if let Some(i) = points.iter().position(|x| !x.is_finite()) {
            return Err(TableError(format!("breakpoint {i} is not finite")));
        }
        if let Some(i) = points.windows(2).position(|w| w[1] <= w[0]) {
            return Err(TableError(format!(
                "breakpoints must be strictly increasing: point {} ({}) follows {}",
                i + 1,
                points[i + 1],
                points[i]
            )));
        }
        let n = points.len();
        let (uniform, x0, inv_dx) = if n == 1 {
            (true, points[0], 0.0)
        } else {
            let dx = (points[n - 1] - points[0]) / (n - 1) as f64;
            let tol = 1e-9 * dx.abs().max(points[0].abs()).max(points[n - 1].abs());
            let uniform = points
                .iter()
                .enumerate()
                .all(|(i, &x)| (x - (points[0] + dx * i as f64)).abs() <= tol);
            (uniform, points[0], 1.0 / dx)
        };
        Ok(Axis {
            points,
            uniform,
            x0,
            inv_dx,
        })
    }

    /// An evenly spaced axis from `x0` to `x1` with `n` points.
    pub fn linspace(x0: f64, x1: f64, n: usize) -> Result<Self, TableError> {
        if n < 2 {
            return Axis::new(vec![x0]);
        }
        Axis::new(
            (0..n)
                .map(|i| x0 + (x1 - x0) * i as f64 / (n - 1) as f64)
                .collect(),
        )
    }

    pub fn points(&self) -> &[f64] {
        &self.points
    }
    pub fn len(&self) -> usize {
        self.points.len()
    }
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
    pub fn is_uniform(&self) -> bool {
        self.uniform
    }
    pub fn first(&self) -> f64 {
        self.points[0]
    }
    pub fn last(&self) -> f64 {
        self.points[self.points.len() - 1]
    }

    /// Locates `x` on the axis, clamped to its ends.
    #[inline(always)]
    pub fn locate(&self, x: f64) -> Loc {
        let n = self.points.len();
        if n == 1 {
            return Loc { i: 0, frac: 0.0 };
        }
        if self.uniform {
            // `max(0.0)` also maps NaN to 0.
            let u = ((x - self.x0) * self.inv_dx).max(0.0);
            let top = (n - 1) as f64;
            if u >= top {
                return Loc {
                    i: n - 2,
                    frac: 1.0,
                };
            }
            // SAFETY: here `u` is finite and in [0, n-1) (NaN was mapped to 0
            // by `max`, and `u >= n-1` returned above), so it fits in an i64
            // and truncation is floor. This avoids the saturating cast's
            // checks in the hot path.
            let i = unsafe { u.to_int_unchecked::<i64>() } as usize;
            Loc {
                i,
                frac: u - i as f64,
            }
        } else {
            if x.is_nan() || x <= self.points[0] {
                return Loc { i: 0, frac: 0.0 };
            }
            if x >= self.points[n - 1] {
                return Loc {
                    i: n - 2,
                    frac: 1.0,
                };
            }
            // First index with points[j] > x, minus one.
            let j = self.points.partition_point(|&p| p <= x);
            let i = j - 1;
            let (a, b) = (self.points[i], self.points[i + 1]);
            Loc {
                i,
                frac: (x - a) / (b - a),
            }
        }
    }
}

/// A 1-D table `y(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table1 {
    pub x: Axis,
    values: Vec<f64>,
}

impl Table1 {
    pub fn new(x: Vec<f64>, values: Vec<f64>) -> Result<Self, TableError> {
        let x = Axis::new(x)?;
        check_values(&values, x.len())?;
        Ok(Table1 { x, values })
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    #[inline]
    pub fn eval(&self, x: f64) -> f64 {
        let l = self.x.locate(x);
        if self.values.len() == 1 {
            return self.values[0];
        }
        let a = self.values[l.i];
        let b = self.values[l.i + 1];
        a + (b - a) * l.frac
    }
}

/// A 2-D table `z(x, y)`, values stored with `y` varying fastest
/// (`values[ix * ny + iy]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Table2 {
    pub x: Axis,
    pub y: Axis,
    values: Vec<f64>,
}

impl Table2 {
    pub fn new(x: Vec<f64>, y: Vec<f64>, values: Vec<f64>) -> Result<Self, TableError> {
        let x = Axis::new(x)?;
        let y = Axis::new(y)?;
        check_values(&values, x.len() * y.len())?;
        Ok(Table2 { x, y, values })
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    #[inline]
    pub fn eval(&self, x: f64, y: f64) -> f64 {
        let lx = self.x.locate(x);
        let ly = self.y.locate(y);
        let ny = self.y.len();
        let (ix1, fx) = step(lx, self.x.len());
        let (iy1, fy) = step(ly, ny);
        let v = |ix: usize, iy: usize| self.values[ix * ny + iy];
        let a = v(lx.i, ly.i);
        let b = v(lx.i, ly.i + iy1);
        let c = v(lx.i + ix1, ly.i);
        let d = v(lx.i + ix1, ly.i + iy1);
        let ab = a + (b - a) * fy;
        let cd = c + (d - c) * fy;
        ab + (cd - ab) * fx
    }
}

/// Offset to the upper neighbour (0 on a one-point axis) and the fraction.
#[inline(always)]
fn step(l: Loc, n: usize) -> (usize, f64) {
    if n > 1 {
        (1, l.frac)
    } else {
        (0, 0.0)
    }
}

fn check_values(values: &[f64], expected: usize) -> Result<(), TableError> {
    if values.len() != expected {
        return Err(TableError(format!(
            "expected {expected} values for the grid, found {}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(TableError(format!("value {i} is not finite")));
    }
    Ok(())
}

/// Several quantities tabulated on one 3-D grid `(x, y, z)` (any axis may
/// have a single point), interleaved per node: `values[((ix * ny + iy) * nz
/// + iz) * k + q]` for quantity `q` of `k`. [`MultiTable::eval_into`] does
/// one trilinear lookup for all `k` quantities.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiTable {
    pub x: Axis,
    pub y: Axis,
    pub z: Axis,
    k: usize,
    values: Vec<f64>,
    // Node strides in units of f64.
    sx: usize,
    sy: usize,
    sz: usize,
}

impl MultiTable {
    /// Builds the table by evaluating `f(x, y, z, out)` at every node; `out`
    /// has length `k`.
    pub fn from_fn(
        x: Axis,
        y: Axis,
        z: Axis,
        k: usize,
        mut f: impl FnMut(f64, f64, f64, &mut [f64]),
    ) -> Result<Self, TableError> {
        if k == 0 {
            return Err(TableError("a table needs at least one quantity".into()));
        }
        let (nx, ny, nz) = (x.len(), y.len(), z.len());
        let mut values = vec![0.0; nx * ny * nz * k];
        for (ix, &xv) in x.points().iter().enumerate() {
            for (iy, &yv) in y.points().iter().enumerate() {
                for (iz, &zv) in z.points().iter().enumerate() {
                    let o = ((ix * ny + iy) * nz + iz) * k;
                    f(xv, yv, zv, &mut values[o..o + k]);
                }
            }
        }
        check_values(&values, values.len())?;
        let sz = if nz > 1 { k } else { 0 };
        let sy = if ny > 1 { nz * k } else { 0 };
        let sx = if nx > 1 { ny * nz * k } else { 0 };
        Ok(MultiTable {
            x,
            y,
            z,
            k,
            values,
            sx,
            sy,
            sz,
        })
    }

    /// Number of quantities per node.
    pub fn quantities(&self) -> usize {
        self.k
    }

    /// Bilinear coefficients over the `(x, y)` cell with lower corner
    /// `(ix, iy)` at the z node `iz`: for every quantity `q`, `out[q] = [a,
    /// b, c, d]` with `value = (a + b·fx) + (c + d·fx)·fy` for the fractions
    /// `fx, fy` within the cell (the bilinear interpolant, rearranged).
    /// On a one-point axis the upper corner is the lower one.
    pub fn bilinear_coeffs(&self, ix: usize, iy: usize, iz: usize, out: &mut [[f64; 4]]) {
        let base = ((ix * self.y.len() + iy) * self.z.len() + iz) * self.k;
        let v = &self.values;
        let (sx, sy) = (self.sx, self.sy);
        for (q, o) in out[..self.k].iter_mut().enumerate() {
            let c00 = v[base + q];
            let c10 = v[base + sx + q];
            let c01 = v[base + sy + q];
            let c11 = v[base + sx + sy + q];
            *o = [c00, c10 - c00, c01 - c00, (c11 - c01) - (c10 - c00)];
        }
    }

    /// Trilinear interpolation of all quantities at `(x, y, z)` into `out`
    /// (`out.len() >= k`), clamped at the grid ends.
    #[inline(always)]
    pub fn eval_into(&self, x: f64, y: f64, z: f64, out: &mut [f64]) {
        let lx = self.x.locate(x);
        let ly = self.y.locate(y);
        let lz = self.z.locate(z);
        let k = self.k;
        let ny = self.y.len();
        let nz = self.z.len();
        let base = ((lx.i * ny + ly.i) * nz + lz.i) * k;
        let v = &self.values;
        let (sx, sy, sz) = (self.sx, self.sy, self.sz);
        let (fx, fy, fz) = (lx.frac, ly.frac, lz.frac);
        let out = &mut out[..k];
        if sz == 0 && sy == 0 {
            // 1-D in x only (the common SOC-only case).
            let a = &v[base..base + k];
            let b = &v[base + sx..base + sx + k];
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *o = a + (b - a) * fx;
            }
        } else if sz == 0 {
            let a = &v[base..base + k];
            let b = &v[base + sy..base + sy + k];
            let c = &v[base + sx..base + sx + k];
            let d = &v[base + sx + sy..base + sx + sy + k];
            for q in 0..k {
                let ab = a[q] + (b[q] - a[q]) * fy;
                let cd = c[q] + (d[q] - c[q]) * fy;
                out[q] = ab + (cd - ab) * fx;
            }
        } else {
            let s = |off: usize| &v[base + off..base + off + k];
            let (c000, c001, c010, c011) = (s(0), s(sz), s(sy), s(sy + sz));
            let (c100, c101, c110, c111) = (s(sx), s(sx + sz), s(sx + sy), s(sx + sy + sz));
            for q in 0..k {
                let c00 = c000[q] + (c001[q] - c000[q]) * fz;
                let c01 = c010[q] + (c011[q] - c010[q]) * fz;
                let c10 = c100[q] + (c101[q] - c100[q]) * fz;
                let c11 = c110[q] + (c111[q] - c110[q]) * fz;
                let c0 = c00 + (c01 - c00) * fy;
                let c1 = c10 + (c11 - c10) * fy;
                out[q] = c0 + (c1 - c0) * fx;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_detection_and_locate() {
        let a = Axis::new(vec![0.0, 0.05, 0.1, 0.15000000000000002, 0.2]).unwrap();
        assert!(a.is_uniform());
        let l = a.locate(0.125);
        assert_eq!(l.i, 2);
        assert!((l.frac - 0.5).abs() < 1e-12);
        assert_eq!(a.locate(-1.0), Loc { i: 0, frac: 0.0 });
        assert_eq!(a.locate(9.0), Loc { i: 3, frac: 1.0 });
        assert_eq!(a.locate(f64::NAN), Loc { i: 0, frac: 0.0 });
        let b = Axis::new(vec![0.0, 1.0, 3.0]).unwrap();
        assert!(!b.is_uniform());
        let l = b.locate(2.0);
        assert_eq!(l.i, 1);
        assert!((l.frac - 0.5).abs() < 1e-12);
        assert!(Axis::new(vec![0.0, 0.0]).is_err());
        assert!(Axis::new(vec![]).is_err());
    }

    #[test]
    fn table1_clamps_and_interpolates() {
        let t = Table1::new(vec![0.0, 1.0, 3.0], vec![0.0, 10.0, 30.0]).unwrap();
        assert_eq!(t.eval(0.5), 5.0);
        assert_eq!(t.eval(2.0), 20.0);
        assert_eq!(t.eval(-5.0), 0.0);
        assert_eq!(t.eval(5.0), 30.0);
        let c = Table1::new(vec![0.0], vec![7.0]).unwrap();
        assert_eq!(c.eval(3.0), 7.0);
    }

    #[test]
    fn table2_is_bilinear() {
        // z = x + 10 y (bilinear reproduces it exactly)
        let xs = vec![0.0, 1.0, 2.0];
        let ys = vec![0.0, 0.5, 2.0];
        let mut v = vec![];
        for &x in &xs {
            for &y in &ys {
                v.push(x + 10.0 * y);
            }
        }
        let t = Table2::new(xs, ys, v).unwrap();
        assert!((t.eval(1.3, 1.1) - (1.3 + 11.0)).abs() < 1e-12);
        assert!((t.eval(5.0, -1.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn multitable_matches_trilinear_function() {
        let f = |x: f64, y: f64, z: f64| 1.0 + x + 2.0 * y - 3.0 * z + 0.5 * x * y * z;
        let t = MultiTable::from_fn(
            Axis::linspace(0.0, 1.0, 11).unwrap(),
            Axis::new(vec![-10.0, 0.0, 25.0]).unwrap(),
            Axis::linspace(-2.0, 2.0, 5).unwrap(),
            2,
            |x, y, z, o| {
                o[0] = f(x, y, z);
                o[1] = -f(x, y, z);
            },
        )
        .unwrap();
        let mut out = [0.0; 2];
        t.eval_into(0.37, 12.0, 0.3, &mut out);
        assert!((out[0] - f(0.37, 12.0, 0.3)).abs() < 1e-9, "{out:?}");
        assert!((out[1] + f(0.37, 12.0, 0.3)).abs() < 1e-9);
        // 1-D and 2-D degenerate grids
        let t1 = MultiTable::from_fn(
            Axis::linspace(0.0, 1.0, 3).unwrap(),
            Axis::new(vec![0.0]).unwrap(),
            Axis::new(vec![0.0]).unwrap(),
            1,
            |x, _, _, o| o[0] = 2.0 * x,
        )
        .unwrap();
        let mut o = [0.0];
        t1.eval_into(0.25, 99.0, -99.0, &mut o);
        assert!((o[0] - 0.5).abs() < 1e-12);
        let t2 = MultiTable::from_fn(
            Axis::linspace(0.0, 1.0, 3).unwrap(),
            Axis::linspace(0.0, 10.0, 3).unwrap(),
            Axis::new(vec![0.0]).unwrap(),
            1,
            |x, y, _, o| o[0] = x + y,
        )
        .unwrap();
        t2.eval_into(0.25, 7.5, 0.0, &mut o);
        assert!((o[0] - 7.75).abs() < 1e-12);
    }
}
