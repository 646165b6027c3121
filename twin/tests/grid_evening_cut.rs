//! The grid side of "Essential lighting survives an evening power cut":
//! mains, household demand, an export-enabled backup inverter running the
//! peak window from the battery, and the smart meter, stepped together
//! through a six-hour cut from 18:00.

use twin::grid::{
    net_import_w, Archetype, DemandConfig, HouseholdDemand, Inverter, InverterConfig,
    InverterInput, InverterMode, Mains, MainsConfig, MeterConfig, OutageConfig, SmartMeter,
};
use twin::time::{days_from_civil, Calendar, SimTime};

#[test]
fn evening_power_cut_from_the_grid_side() {
    // Monday 2026-06-22 00:00 local (UTC+1).
    let cal = Calendar::new(days_from_civil(2026, 6, 22) * 86_400 - 3600, 1.0);
    let cut_start_s = 18 * 3600;
    let cut_len_s = 6 * 3600;
    let mains = Mains::new(
        MainsConfig {
            outages: vec![OutageConfig {
                start_s: cut_start_s as f64,
                duration_s: cut_len_s as f64,
            }],
            ..MainsConfig::default()
        },
        2026,
    )
    .unwrap();
    let mut demand = HouseholdDemand::new(DemandConfig::new(Archetype::Family), 2026, cal).unwrap();
    let mut inverter = Inverter::new(InverterConfig {
        export_enabled: true,
        backup_enabled: true,
        anti_islanding_trip_s: 0.5,
        ..InverterConfig::default()
    })
    .unwrap();
    let mut meter = SmartMeter::new(MeterConfig::default(), cal).unwrap();

    let dt = 1.0;
    let mut regs_at_cut = None;
    let mut islanded_s = 0u64;
    for k in 0..(36 * 3600u64) {
        let now = SimTime::from_secs(k);
        let supply = mains.state(now);
        let load = demand.step(now, dt);
        // A naive controller: run 2.5 kW from the battery in the 17–21 h peak.
        let hour = cal.local_hour(now);
        let request = if (17.0..21.0).contains(&hour) {
            2500.0
        } else {
            0.0
        };
        let inv = inverter.step(dt, InverterInput::new(request, load), supply);
        let grid_w = if supply.present {
            net_import_w(load, 0.0, inv.ac_out_w)
        } else {
            0.0
        };
        let r = meter.step(now, dt, grid_w, supply);

        let in_cut = (cut_start_s..cut_start_s + cut_len_s).contains(&k);
        if in_cut {
            assert!(!supply.present);
            assert_eq!((r.import_w, r.export_w), (0.0, 0.0));
            // Stops pushing power into the dead grid within 2 s.
            if k >= cut_start_s + 2 {
                assert!(!inv.exporting && !inv.islanding, "t {k}: {inv:?}");
            }
            let regs = (
                r.import_t1_kwh,
                r.import_t2_kwh,
                r.export_t1_kwh,
                r.export_t2_kwh,
            );
            match regs_at_cut {
                None => regs_at_cut = Some(regs),
                Some(before) => assert_eq!(regs, before, "registers frozen in a cut"),
            }
            if inv.mode == InverterMode::Islanded {
                islanded_s += 1;
                assert!((inv.ac_out_w - load.min(3000.0)).abs() < 1e-9);
            }
        } else {
            assert!(supply.present);
        }
    }
    // Islanded for the whole cut after the 0.5 s trip and 1 s transfer.
    assert!(islanded_s >= cut_len_s - 3, "{islanded_s}");
    assert_eq!(inverter.anti_islanding_trips(), 1);

    let r = *meter.last_reading().unwrap();
    assert_eq!(r.long_power_failures, 1);
    assert_eq!(r.short_power_failures, 0);
    let log = meter.long_failure_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].duration_s, cut_len_s as f64);
    assert_eq!(log[0].end, SimTime::from_secs(cut_start_s + cut_len_s));
    // Night import on the low tariff, daytime import on normal; the 17–18 h
    // export on Monday falls on tariff 2.
    assert!(r.import_t1_kwh > 1.0 && r.import_t2_kwh > 1.0, "{r:?}");
    assert!(r.export_t2_kwh > 0.5 && r.export_t1_kwh == 0.0, "{r:?}");
}
