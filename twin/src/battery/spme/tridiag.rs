//! Tridiagonal solves (Thomas algorithm) with a reusable factorisation, for
//! the implicit diffusion steps. No allocation after construction.

/// The factorisation of a tridiagonal matrix with sub-diagonal `a` (a[0]
/// unused), diagonal `b` and super-diagonal `c` (c[n-1] unused), kept so that
/// repeated solves with the same matrix cost two sweeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Tridiag {
    a: Vec<f64>,
    /// Modified super-diagonal `c'`.
    cp: Vec<f64>,
    /// `1 / (b_i − a_i c'_{i−1})`.
    inv: Vec<f64>,
}

impl Tridiag {
    /// An identity factorisation of size `n`.
    pub fn new(n: usize) -> Self {
        Tridiag {
            a: vec![0.0; n],
            cp: vec![0.0; n],
            inv: vec![1.0; n],
        }
    }

    /// Size of the system.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether the system is empty.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Factorises the matrix given row by row by `row(i) -> (a_i, b_i, c_i)`.
    /// The matrices built here are diagonally dominant M-matrices, so the
    /// pivots are positive.
    #[inline]
    pub fn factor(&mut self, mut row: impl FnMut(usize) -> (f64, f64, f64)) {
        let mut cprev = 0.0;
        for i in 0..self.a.len() {
            let (a, b, c) = row(i);
            let m = 1.0 / (b - a * cprev);
            self.a[i] = a;
            self.inv[i] = m;
            cprev = c * m;
            self.cp[i] = cprev;
        }
    }

    /// Solves in place: `x` holds the right-hand side on entry.
    #[inline]
    pub fn solve(&self, x: &mut [f64]) {
        let n = self.a.len().min(x.len());
        if n == 0 {
            return;
        }
        let mut prev = 0.0;
        for ((xi, a), inv) in x[..n].iter_mut().zip(&self.a).zip(&self.inv) {
            prev = (*xi - a * prev) * inv;
            *xi = prev;
        }
        for i in (0..n - 1).rev() {
            x[i] -= self.cp[i] * x[i + 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_known_system() {
        // [2 -1 0; -1 2 -1; 0 -1 2] x = [1, 0, 1] -> x = [1, 1, 1]
        let mut t = Tridiag::new(3);
        t.factor(|_| (-1.0, 2.0, -1.0));
        let mut x = [1.0, 0.0, 1.0];
        t.solve(&mut x);
        for v in x {
            assert!((v - 1.0).abs() < 1e-14, "{x:?}");
        }
    }
}
