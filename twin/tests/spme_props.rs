//! Invariants of the SPMe cell (proptest): concentrations stay within
//! (0, c_max) and the electrolyte positive for bounded currents inside the
//! voltage window; lithium in the particles is conserved (no side reaction)
//! and lithium in the electrolyte too; stepping is deterministic; bad
//! parameter files are errors naming the key, never panics.

use std::path::PathBuf;

use proptest::prelude::*;
use twin::battery::spme::{load_spme_params, parse_spme_params, SpmeCell, SpmeParams};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn params(file: &str) -> SpmeParams {
    load_spme_params(&root().join("params").join(file)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn concentrations_bounded_and_lithium_conserved(
        lfp in any::<bool>(),
        soc0 in 0.05..=0.95f64,
        steps in prop::collection::vec((-2.0..2.0f64, 0.05..=1.0f64), 1..400),
    ) {
        let p = if lfp { params("prada2013.toml") } else { params("chen2020.toml") };
        let c_rate = p.nominal_capacity_ah;
        let mut cell = SpmeCell::new(&p, soc0, 25.0).unwrap();
        let m = cell.model().clone();
        let li_s0 = m.particle_lithium_mol(cell.state());
        let li_e0 = m.electrolyte_lithium_mol(cell.state());
        let (vmin, vmax) = (p.voltage_min_v, p.voltage_max_v);
        for (c, dt) in steps {
            // A BMS checking every second rests the cell outside its voltage
            // window (the model does not clamp concentrations: it is the
            // cut-off that keeps them physical, as in PyBaMM).
            let v = cell.output().voltage_v;
            let i = if (v <= vmin && c > 0.0) || (v >= vmax && c < 0.0) { 0.0 } else { c * c_rate };
            let o = cell.step_current(i, dt);
            prop_assert!(o.voltage_v.is_finite() && o.temperature_c.is_finite(), "{o:?}");
            prop_assert!((0.0..=1.0).contains(&o.soc));
            let st = cell.state();
            for (cs, cmax) in [
                (&st.c_n, p.negative.max_concentration_mol_m3),
                (&st.c_p, p.positive.max_concentration_mol_m3),
            ] {
                for &x in cs.iter() {
                    prop_assert!(x > 0.0 && x < cmax, "c = {x} outside (0, {cmax})");
                }
            }
            for &x in &st.c_e {
                prop_assert!(x > 0.0, "c_e = {x}");
            }
            let li_s = m.particle_lithium_mol(st);
            let li_e = m.electrolyte_lithium_mol(st);
            prop_assert!((li_s - li_s0).abs() <= 1e-10 * li_s0, "particles {li_s} vs {li_s0}");
            prop_assert!((li_e - li_e0).abs() <= 1e-10 * li_e0, "electrolyte {li_e} vs {li_e0}");
        }
    }

    #[test]
    fn stepping_is_deterministic(
        steps in prop::collection::vec((-5.0..5.0f64, 0.1..10.0f64), 1..30),
    ) {
        let p = params("chen2020.toml");
        let mut a = SpmeCell::new(&p, 0.5, 25.0).unwrap();
        let mut b = SpmeCell::new(&p, 0.5, 25.0).unwrap();
        for (i, dt) in steps {
            prop_assert_eq!(a.step_current(i, dt), b.step_current(i, dt));
        }
        prop_assert_eq!(a.state(), b.state());
    }

    #[test]
    fn garbage_in_a_parameter_file_is_an_error_not_a_panic(
        key in prop::sample::select(vec![
            "thickness_m", "porosity", "particle_radius_m", "max_concentration_mol_m3",
            "diffusivity_m2_s", "exchange_current_ref", "conductivity_s_m",
        ]),
        value in prop_oneof![Just(-1.0f64), Just(0.0), Just(1e300), Just(2.0)],
    ) {
        let path = root().join("params/chen2020.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Replace the first occurrence (in [negative]).
        let line = text.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap();
        let bad = text.replacen(line, &format!("{key} = {value:?}"), 1);
        match parse_spme_params(&path, &bad) {
            Ok(p) => {
                // Accepted values must still give a working cell or a clear error.
                if let Ok(mut c) = SpmeCell::new(&p, 0.5, 25.0) {
                    let o = c.step_current(1.0, 1.0);
                    prop_assert!(o.soc.is_finite());
                }
            }
            Err(e) => prop_assert!(e.to_string().contains(key), "{e}"),
        }
    }
}

#[test]
fn power_steps_deliver_the_power() {
    let p = params("chen2020.toml");
    let mut cell = SpmeCell::new(&p, 0.8, 25.0).unwrap();
    for pw in [10.0, -8.0, 0.0, 20.0] {
        let o = cell.step_power(pw, 1.0).unwrap();
        assert!((o.voltage_v * o.current_a - pw).abs() < 1e-6, "{o:?}");
    }
    let e = cell.step_power(1e6, 1.0).unwrap_err();
    assert!(e.max_w > 0.0 && e.max_w < 1e6, "{e:?}");
}

#[test]
fn unknown_keys_and_bad_functions_are_named() {
    let path = root().join("params/chen2020.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let e = parse_spme_params(&path, &text.replace("porosity = 0.25", "porosty = 0.25"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("porosty") && e.contains("chen2020.toml"), "{e}");
    let e = parse_spme_params(
        &path,
        &text.replace("\"graphite_chen2020_ocp\"", "\"graphite\""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("negative.ocp_v") && e.contains("graphite_chen2020_ocp"),
        "{e}"
    );
}
