//! `maslow twin feeder` end to end: one snapshot of the IEEE European LV
//! feeder, a loads CSV time series, and the errors a user sees.

#[path = "common/cli.rs"]
mod common;

use common::{maslow, read_csv, repo, stderr, write};

fn col(h: &[String], name: &str) -> usize {
    h.iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

const IEEE: &str = "twin/params/feeders/ieee_european_lv/master.dss";

#[test]
fn one_snapshot_matches_the_committed_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.csv");
    let o = maslow(&[
        "twin",
        "feeder",
        "--network",
        &repo(IEEE),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(h.len(), 1 + 8 + 907 * 6);
    // Bus 1 (LV busbar) and the transformer, from
    // twin/tests/reference/feeder/ieee_european_lv_{bus,trafo}.csv (pandapower).
    let r = &rows[0];
    assert!((r[col(&h, "vm_1_a_pu")] - 1.0489620163032483).abs() < 1e-4);
    assert!((r[col(&h, "vm_1_b_pu")] - 1.0494136029774508).abs() < 1e-4);
    assert!((r[col(&h, "va_1_a_deg")] + 30.136387987746946).abs() < 1e-2);
    assert!((r[col(&h, "trafo_p_b_kw")] - 35.22475830574214).abs() < 35.3e-3);
    assert!((r[col(&h, "trafo_p_hv_kw")] - 59.444888837246026).abs() < 59.5e-3);
}

#[test]
fn a_loads_csv_gives_one_snapshot_per_row() {
    let dir = tempfile::tempdir().unwrap();
    // LOAD1 is on phase a of bus 34.
    let loads = write(
        dir.path(),
        "loads.csv",
        "time_s,LOAD1_kw,load2_kw\n0,0.574,0.044\n60,5.574,0.044\n120,5.574,0.044\n",
    );
    let out = dir.path().join("v.csv");
    let o = maslow(&[
        "twin",
        "feeder",
        "--network",
        &repo(IEEE),
        "--loads",
        loads.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][0], 60.0);
    let pa = col(&h, "trafo_p_a_kw");
    let pb = col(&h, "trafo_p_b_kw");
    let extra = rows[1][pa] - rows[0][pa];
    assert!(extra > 5.0 && extra < 5.2, "phase a took {extra} kW more");
    assert!((rows[1][pb] - rows[0][pb]).abs() < 0.05);
    assert!(rows[1][1..] == rows[2][1..], "same loads, same solution");
    let v34 = col(&h, "vm_34_a_pu");
    assert!(rows[1][v34] < rows[0][v34] - 1e-3);
}

#[test]
fn bad_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.csv");
    let loads = write(dir.path(), "loads.csv", "time_s,nohouse_kw\n0,1\n");
    let o = maslow(&[
        "twin",
        "feeder",
        "--network",
        &repo(IEEE),
        "--loads",
        loads.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nohouse_kw"), "{}", stderr(&o));
    let dss = write(
        dir.path(),
        "net.dss",
        "Clear\nNew Circuit.x basekv=0.4\nNew Capacitor.c1 bus1=sourcebus kvar=10\n",
    );
    let o = maslow(&[
        "twin",
        "feeder",
        "--network",
        dss.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("net.dss:3") && e.contains("capacitor"), "{e}");
    assert!(!out.exists());
}
