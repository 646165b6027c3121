//! Fleet: scenario files, site agents at the fleet's plant step, the
//! lockstep run (server + shards through the in-memory queue).

use std::path::{Path, PathBuf};

use rigs::fleet::scenario::FleetScenario;
use rigs::fleet::site::Site;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn two_branches() -> FleetScenario {
    FleetScenario::load(&repo("rigs/fleets/two_branches.toml")).unwrap()
}

#[test]
fn site_timing_probe() {
    let sc = two_branches();
    let key = sc.server_key().verifying_key().to_bytes();
    let hs = sc.households(1);
    let mut site = Site::new(&sc, hs[0].clone(), key).unwrap();
    let t = std::time::Instant::now();
    let mut e = 0.0;
    for _ in 0..360 {
        e += site.step_minute().net_kw / 60.0;
    }
    eprintln!("6 h of one assembly house at {} ms: {:?}, {e:.2} kWh", sc.electrical_step_ms, t.elapsed());
}

#[test]
fn two_branches_peak_cap_probe() {
    use std::sync::Arc;
    use rigs::fleet::run::{run_in_process, RunOptions, summary, branches_csv};
    let sc = Arc::new(two_branches());
    let o = run_in_process(Arc::clone(&sc), &RunOptions::default()).unwrap();
    eprintln!("{}", summary(&sc, &o));
    let csv = branches_csv(&sc, &o.rows);
    for l in csv.lines().filter(|l| l.split(',').next().map_or(false, |m| m.parse::<u32>().map_or(true, |m| m % 10 == 0))) {
        eprintln!("{l}");
    }
}
