//! twin::feeder: validation errors a user can act on, redirect from disk,
//! load model semantics, a hand-checked two-bus case, determinism.

use std::path::Path;

use twin::feeder::{parse_file, parse_str, DssModel, FeederError, Network, SolveOptions};

fn parse(text: &str) -> Result<DssModel, FeederError> {
    let mut none =
        |p: &Path| -> Result<String, String> { Err(format!("{}: not here", p.display())) };
    parse_str(text, Path::new("t.dss"), &mut none)
}

const HEAD: &str = "Clear\n\
    New Circuit.t basekv=11 pu=1 r1=0 x1=0 r0=0 x0=0\n\
    New Transformer.tr buses=[sourcebus lv] conns=[delta wye] kvs=[11 0.4] kvas=[400 400] %rs=[0.5 0.5] xhl=4\n\
    New LineCode.lc nphases=3 r1=0.2 x1=0.08 r0=0.8 x0=0.32 c1=0 c0=0 units=km\n\
    Set voltagebases=[11 0.4]\nCalcVoltageBases\n";

fn net(body: &str) -> Result<Network, FeederError> {
    Network::from_dss(&parse(&format!("{HEAD}{body}"))?)
}

#[test]
fn topology_errors_name_the_line() {
    let e = net("New Line.a bus1=lv bus2=x linecode=lc length=0.1\nNew Line.b bus1=x bus2=y linecode=lc length=0.1\nNew Line.c bus1=y bus2=lv linecode=lc length=0.1\n")
        .unwrap_err()
        .to_string();
    // Breadth-first from the transformer: `a` and `c` come first, `b` closes the loop.
    assert!(
        e.contains("Line.b") && e.contains("loop") && e.contains("t.dss:8"),
        "{e}"
    );
    let e = net("New Line.a bus1=lv bus2=x linecode=lc length=0.1\nNew Line.b bus1=p bus2=q linecode=lc length=0.1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Line.b") && e.contains("not connected"), "{e}");
    let e = net("New Line.a bus1=lv bus2=x linecode=lc length=0.1\nNew Load.h bus1=nowhere.1 phases=1 kv=0.23 kw=1 kvar=0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Load.h") && e.contains("nowhere"), "{e}");
    let e = net(
        "New Transformer.t2 buses=[sourcebus lv2] conns=[delta wye] kvs=[11 0.4] kvas=[400 400]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tr, t2"), "{e}");
    let e = net("New Line.a bus1=sourcebus bus2=x linecode=lc length=0.1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("HV source bus"), "{e}");
}

#[test]
fn unsupported_things_are_named_with_file_and_line() {
    for (body, what) in [
        ("New Capacitor.c bus1=lv kvar=10\n", "capacitor"),
        (
            "New Line.a bus1=lv bus2=x linecode=lc length=0.1 switch=y\n",
            "switch",
        ),
        (
            "New Load.h bus1=lv.1 phases=1 kv=0.23 kw=1 model=2\n",
            "model=2",
        ),
        (
            "New Load.h bus1=lv.1.2 phases=1 kv=0.4 kw=1\n",
            "phase-to-phase",
        ),
        (
            "New Line.a bus1=lv.1.3.2 bus2=x linecode=lc length=0.1\n",
            "reordering",
        ),
        ("New LineCode.z nphases=3 r1=1 x1=1 units=km\n", "r0"),
        (
            "New Line.a bus1=lv bus2=x linecode=nope length=0.1\n",
            "nope",
        ),
        ("Set mode=daily\n", "mode"),
        ("Solve mode=direct\nShow voltages\n", "show"),
        (
            "New Transformer.tr2 buses=[a b] %noloadloss=0.1\n",
            "magnetising",
        ),
        (
            "New Load.h bus1=lv.1 phases=1 kv=0.23 kw=1 pf=abc\n",
            "not a number",
        ),
    ] {
        let e = parse(&format!("{HEAD}{body}")).unwrap_err().to_string();
        assert!(e.starts_with("t.dss:"), "{e}");
        assert!(e.to_lowercase().contains(what), "{what}: {e}");
    }
}

#[test]
fn redirect_resolves_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("master.dss"),
        format!("{HEAD}Redirect sub/lines.dss\nBuscoords coords.csv\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sub/lines.dss"),
        "New Line.a bus1=lv bus2=x linecode=lc length=0.1\nRedirect loads.dss\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sub/loads.dss"),
        "New Load.h bus1=x.2 phases=1 kv=0.23 kw=3 pf=0.95\n",
    )
    .unwrap();
    let m = parse_file(&dir.path().join("master.dss")).unwrap();
    assert_eq!(m.lines.len(), 1);
    assert_eq!(m.loads.len(), 1);
    assert!(
        m.notes.iter().any(|n| n.contains("Buscoords")),
        "{:?}",
        m.notes
    );
    assert!(m.loads[0].origin.file.ends_with("loads.dss"));
    std::fs::write(
        dir.path().join("sub/loads.dss"),
        "New Load.h bus1=x.2 phases=1 kv=0.23 kw=3 bogus=1\n",
    )
    .unwrap();
    let e = parse_file(&dir.path().join("master.dss"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("loads.dss:1") && e.contains("bogus"), "{e}");
}

/// One 3-phase load at the end of one line, ideal transformer (no
/// impedance): balanced, so V_load solves V = V0 - Z1 * conj(S/V) per phase.
#[test]
fn balanced_two_bus_case_matches_the_hand_solution() {
    let m = parse(
        "Clear\nNew Circuit.t basekv=0.4 pu=1 r1=0 x1=0 r0=0 x0=0\n\
         New LineCode.lc nphases=3 r1=0.2 x1=0.08 r0=0.8 x0=0.32 c1=0 c0=0 units=km\n\
         New Line.a bus1=sourcebus bus2=x linecode=lc length=500 units=m\n\
         New Load.h bus1=x phases=3 kv=0.4 kw=60 kvar=20\nSet voltagebases=[0.4]\nCalcv\n",
    )
    .unwrap();
    let net = Network::from_dss(&m).unwrap();
    let sol = net.solve(&net.base_snapshot()).unwrap();
    let v0 = 400.0 / 3f64.sqrt();
    let z = twin::feeder::C64::new(0.1, 0.04);
    let s = twin::feeder::C64::new(20e3, 20e3 / 3.0);
    let mut v = twin::feeder::C64::new(v0, 0.0);
    for _ in 0..200 {
        v = twin::feeder::C64::new(v0, 0.0) - z * (s / v).conj();
    }
    let x = net.bus_names().iter().position(|b| b == "x").unwrap();
    for p in 0..3 {
        assert!(
            (sol.vm_pu[x][p] - v.norm() / v0).abs() < 1e-9,
            "{} vs {}",
            sol.vm_pu[x][p],
            v.norm() / v0
        );
    }
    assert!((sol.va_deg[x][0] - v.arg().to_degrees()).abs() < 1e-7);
    let i = (s / v).conj();
    assert!((sol.line_losses_kw - 3.0 * i.norm_sqr() * 0.1 / 1e3).abs() < 1e-9);
    assert!((sol.line_current_a[0][0].norm() - i.norm()).abs() < 1e-6);
}

#[test]
fn below_vminpu_a_load_is_a_constant_impedance() {
    let body = "New Line.a bus1=lv bus2=x linecode=lc length=2 units=km\n\
                New Load.h bus1=x.1 phases=1 kv=0.23094 kw=30 kvar=0 vminpu=0.95\n";
    let n = net(body).unwrap();
    let sol = n.solve(&n.base_snapshot()).unwrap();
    let x = n.bus_names().iter().position(|b| b == "x").unwrap();
    let vpu = sol.vm_pu[x][0];
    assert!(vpu < 0.95, "{vpu}");
    // Constant impedance sized at vminpu: P = 30 kW * (V / 0.95)^2.
    let expect = 30.0 * (vpu / 0.95).powi(2);
    assert!(
        (sol.load_kva.re - expect).abs() < 1e-6 * expect,
        "{} vs {expect}",
        sol.load_kva.re
    );
}

#[test]
fn non_convergence_is_an_error_not_a_panic() {
    let body = "New Line.a bus1=lv bus2=x linecode=lc length=5 units=km\n\
                New Load.h bus1=x.1 phases=1 kv=0.23094 kw=500 kvar=0 vminpu=0.001 vmaxpu=10\n";
    let n = net(body).unwrap();
    let e = n.solve(&n.base_snapshot()).unwrap_err();
    assert!(matches!(e, FeederError::NoConvergence { .. }), "{e}");
    let few = SolveOptions {
        tolerance_pu: 1e-10,
        max_iterations: 1,
    };
    let body = "New Line.a bus1=lv bus2=x linecode=lc length=0.1 units=km\n\
                New Load.h bus1=x.1 phases=1 kv=0.23094 kw=5\n";
    let n = net(body).unwrap();
    assert!(matches!(
        n.solve_with(&n.base_snapshot(), &few),
        Err(FeederError::NoConvergence { iterations: 1, .. })
    ));
    let mut wrong = n.base_snapshot();
    wrong.kw.push(1.0);
    assert!(matches!(n.solve(&wrong), Err(FeederError::Snapshot(_))));
}

#[test]
fn four_wire_kron_equals_the_sequence_form_of_the_same_line() {
    // Phases: self zs, mutual zm; neutral: self zn, mutual to phases zpn.
    // Kron: zs' = zs - zpn²/zn, zm' = zm - zpn²/zn, then Z1 = zs' - zm',
    // Z0 = zs' + 2 zm'.
    let (zs, zm, zn, zpn) = ((0.3, 0.8), (0.05, 0.7), (0.6, 0.8), (0.05, 0.72));
    let code = format!(
        "New LineCode.k4 nphases=4 kron=yes units=km rmatrix=[{a}|{b} {a}|{b} {b} {a}|{d} {d} {d} {c}] xmatrix=[{e}|{f} {e}|{f} {f} {e}|{h} {h} {h} {g}] cmatrix=[0|0 0|0 0 0|0 0 0 0]\n",
        a = zs.0, b = zm.0, c = zn.0, d = zpn.0, e = zs.1, f = zm.1, g = zn.1, h = zpn.1
    );
    let c = |x: (f64, f64)| twin::feeder::C64::new(x.0, x.1);
    let k = c(zpn) * c(zpn) / c(zn);
    let (s2, m2) = (c(zs) - k, c(zm) - k);
    let (z1, z0) = (s2 - m2, s2 + m2 * 2.0);
    let seq = format!(
        "New LineCode.k4 nphases=3 units=km r1={} x1={} r0={} x0={} c1=0 c0=0\n",
        z1.re, z1.im, z0.re, z0.im
    );
    let body = "New Line.a bus1=lv bus2=x linecode=k4 length=0.3 units=km\n\
                New Load.h bus1=x.2 phases=1 kv=0.23094 kw=8 kvar=2\n";
    let a = net(&format!("{code}{body}")).unwrap();
    let b = net(&format!("{seq}{body}")).unwrap();
    let (sa, sb) = (
        a.solve(&a.base_snapshot()).unwrap(),
        b.solve(&b.base_snapshot()).unwrap(),
    );
    for (x, y) in sa.vm_pu.iter().zip(&sb.vm_pu) {
        for p in 0..3 {
            assert!((x[p] - y[p]).abs() < 1e-12);
        }
    }
}

#[test]
fn a_time_series_reuses_the_network_and_is_deterministic() {
    let dss =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("params/feeders/ieee_european_lv/master.dss");
    let n = Network::from_dss(&parse_file(&dss).unwrap()).unwrap();
    let base = n.base_snapshot();
    let first = n.solve(&base).unwrap();
    let mut heavier = base.clone();
    heavier.kw.iter_mut().for_each(|p| *p += 2.0);
    let h = n.solve(&heavier).unwrap();
    let again = n.solve(&base).unwrap();
    assert_eq!(first, again);
    assert!(
        h.transformer.as_ref().unwrap().s_hv_kva.re
            > first.transformer.as_ref().unwrap().s_hv_kva.re + 100.0
    );
    assert_eq!(n.bus_names().len(), 907);
    assert_eq!(n.load_names().count(), 55);
}
