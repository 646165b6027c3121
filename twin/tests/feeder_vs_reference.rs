//! twin::feeder against pandapower's runpp_3ph on the same networks
//! (tools/reference/pandapower_feeders.py writes both the .dss files under
//! twin/params/feeders/ and the results under twin/tests/reference/feeder/).
//!
//! Targets: per-phase voltage magnitude within 1e-4 p.u. at every bus
//! (including the HV source bus), transformer power within 0.1 % (per phase
//! at the LV terminals, of that phase's apparent power; total at the HV
//! terminals), and angles within 0.01°.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use twin::feeder::{parse_file, Network};

const VM_TOL_PU: f64 = 1e-4;
const S_TOL_REL: f64 = 1e-3;
const VA_TOL_DEG: f64 = 1e-2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
        .collect()
}

fn f(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

fn wrap_deg(d: f64) -> f64 {
    (d + 180.0).rem_euclid(360.0) - 180.0
}

/// (max |ΔV| p.u., max Δangle °, max transformer relative error).
fn compare(name: &str) -> (f64, f64, f64) {
    let dss = root().join(format!("params/feeders/{name}/master.dss"));
    let model = parse_file(&dss).unwrap_or_else(|e| panic!("{e}"));
    let net = Network::from_dss(&model).unwrap_or_else(|e| panic!("{e}"));
    let sol = net
        .solve(&net.base_snapshot())
        .unwrap_or_else(|e| panic!("{e}"));
    let index: HashMap<&str, usize> = net
        .bus_names()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let reference = rows(&root().join(format!("tests/reference/feeder/{name}_bus.csv")));
    assert_eq!(reference.len(), net.bus_names().len(), "{name}: bus count");
    let (mut dv, mut da) = (0.0f64, 0.0f64);
    let mut worst = String::new();
    for r in &reference {
        let b = *index
            .get(r[0].as_str())
            .unwrap_or_else(|| panic!("{name}: bus {} missing in the network", r[0]));
        for p in 0..3 {
            let d = (sol.vm_pu[b][p] - f(&r[1 + 2 * p])).abs();
            if d > dv {
                dv = d;
                worst = format!("bus {} phase {}", r[0], p + 1);
            }
            da = da.max(wrap_deg(sol.va_deg[b][p] - f(&r[2 + 2 * p])).abs());
        }
    }
    let tr = sol.transformer.as_ref().expect("a transformer");
    let trows = rows(&root().join(format!("tests/reference/feeder/{name}_trafo.csv")));
    let mut ds = 0.0f64;
    for (p, r) in trows.iter().take(3).enumerate() {
        let s = tr.s_lv_kva[p];
        let (pr, qr) = (f(&r[1]), f(&r[2]));
        let mag = pr.hypot(qr);
        ds = ds.max((s.re - pr).abs() / mag).max((s.im - qr).abs() / mag);
    }
    let (pr, qr) = (f(&trows[3][1]), f(&trows[3][2]));
    let mag = pr.hypot(qr);
    ds = ds
        .max((tr.s_hv_kva.re - pr).abs() / mag)
        .max((tr.s_hv_kva.im - qr).abs() / mag);
    eprintln!(
        "{name}: max |ΔV| {dv:.3e} p.u. ({worst}), max Δangle {da:.3e}°, transformer power max rel. error {ds:.3e}, {} sweeps",
        sol.iterations
    );
    (dv, da, ds)
}

fn check(name: &str) {
    let (dv, da, ds) = compare(name);
    assert!(
        dv <= VM_TOL_PU,
        "{name}: voltage magnitude off by {dv:.3e} p.u."
    );
    assert!(
        ds <= S_TOL_REL,
        "{name}: transformer power off by {:.4} %",
        ds * 100.0
    );
    assert!(da <= VA_TOL_DEG, "{name}: angle off by {da:.3e}°");
}

#[test]
fn ieee_european_lv_matches_pandapower() {
    check("ieee_european_lv");
}

#[test]
fn kerber_landnetz_freileitung_1_matches_pandapower() {
    check("kerber_landnetz_freileitung_1");
}
