//! The `maslow` binary end to end: what a user types, what they get back.

#[path = "common/cli.rs"]
mod common;

use common::{maslow, read_csv, repo, stderr, write};
use std::path::Path;

#[test]
fn cell_runs_a_discharge_to_the_cut_off_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write(dir.path(), "cc.csv", "time_s,current_a\n0,100\n7200,100\n");
    let out = dir.path().join("cell.csv");
    let o = maslow(&[
        "twin",
        "cell",
        "--params",
        &repo("twin/params/ecm_example.toml"),
        "--profile",
        profile.to_str().unwrap(),
        "--soc0",
        "0.9",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lower voltage cut-off"),
        "{}",
        stderr(&o)
    );
    let (h, rows) = read_csv(&out);
    assert_eq!(
        &h[..5],
        &["time_s", "voltage_v", "soc", "temperature_c", "current_a"]
    );
    let last = rows.last().unwrap();
    assert!(last[0] < 7200.0, "stopped before the profile ended");
    assert!(
        last[2] < 0.2 && last[2] >= 0.0,
        "SOC at cut-off {}",
        last[2]
    );
    assert!(rows.iter().all(|r| (r[4] - 100.0).abs() < 1e-9));
}

#[test]
fn cell_takes_a_power_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write(
        dir.path(),
        "p.csv",
        "time_s,power_w\n0,10\n600,-5\n1200,0\n",
    );
    let out = dir.path().join("cell.csv");
    let o = maslow(&[
        "twin",
        "cell",
        "--params",
        &repo("twin/params/ecm_example.toml"),
        "--profile",
        profile.to_str().unwrap(),
        "--soc0",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, rows) = read_csv(&out);
    let p = rows.iter().find(|r| r[0] == 300.0).unwrap();
    assert!((p[1] * p[4] - 10.0).abs() < 1e-6, "V·I = {}", p[1] * p[4]);
}

#[test]
fn pv_writes_the_mpp_table() {
    let dir = tempfile::tempdir().unwrap();
    let weather = write(
        dir.path(),
        "w.csv",
        "time_s,poa_w_m2,cell_temp_c\n0,0,10\n60,500,30\n120,1000,25\n",
    );
    let out = dir.path().join("pv.csv");
    let o = maslow(&[
        "twin",
        "pv",
        "--module",
        &repo("twin/params/pv/modules/Canadian_Solar_Inc__CS1U_400MS.toml"),
        "--weather",
        weather.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out);
    assert_eq!(
        h,
        ["time_s", "p_mp_w", "v_mp_v", "i_mp_a", "v_oc_v", "i_sc_a"]
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1], 0.0, "no light, no power");
    // At STC a 400 W module makes about its nameplate.
    assert!(
        (rows[2][1] - 400.0).abs() < 8.0,
        "p_mp at STC {}",
        rows[2][1]
    );
    assert!(rows[1][1] > 150.0 && rows[1][1] < rows[2][1]);
}

#[test]
fn house_writes_a_day_of_signals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("house.csv");
    let o = maslow(&[
        "twin",
        "house",
        "--hours",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("real time"), "{}", stderr(&o));
    let (h, rows) = read_csv(&out);
    assert_eq!(h[0], "time_s");
    for want in [
        "soc",
        "bus_voltage_v",
        "pv_power_w",
        "grid_import_w",
        "tariff",
    ] {
        assert!(h.iter().any(|c| c == want), "missing column {want}");
    }
    assert_eq!(rows.len(), 3 * 60 + 1);
    // Same seed, same file.
    let out2 = dir.path().join("house2.csv");
    let o = maslow(&[
        "twin",
        "house",
        "--hours",
        "3",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
}

/// Runs a command expected to fail on bad input: exit code 2, one error line
/// containing `want`, no panic, no output file.
fn expect_bad_input(args: &[&str], out: &Path, want: &str) {
    let o = maslow(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: expected `{want}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        !out.exists(),
        "no output file may be left: {}",
        out.display()
    );
    if let Some(dir) = out.parent() {
        let partial = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains("partial"));
        assert!(!partial, "no partial file may be left");
    }
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.csv");
    let o = out.to_str().unwrap();
    let params = repo("twin/params/ecm_example.toml");
    let cell = |profile: &Path| -> Vec<String> {
        [
            "twin",
            "cell",
            "--params",
            &params,
            "--profile",
            profile.to_str().unwrap(),
            "--out",
            o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: Vec<String>, want: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_bad_input(&refs, &out, want);
    };

    let missing = write(d, "missing.csv", "time_s,voltage_v\n0,1\n1,2\n");
    run(
        cell(&missing),
        "needs one of the columns `current_a` or `power_w`",
    );
    let backwards = write(d, "back.csv", "time_s,current_a\n0,1\n10,1\n5,1\n");
    run(
        cell(&backwards),
        "back.csv: line 4: `time_s` must increase strictly",
    );
    let nan = write(d, "nan.csv", "time_s,current_a\n0,1\n10,NaN\n");
    run(
        cell(&nan),
        "nan.csv: line 3: column `current_a`: `NaN` is not a finite number",
    );
    let garbage = write(d, "garbage.csv", "time_s,current_a\n0,1\n10,one\n");
    run(cell(&garbage), "garbage.csv: line 3");
    run(
        cell(&d.join("nowhere.csv")),
        "nowhere.csv: cannot read the file",
    );

    let bad_param = write(
        d,
        "cell.toml",
        &std::fs::read_to_string(&params)
            .unwrap()
            .replacen("\n", "\nflux_capacitance_f = 1.21\n", 1)
            .replace("tables/", &format!("{}/", repo("twin/params/tables"))),
    );
    let profile = write(d, "ok.csv", "time_s,current_a\n0,1\n10,1\n");
    run(
        vec![
            "twin".into(),
            "cell".into(),
            "--params".into(),
            bad_param.to_string_lossy().into(),
            "--profile".into(),
            profile.to_string_lossy().into(),
            "--out".into(),
            o.into(),
        ],
        "unknown field `flux_capacitance_f`",
    );
    let mut soc = cell(&profile);
    soc.extend(["--soc0".into(), "1.5".into()]);
    run(soc, "--soc0 must be within 0..=1");

    let weather = write(d, "w.csv", "time_s,poa_w_m2\n0,100\n");
    run(
        vec![
            "twin".into(),
            "pv".into(),
            "--module".into(),
            repo("twin/params/pv/modules/Canadian_Solar_Inc__CS1U_400MS.toml"),
            "--weather".into(),
            weather.to_string_lossy().into(),
            "--out".into(),
            o.into(),
        ],
        "missing column `cell_temp_c`",
    );

    let house = write(d, "house.toml", "name = \"x\"\n");
    run(
        vec![
            "twin".into(),
            "house".into(),
            "--config".into(),
            house.to_string_lossy().into(),
            "--out".into(),
            o.into(),
        ],
        "house.toml",
    );
}

#[test]
fn house_runs_paced_in_real_time_and_reports_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rt.csv");
    // 0.0003 h = 1.08 s of plant time at a 10 ms step: 108 paced steps.
    let o = maslow(&[
        "twin",
        "house",
        "--hours",
        "0.0003",
        "--step-ms",
        "10",
        "--sample-s",
        "0.1",
        "--real-time",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("real time: period 10 ms, 108 steps, jitter p50"),
        "{err}"
    );
    assert!(err.contains("overruns"), "{err}");
    let (_, rows) = read_csv(&out);
    assert_eq!(rows.len(), 11, "0 .. 1.0 s every 0.1 s");
}

#[test]
fn house_runs_with_the_firmware_in_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loop.csv");
    let o = maslow(&[
        "twin",
        "house",
        "--hours",
        "2",
        "--controller",
        &repo("firmware/config/terrace.toml"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("firmware in the loop"), "{err}");
    let (_, rows) = read_csv(&out);
    assert_eq!(rows.len(), 2 * 60 + 1);
    // A broken controller file is bad input.
    let bad = write(dir.path(), "c.toml", "[assembly]\nsite_id = 1\n");
    expect_bad_input(
        &[
            "twin",
            "house",
            "--controller",
            bad.to_str().unwrap(),
            "--out",
            dir.path().join("x.csv").to_str().unwrap(),
        ],
        &dir.path().join("x.csv"),
        "c.toml",
    );
}

#[test]
fn cell_runs_the_spme_model_with_the_same_profile_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write(dir.path(), "cc.csv", "time_s,current_a\n0,5\n7200,5\n");
    let out = dir.path().join("cell.csv");
    let o = maslow(&[
        "twin",
        "cell",
        "--model",
        "spme",
        "--params",
        &repo("twin/params/chen2020_isothermal.toml"),
        "--profile",
        profile.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lower voltage cut-off (2.5 V)"),
        "{}",
        stderr(&o)
    );
    let (h, rows) = read_csv(&out);
    assert_eq!(
        &h[..5],
        &["time_s", "voltage_v", "soc", "temperature_c", "current_a"]
    );
    let last = rows.last().unwrap();
    // PyBaMM's SPMe reaches 2.5 V at 3594.6 s (twin/tests/reference/spme).
    assert!(
        (3590.0..3600.0).contains(&last[0]),
        "last sample at {}",
        last[0]
    );
    assert!(last[1] >= 2.5 && last[1] < 2.6, "{}", last[1]);

    // An ECM file with --model spme is refused with a message naming the key.
    let o = maslow(&[
        "twin",
        "cell",
        "--model",
        "spme",
        "--params",
        &repo("twin/params/ecm_example.toml"),
        "--profile",
        profile.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`model` key"), "{}", stderr(&o));
}

#[test]
fn house_runs_an_spme_pack_in_place_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("house.csv");
    let pack = repo("twin/params/chen2020_16s.toml");
    let o = maslow(&[
        "twin",
        "house",
        "--hours",
        "0.5",
        "--pack",
        &pack,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out);
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (v, soc) = (col("pack_voltage_v"), col("soc"));
    // 16 Chen2020 cells in series (58 V nominal), not the house's 16s LFP
    // pack (51 V): every row within the NMC window, 16 × 2.5..4.2 V.
    for r in &rows {
        assert!((40.0..=67.2).contains(&r[v]), "pack voltage {}", r[v]);
        assert!(r[v] > 55.0, "an NMC pack at mid charge: {}", r[v]);
        assert!((0.0..=1.0).contains(&r[soc]));
    }
    // The missing file is one clear line, exit code 2.
    let bad_out = dir.path().join("bad.csv");
    expect_bad_input(
        &[
            "twin",
            "house",
            "--hours",
            "0.1",
            "--pack",
            "no/such/pack.toml",
            "--out",
            bad_out.to_str().unwrap(),
        ],
        &bad_out,
        "--pack no/such/pack.toml",
    );
}
