//! SPMe packs: `model = "spme"` in a pack file, series × parallel cells with
//! seeded spread, the parallel current split conserving the pack current.

use std::path::PathBuf;

use twin::battery::spme::SpmePack;
use twin::battery::{load_battery_pack_params, load_pack_params, BatteryPackParams};

fn params_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params")
}

fn spme_pack(file: &str) -> twin::battery::spme::SpmePackParams {
    match load_battery_pack_params(&params_dir().join(file)).unwrap() {
        BatteryPackParams::Spme(p) => p,
        BatteryPackParams::Ecm(_) => panic!("{file} is an SPMe pack"),
    }
}

#[test]
fn parallel_cells_share_the_pack_current() {
    let p = spme_pack("chen2020_4s3p.toml");
    assert_eq!((p.series, p.parallel), (4, 3));
    let mut pack = SpmePack::new(&p, 0.9, 25.0, 7).unwrap();
    let i = 15.0; // 1C for 3 × 5 Ah
    let mut last_soc = 1.0;
    for _ in 0..600 {
        let o = pack.step_current(i, 1.0);
        for s in 0..4 {
            let group = &pack.cells()[s * 3..(s + 1) * 3];
            let sum: f64 = group.iter().map(|c| c.output().current_a).sum();
            assert!((sum - i).abs() < 1e-9, "group {s}: {sum} A");
            // Parallel cells end the step at nearly the same voltage.
            let v: Vec<f64> = group.iter().map(|c| c.output().voltage_v).collect();
            let spread = v.iter().cloned().fold(f64::MIN, f64::max)
                - v.iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread < 1e-4, "group {s} voltages {v:?}");
        }
        assert!(o.soc_mean < last_soc);
        last_soc = o.soc_mean;
        assert!(o.soc_min <= o.soc_mean && o.soc_mean <= o.soc_max);
        assert!(o.voltage_v > 4.0 * 3.0 && o.voltage_v < 4.0 * 4.2, "{o:?}");
    }
    let o = pack.output();
    // 600 s at 1C: about a sixth of the charge.
    assert!((0.9 - o.soc_mean - 600.0 / 3600.0).abs() < 0.02, "{o:?}");
    assert!(o.energy_discharged_wh > 0.0 && o.energy_charged_wh == 0.0);
}

#[test]
fn spread_is_reproducible_by_seed() {
    let p = spme_pack("chen2020_4s3p.toml");
    let mut a = SpmePack::new(&p, 0.5, 25.0, 42).unwrap();
    let mut b = SpmePack::new(&p, 0.5, 25.0, 42).unwrap();
    let mut c = SpmePack::new(&p, 0.5, 25.0, 43).unwrap();
    for k in 0..50 {
        let i = if k % 10 < 6 { 10.0 } else { -8.0 };
        let (oa, ob, oc) = (
            a.step_current(i, 1.0),
            b.step_current(i, 1.0),
            c.step_current(i, 1.0),
        );
        assert_eq!(oa, ob);
        if k == 49 {
            assert_ne!(oa.voltage_v, oc.voltage_v);
        }
    }
}

#[test]
fn sixteen_cell_pack_loads_and_heats_up() {
    let p = spme_pack("chen2020_16s.toml");
    assert_eq!((p.series, p.parallel), (16, 1));
    let mut pack = SpmePack::new(&p, 1.0, 25.0, 1).unwrap();
    let mut o = pack.output();
    for _ in 0..(600 * 100) {
        o = pack.step_current(5.0, 0.01);
    }
    assert!(o.temperature_max_c > 25.1, "{o:?}");
    assert!(o.voltage_v > 16.0 * 3.5, "{o:?}");
}

#[test]
fn model_mismatch_between_pack_and_cell_is_named() {
    let e = load_pack_params(&params_dir().join("chen2020_16s.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("load_battery_pack_params"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.toml");
    std::fs::write(
        &f,
        format!(
            "model = \"spme\"\nname = \"x\"\ncell = \"{}\"\nseries = 2\nparallel = 1\n",
            params_dir().join("lfp_cell_100ah.toml").display()
        ),
    )
    .unwrap();
    let e = load_battery_pack_params(&f).unwrap_err().to_string();
    assert!(e.contains("cell") && e.contains("\"ecm\""), "{e}");
    // ECM packs still load as before.
    assert!(load_pack_params(&params_dir().join("lfp_home_16s.toml")).is_ok());
}
