//! The validated radial network and its backward/forward sweep.

use super::dss::{Conn, DssModel, C64};
use super::FeederError;
use nalgebra::{Matrix3, Vector3};
use std::collections::HashMap;

type V3 = Vector3<C64>;
type M3 = Matrix3<C64>;

const SQRT3: f64 = 1.732_050_807_568_877_2;

/// Convergence settings of [`Network::solve_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveOptions {
    /// Converged when no phase voltage changes by more than this (p.u. of
    /// its bus's base) in one iteration.
    pub tolerance_pu: f64,
    /// Give up with [`FeederError::NoConvergence`] after this many sweeps.
    pub max_iterations: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            tolerance_pu: 1e-10,
            max_iterations: 100,
        }
    }
}

/// Active and reactive power of every load for one snapshot, in the
/// network's load order ([`Network::load_names`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSnapshot {
    /// Active power per load, kW (total over its phases).
    pub kw: Vec<f64>,
    /// Reactive power per load, kvar (total over its phases).
    pub kvar: Vec<f64>,
}

impl LoadSnapshot {
    /// A snapshot with every load at zero.
    pub fn zeros(n_loads: usize) -> Self {
        Self {
            kw: vec![0.0; n_loads],
            kvar: vec![0.0; n_loads],
        }
    }
}

#[derive(Debug, Clone)]
struct Load {
    name: String,
    bus: usize,
    phases: [bool; 3],
    n_phases: f64,
    v_rated_v: f64,
    vminpu: f64,
    vmaxpu: f64,
}

#[derive(Debug, Clone)]
struct Transformer {
    name: String,
    /// Series impedance referred to the LV side, Ω (all sequences).
    z_ohm: C64,
    /// LV/HV voltage ratio (with taps).
    ratio: f64,
    /// Delta–wye phase shift of the LV side relative to the HV side.
    shift: C64,
    hv_delta: bool,
}

/// A radial feeder ready to solve: topology ordered once, impedances in
/// ohms, bases assigned. Build it with [`Network::from_dss`].
#[derive(Debug, Clone)]
pub struct Network {
    /// Public bus order: the HV source bus first when there is a
    /// transformer, then the LV tree in breadth-first order from its root.
    bus_names: Vec<String>,
    base_v_ln: Vec<f64>,
    /// Offset of the tree's buses in the public order (1 with a transformer).
    tree_offset: usize,
    /// Tree: parent of every tree bus (index into the tree; root: 0 unused).
    parent: Vec<usize>,
    /// Series impedance of the line from each tree bus's parent, Ω.
    z_up: Vec<M3>,
    /// Shunt admittance lumped at each tree bus (half of each line's), S.
    shunt: Vec<(usize, M3)>,
    /// Line names in definition order, their tree bus and orientation
    /// (true: bus1 is the parent).
    lines: Vec<(String, usize, bool)>,
    loads: Vec<Load>,
    base_kw: Vec<f64>,
    base_kvar: Vec<f64>,
    v_th: V3,
    z_th: M3,
    /// Ideal source phase voltages, V.
    v_src: V3,
    z_src: M3,
    transformer: Option<Transformer>,
}

/// Power flowing through the transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerFlow {
    /// Transformer name.
    pub name: String,
    /// Power delivered at the LV terminals, per phase, kW + j kvar.
    pub s_lv_kva: [C64; 3],
    /// Power drawn at the HV terminals, total over the phases.
    pub s_hv_kva: C64,
    /// Series losses, kW.
    pub losses_kw: f64,
}

/// The result of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Phase-to-ground voltages per bus (public order), V.
    pub v_v: Vec<[C64; 3]>,
    /// |V| per bus and phase, p.u. of the bus's base.
    pub vm_pu: Vec<[f64; 3]>,
    /// Angle per bus and phase, degrees.
    pub va_deg: Vec<[f64; 3]>,
    /// Series current of every line (definition order), flowing bus1 → bus2, A.
    pub line_current_a: Vec<[C64; 3]>,
    /// Sum of line losses, kW.
    pub line_losses_kw: f64,
    /// The transformer's flow, if there is one.
    pub transformer: Option<TransformerFlow>,
    /// Power delivered by the ideal source (behind its impedance), kW + j kvar.
    pub source_kva: C64,
    /// Power actually consumed by the loads (at the solved voltages).
    pub load_kva: C64,
    /// Sweeps run.
    pub iterations: usize,
}

/// Largest squared magnitude of the three phases.
fn max_abs2(x: &V3) -> f64 {
    x.iter().fold(0.0, |m, c| m.max(c.norm_sqr()))
}

fn seq_to_phase(z1: C64, z0: C64) -> M3 {
    let s = (z0 + z1 * 2.0) / 3.0;
    let m = (z0 - z1) / 3.0;
    M3::new(s, m, m, m, s, m, m, m, s)
}

fn a_op() -> C64 {
    C64::from_polar(1.0, 2.0 * std::f64::consts::PI / 3.0)
}

fn balanced(v: C64) -> V3 {
    let a = a_op();
    V3::new(v, v * a * a, v * a)
}

/// Phase → (zero, positive, negative) sequence.
fn to_seq(x: &V3) -> V3 {
    let a = a_op();
    let a2 = a * a;
    V3::new(
        (x[0] + x[1] + x[2]) / 3.0,
        (x[0] + a * x[1] + a2 * x[2]) / 3.0,
        (x[0] + a2 * x[1] + a * x[2]) / 3.0,
    )
}

fn from_seq(s: &V3) -> V3 {
    let a = a_op();
    let a2 = a * a;
    V3::new(
        s[0] + s[1] + s[2],
        s[0] + a2 * s[1] + a * s[2],
        s[0] + a * s[1] + a2 * s[2],
    )
}

impl Network {
    /// Builds and validates a network from a parsed script: one source, at
    /// most one transformer at the source bus, a radial LV tree of
    /// three-phase lines, loads on its buses.
    pub fn from_dss(m: &DssModel) -> Result<Self, FeederError> {
        let bad = |s: String| FeederError::Network(s);
        let Some(src) = &m.source else {
            return Err(bad("no `New Circuit.` in the script".into()));
        };
        if m.transformers.len() > 1 {
            let names: Vec<&str> = m.transformers.iter().map(|t| t.name.as_str()).collect();
            return Err(bad(format!(
                "only one transformer (at the source bus) is supported, found {}: {}",
                names.len(),
                names.join(", ")
            )));
        }
        let nearest_base = |kv: f64| -> f64 {
            m.voltage_bases_kv
                .iter()
                .copied()
                .min_by(|a, b| {
                    let da = (a / kv).ln().abs();
                    let db = (b / kv).ln().abs();
                    da.total_cmp(&db)
                })
                .unwrap_or(kv)
        };
        let v_src = balanced(C64::from_polar(
            src.pu * src.base_kv * 1e3 / SQRT3,
            src.angle_deg.to_radians(),
        ));
        let z_src = seq_to_phase(src.z1_ohm, src.z0_ohm);
        let (root, root_kv, v_th, z_th, transformer) = match m.transformers.first() {
            Some(t) => {
                if t.buses[0] != src.bus {
                    return Err(bad(format!(
                        "{}:{}: Transformer.{}: winding 1 must be on the source bus `{}` (found `{}`)",
                        t.origin.file, t.origin.line, t.name, src.bus, t.buses[0]
                    )));
                }
                if t.buses[1] == src.bus {
                    return Err(bad(format!(
                        "Transformer.{}: both windings on the same bus",
                        t.name
                    )));
                }
                if t.conns[1] != Conn::Wye {
                    return Err(bad(format!(
                        "{}:{}: Transformer.{}: the LV winding must be wye (grounded); a delta LV side is not supported",
                        t.origin.file, t.origin.line, t.name
                    )));
                }
                let ratio = (t.kvs[1] * t.taps[1]) / (t.kvs[0] * t.taps[0]);
                let z_base = t.kvs[1] * t.kvs[1] / (t.kvas[0] / 1000.0);
                let z_t = C64::new(
                    (t.r_pct[0] + t.r_pct[1]) / 100.0 * z_base,
                    t.xhl_pct / 100.0 * z_base,
                );
                let hv_delta = t.conns[0] == Conn::Delta;
                let shift = if hv_delta {
                    C64::from_polar(1.0, (-30f64).to_radians())
                } else {
                    C64::new(1.0, 0.0)
                };
                let r2 = ratio * ratio;
                let z1 = z_t + src.z1_ohm * r2;
                let z0 = if hv_delta { z_t } else { z_t + src.z0_ohm * r2 };
                let v_th = v_src * (shift * ratio);
                (
                    t.buses[1].clone(),
                    t.kvs[1],
                    v_th,
                    seq_to_phase(z1, z0),
                    Some(Transformer {
                        name: t.name.clone(),
                        z_ohm: z_t,
                        ratio,
                        shift,
                        hv_delta,
                    }),
                )
            }
            None => (src.bus.clone(), src.base_kv, v_src, z_src, None),
        };

        // Tree by breadth-first search from the root over the lines.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        for l in &m.lines {
            if l.bus1 == l.bus2 {
                return Err(bad(format!(
                    "{}:{}: Line.{} connects bus `{}` to itself",
                    l.origin.file, l.origin.line, l.name, l.bus1
                )));
            }
            if transformer.is_some() && (l.bus1 == src.bus || l.bus2 == src.bus) {
                return Err(bad(format!(
                    "{}:{}: Line.{} is on the HV source bus `{}`; only the transformer's LV side may carry lines",
                    l.origin.file, l.origin.line, l.name, src.bus
                )));
            }
            for b in [&l.bus1, &l.bus2] {
                if !index.contains_key(b.as_str()) {
                    index.insert(b.as_str(), names.len());
                    names.push(b.as_str());
                }
            }
        }
        if !index.contains_key(root.as_str()) {
            index.insert(root.as_str(), names.len());
            names.push(root.as_str());
        }
        let nb = names.len();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nb];
        for (k, l) in m.lines.iter().enumerate() {
            adj[index[l.bus1.as_str()]].push(k);
            adj[index[l.bus2.as_str()]].push(k);
        }
        let mut tree_of: Vec<Option<usize>> = vec![None; nb];
        let mut order: Vec<usize> = Vec::with_capacity(nb); // name index per tree index
        let mut parent = Vec::with_capacity(nb);
        let mut z_up = Vec::with_capacity(nb);
        let mut line_used = vec![false; m.lines.len()];
        let mut line_tree: Vec<(usize, bool)> = vec![(0, true); m.lines.len()];
        let r = index[root.as_str()];
        tree_of[r] = Some(0);
        order.push(r);
        parent.push(0);
        z_up.push(M3::zeros());
        let mut head = 0;
        while head < order.len() {
            let u = order[head];
            let tu = head;
            head += 1;
            for &k in &adj[u] {
                if line_used[k] {
                    continue;
                }
                line_used[k] = true;
                let l = &m.lines[k];
                let (w, forward) = if index[l.bus1.as_str()] == u {
                    (index[l.bus2.as_str()], true)
                } else {
                    (index[l.bus1.as_str()], false)
                };
                if tree_of[w].is_some() {
                    return Err(bad(format!(
                        "{}:{}: Line.{} closes a loop (bus `{}` is already reached); only radial feeders are supported",
                        l.origin.file, l.origin.line, l.name, names[w]
                    )));
                }
                let tw = order.len();
                tree_of[w] = Some(tw);
                order.push(w);
                parent.push(tu);
                z_up.push(l.z_ohm);
                line_tree[k] = (tw, forward);
            }
        }
        if let Some(k) = line_used.iter().position(|u| !u) {
            let l = &m.lines[k];
            return Err(bad(format!(
                "{}:{}: Line.{} is not connected to the source",
                l.origin.file, l.origin.line, l.name
            )));
        }
        let tree_offset = usize::from(transformer.is_some());
        let mut shunt_acc: Vec<M3> = vec![M3::zeros(); order.len()];
        for (k, l) in m.lines.iter().enumerate() {
            if l.y_shunt_s.iter().any(|y| y.norm() > 0.0) {
                let (t, _) = line_tree[k];
                let half = l.y_shunt_s * C64::new(0.5, 0.0);
                shunt_acc[t] += half;
                shunt_acc[parent[t]] += half;
            }
        }
        let shunt = shunt_acc
            .into_iter()
            .enumerate()
            .filter(|(_, y)| y.iter().any(|c| c.norm() > 0.0))
            .collect();
        let lv_base_ln = nearest_base(root_kv) * 1e3 / SQRT3;
        let mut bus_names = Vec::with_capacity(order.len() + tree_offset);
        let mut base_v_ln = Vec::with_capacity(order.len() + tree_offset);
        if transformer.is_some() {
            bus_names.push(src.bus.clone());
            base_v_ln.push(nearest_base(src.base_kv) * 1e3 / SQRT3);
        }
        for &u in &order {
            bus_names.push(names[u].to_string());
            base_v_ln.push(lv_base_ln);
        }
        let mut loads = Vec::with_capacity(m.loads.len());
        for l in &m.loads {
            let Some(Some(t)) = index.get(l.bus.as_str()).map(|i| tree_of[*i]) else {
                return Err(bad(format!(
                    "{}:{}: Load.{} is on bus `{}`, which is not on the transformer's LV side",
                    l.origin.file, l.origin.line, l.name, l.bus
                )));
            };
            let n_phases = l.phases.iter().filter(|p| **p).count() as f64;
            let v_rated_v = if n_phases == 3.0 {
                l.kv * 1e3 / SQRT3
            } else {
                l.kv * 1e3
            };
            loads.push(Load {
                name: l.name.clone(),
                bus: t,
                phases: l.phases,
                n_phases,
                v_rated_v,
                vminpu: l.vminpu,
                vmaxpu: l.vmaxpu,
            });
        }
        Ok(Self {
            bus_names,
            base_v_ln,
            tree_offset,
            parent,
            z_up,
            shunt,
            lines: m
                .lines
                .iter()
                .zip(&line_tree)
                .map(|(l, (t, f))| (l.name.clone(), *t, *f))
                .collect(),
            base_kw: m.loads.iter().map(|l| l.kw).collect(),
            base_kvar: m.loads.iter().map(|l| l.kvar).collect(),
            loads,
            v_th,
            z_th,
            v_src,
            z_src,
            transformer,
        })
    }

    /// Bus names in the order of [`Solution::vm_pu`]: the HV source bus
    /// first when there is a transformer, then the LV buses breadth-first.
    pub fn bus_names(&self) -> &[String] {
        &self.bus_names
    }

    /// Phase-to-ground voltage base of every bus, V.
    pub fn base_v_ln(&self) -> &[f64] {
        &self.base_v_ln
    }

    /// Load names in snapshot order.
    pub fn load_names(&self) -> impl Iterator<Item = &str> {
        self.loads.iter().map(|l| l.name.as_str())
    }

    /// Index of a load by (case-insensitive) name.
    pub fn load_index(&self, name: &str) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        self.loads.iter().position(|l| l.name == n)
    }

    /// Line names in definition order (the order of [`Solution::line_current_a`]).
    pub fn line_names(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.0.as_str())
    }

    /// The transformer's name, if there is one.
    pub fn transformer_name(&self) -> Option<&str> {
        self.transformer.as_ref().map(|t| t.name.as_str())
    }

    /// The loads as the script gives them.
    pub fn base_snapshot(&self) -> LoadSnapshot {
        LoadSnapshot {
            kw: self.base_kw.clone(),
            kvar: self.base_kvar.clone(),
        }
    }

    /// Solves one snapshot with the default [`SolveOptions`].
    pub fn solve(&self, snapshot: &LoadSnapshot) -> Result<Solution, FeederError> {
        self.solve_with(snapshot, &SolveOptions::default())
    }

    fn load_currents(&self, snap: &LoadSnapshot, v: &[V3], inj: &mut [V3]) {
        for (k, l) in self.loads.iter().enumerate() {
            let s_va = C64::new(snap.kw[k], snap.kvar[k]) * (1e3 / l.n_phases);
            if s_va.norm() == 0.0 {
                continue;
            }
            for p in 0..3 {
                if !l.phases[p] {
                    continue;
                }
                let vp = v[l.bus][p];
                let vpu = vp.norm() / l.v_rated_v;
                let i = if vpu >= l.vminpu && vpu <= l.vmaxpu {
                    (s_va / vp).conj()
                } else {
                    let lim = if vpu < l.vminpu { l.vminpu } else { l.vmaxpu };
                    let vl = lim * l.v_rated_v;
                    s_va.conj() / (vl * vl) * vp
                };
                inj[l.bus][p] += i;
            }
        }
        for (b, y) in &self.shunt {
            inj[*b] += y * v[*b];
        }
    }

    /// Solves one snapshot: backward/forward sweep from a flat start.
    pub fn solve_with(
        &self,
        snap: &LoadSnapshot,
        opts: &SolveOptions,
    ) -> Result<Solution, FeederError> {
        let n_loads = self.loads.len();
        if snap.kw.len() != n_loads || snap.kvar.len() != n_loads {
            return Err(FeederError::Snapshot(format!(
                "the network has {n_loads} loads but the snapshot gives {} kW and {} kvar values",
                snap.kw.len(),
                snap.kvar.len()
            )));
        }
        if let Some(k) =
            (0..n_loads).find(|k| !(snap.kw[*k].is_finite() && snap.kvar[*k].is_finite()))
        {
            return Err(FeederError::Snapshot(format!(
                "load {} has a non-finite power",
                self.loads[k].name
            )));
        }
        let n = self.parent.len();
        let off = self.tree_offset;
        // Squared inverse bases: the convergence check compares squares (no sqrt per phase).
        let inv_base2: Vec<f64> = self.base_v_ln[off..]
            .iter()
            .map(|b| 1.0 / (b * b))
            .collect();
        let mut v: Vec<V3> = vec![self.v_th; n];
        let mut cur: Vec<V3> = vec![V3::zeros(); n];
        let mut iterations = 0;
        let mut last = f64::INFINITY;
        loop {
            if iterations >= opts.max_iterations {
                return Err(FeederError::NoConvergence {
                    iterations,
                    mismatch_pu: last,
                    tolerance_pu: opts.tolerance_pu,
                });
            }
            iterations += 1;
            cur.fill(V3::zeros());
            self.load_currents(snap, &v, &mut cur);
            for t in (1..n).rev() {
                let i = cur[t];
                cur[self.parent[t]] += i;
            }
            // Squared until the end of the sweep.
            let mut dmax = 0.0f64;
            let v0 = self.v_th - self.z_th * cur[0];
            dmax = dmax.max(max_abs2(&(v0 - v[0])) * inv_base2[0]);
            v[0] = v0;
            for t in 1..n {
                let vn = v[self.parent[t]] - self.z_up[t] * cur[t];
                let d = max_abs2(&(vn - v[t])) * inv_base2[t];
                if d > dmax {
                    dmax = d;
                }
                v[t] = vn;
            }
            let dmax = dmax.sqrt();
            if !dmax.is_finite() {
                return Err(FeederError::NoConvergence {
                    iterations,
                    mismatch_pu: dmax,
                    tolerance_pu: opts.tolerance_pu,
                });
            }
            last = dmax;
            if dmax <= opts.tolerance_pu {
                break;
            }
        }
        Ok(self.results(snap, v, iterations))
    }

    fn results(&self, snap: &LoadSnapshot, v: Vec<V3>, iterations: usize) -> Solution {
        let n = v.len();
        // Currents consistent with the final voltages.
        let mut cur = vec![V3::zeros(); n];
        self.load_currents(snap, &v, &mut cur);
        let mut load_kva = C64::new(0.0, 0.0);
        for t in 0..n {
            // Load (and shunt) power at each bus.
            let s: C64 = (0..3).map(|p| v[t][p] * cur[t][p].conj()).sum();
            load_kva += s / 1e3;
        }
        for t in (1..n).rev() {
            let i = cur[t];
            cur[self.parent[t]] += i;
        }
        let mut line_losses_kw = 0.0;
        for (i, z) in cur.iter().zip(&self.z_up).skip(1) {
            let s: C64 = (i.adjoint() * z * i)[(0, 0)];
            line_losses_kw += s.re / 1e3;
        }
        let line_current_a = self
            .lines
            .iter()
            .map(|(_, t, fwd)| {
                let i = if *fwd { cur[*t] } else { -cur[*t] };
                [i[0], i[1], i[2]]
            })
            .collect();
        let i_lv = cur[0];
        let (transformer, i_src, v_hv) = match &self.transformer {
            Some(tr) => {
                let s_lv: [C64; 3] = std::array::from_fn(|p| v[0][p] * i_lv[p].conj() / 1e3);
                let i2: f64 = i_lv.iter().map(|i| i.norm_sqr()).sum();
                let s_loss = tr.z_ohm * i2 / 1e3;
                let s_hv = s_lv.iter().copied().sum::<C64>() + s_loss;
                let sq = to_seq(&i_lv);
                let i_hv_seq = V3::new(
                    if tr.hv_delta {
                        C64::new(0.0, 0.0)
                    } else {
                        sq[0] * tr.ratio
                    },
                    sq[1] * tr.shift.conj() * tr.ratio,
                    sq[2] * tr.shift * tr.ratio,
                );
                let i_hv = from_seq(&i_hv_seq);
                let v_hv = self.v_src - self.z_src * i_hv;
                (
                    Some(TransformerFlow {
                        name: tr.name.clone(),
                        s_lv_kva: s_lv,
                        s_hv_kva: s_hv,
                        losses_kw: s_loss.re,
                    }),
                    i_hv,
                    Some(v_hv),
                )
            }
            None => (None, i_lv, None),
        };
        let source_kva: C64 = (0..3).map(|p| self.v_src[p] * i_src[p].conj()).sum::<C64>() / 1e3;
        let mut v_v: Vec<[C64; 3]> = Vec::with_capacity(n + self.tree_offset);
        if let Some(h) = v_hv {
            v_v.push([h[0], h[1], h[2]]);
        }
        v_v.extend(v.iter().map(|x| [x[0], x[1], x[2]]));
        let vm_pu = v_v
            .iter()
            .zip(&self.base_v_ln)
            .map(|(x, b)| std::array::from_fn(|p| x[p].norm() / b))
            .collect();
        let va_deg = v_v
            .iter()
            .map(|x| std::array::from_fn(|p| x[p].arg().to_degrees()))
            .collect();
        Solution {
            v_v,
            vm_pu,
            va_deg,
            line_current_a,
            line_losses_kw,
            transformer,
            source_kva,
            load_kva,
            iterations,
        }
    }
}
