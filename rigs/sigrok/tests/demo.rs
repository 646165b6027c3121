//! The safe API against libsigrok's `demo` driver (no hardware needed).
//!
//! Without libsigrok these tests print why they skip and pass, unless
//! `MASLOW_REQUIRE_SIGROK=1`, which makes them fail.

use std::thread;
use std::time::{Duration, Instant};

use sigrok::testing::context_or_skip;
use sigrok::{ChannelKind, Context, RunStatus, ScanOption, SigrokError, StopHandle};

const DEMO_AMPLITUDE_V: f64 = 10.0;

#[test]
fn a_missing_library_is_a_clear_error_not_a_panic() {
    let err = Context::load_from("/nonexistent/libsigrok.so.4").expect_err("bogus path loaded");
    assert!(err.is_library_missing(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/libsigrok.so.4"), "{msg}");
    assert!(msg.contains("libsigrok4 / libsigrok-dev"), "{msg}");
}

#[test]
fn the_demo_device_has_eight_logic_and_five_analog_channels() {
    let Some(ctx) = context_or_skip("demo channels") else {
        return;
    };
    assert!(ctx.drivers().iter().any(|d| d.name == "demo"));
    let devices = ctx.scan("demo", None).expect("scan demo");
    assert_eq!(devices.len(), 1, "{devices:?}");
    let dev = &devices[0];
    assert_eq!(dev.driver(), "demo");
    let channels = dev.channels();
    let logic: Vec<_> = channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Logic)
        .collect();
    let analog: Vec<_> = channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Analog)
        .collect();
    assert_eq!(
        logic.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7"]
    );
    assert_eq!(
        analog.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["A0", "A1", "A2", "A3", "A4"]
    );
    for (i, c) in logic.iter().enumerate() {
        assert_eq!(c.index, i as i32, "{c:?}");
    }
    let groups = dev.channel_groups();
    assert!(
        groups.iter().any(|g| g == "Logic") && groups.iter().any(|g| g == "A0"),
        "{groups:?}"
    );
}

#[test]
fn analog_a0_is_a_10_v_square_wave_with_a_10_sample_period() {
    let Some(ctx) = context_or_skip("analog square") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let cap = devices[0]
        .capture(&["A0"], 100_000, 1_000)
        .expect("capture");
    assert_eq!(cap.samplerate_hz, 100_000);
    let a0 = cap.channel("A0").expect("A0 captured");
    assert_eq!(a0.kind, ChannelKind::Analog);
    assert_eq!(a0.unit, "V");
    assert_eq!(a0.samples.len(), 1_000, "the sample limit");
    for (i, v) in a0.samples.iter().enumerate() {
        // 5 samples low, 5 high, starting low.
        let expected = if (i / 5) % 2 == 0 {
            -DEMO_AMPLITUDE_V
        } else {
            DEMO_AMPLITUDE_V
        };
        assert!(
            (v - expected).abs() < 1e-6,
            "sample {i}: {v} V, expected {expected} V"
        );
    }
}

#[test]
fn analog_amplitude_and_pattern_are_as_configured() {
    let Some(ctx) = context_or_skip("analog config") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_amplitude("A0", 2.5).expect("amplitude");
    dev.set_pattern("A1", "sine").expect("pattern");
    // 1000 samples: libsigrok 0.5.2's demo driver applies a changed
    // amplitude twice to the buffers it sends after the first ~1020
    // samples (sigrok-cli shows the same), so stay within the first.
    let cap = dev.capture(&["A0", "A1"], 50_000, 1_000).expect("capture");
    let a0 = &cap.channel("A0").expect("A0").samples;
    let a1 = &cap.channel("A1").expect("A1").samples;
    assert_eq!((a0.len(), a1.len()), (1_000, 1_000));
    for (i, v) in a0.iter().enumerate() {
        let expected = if (i / 5) % 2 == 0 { -2.5 } else { 2.5 };
        assert!(
            (v - expected).abs() < 1e-6,
            "A0 sample {i}: {v} V, expected {expected} V"
        );
    }
    let max = a1.iter().copied().fold(f64::MIN, f64::max);
    let min = a1.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        (max - DEMO_AMPLITUDE_V).abs() < 1e-4 && (min + DEMO_AMPLITUDE_V).abs() < 1e-4,
        "{min}..{max}"
    );
    // A sine of 20 samples per period, starting at 0 and rising; 1000
    // samples are 50 whole periods, so the RMS is A/√2.
    for (i, v) in a1.iter().enumerate() {
        let expected = DEMO_AMPLITUDE_V * (2.0 * std::f64::consts::PI * i as f64 / 20.0).sin();
        assert!(
            (v - expected).abs() < 1e-4,
            "A1 sample {i}: {v} V, expected {expected} V"
        );
    }
    let rms = (a1.iter().map(|v| v * v).sum::<f64>() / a1.len() as f64).sqrt();
    assert!(
        (rms - DEMO_AMPLITUDE_V / 2f64.sqrt()).abs() < 1e-3,
        "rms {rms}"
    );
}

/// The eight logic channels read back as a byte per sample.
fn bytes_of(cap: &sigrok::Capture) -> Vec<u8> {
    let n = cap.channels[0].samples.len();
    (0..n)
        .map(|i| {
            (0..8).fold(0u8, |b, bit| {
                let v = cap.channel(&format!("D{bit}")).expect("channel").samples[i];
                assert!(v == 0.0 || v == 1.0, "logic sample {v}");
                b | ((v as u8) << bit)
            })
        })
        .collect()
}

const D: [&str; 8] = ["D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7"];

#[test]
fn the_incremental_logic_pattern_counts_up_by_one_per_sample() {
    let Some(ctx) = context_or_skip("logic incremental") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_pattern("Logic", "incremental").expect("pattern");
    let cap = dev.capture(&D, 200_000, 600).expect("capture");
    let bytes = bytes_of(&cap);
    assert_eq!(bytes.len(), 600);
    assert_eq!(bytes[0], 0);
    for (i, w) in bytes.windows(2).enumerate() {
        assert_eq!(w[1], w[0].wrapping_add(1), "samples {i}, {}", i + 1);
    }
}

#[test]
fn logic_and_analog_channels_in_one_capture() {
    let Some(ctx) = context_or_skip("mixed capture") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_pattern("Logic", "walking-one").expect("pattern");
    let cap = dev
        .capture(&["D3", "A0", "D0"], 10_000, 64)
        .expect("capture");
    let names: Vec<_> = cap.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["D3", "A0", "D0"], "in the order asked for");
    for c in &cap.channels {
        assert_eq!(c.samples.len(), 64, "{}", c.name);
    }
    // Walking one: at most one channel high per sample, and the one bit
    // walks up one channel per sample (libsigrok 0.5.2's demo adds an idle
    // all-low sample after D7, a period of 9).
    let d0 = &cap.channel("D0").expect("D0").samples;
    let d3 = &cap.channel("D3").expect("D3").samples;
    let highs: Vec<usize> = (0..64).filter(|&i| d0[i] == 1.0).collect();
    assert_eq!(highs, [1, 10, 19, 28, 37, 46, 55], "D0: {d0:?}");
    for i in 0..61 {
        assert_eq!(
            d0[i],
            d3[i + 3],
            "D3 follows D0 three samples later, sample {i}"
        );
    }
}

#[test]
fn a_single_high_logic_channel_reads_its_own_bit() {
    let Some(ctx) = context_or_skip("logic D3 alone") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_pattern("Logic", "incremental").expect("pattern");
    let cap = dev.capture(&["D3"], 100_000, 64).expect("capture");
    let d3 = &cap.channel("D3").expect("D3").samples;
    assert_eq!(d3.len(), 64);
    for (i, v) in d3.iter().enumerate() {
        assert_eq!(*v, ((i >> 3) & 1) as f64, "sample {i}: {d3:?}");
    }
}

#[test]
fn sixteen_logic_channels_come_as_two_byte_little_endian_samples() {
    let Some(ctx) = context_or_skip("16 logic channels") else {
        return;
    };
    let devices = ctx
        .scan_with(
            "demo",
            &[
                ScanOption::NumLogicChannels(16),
                ScanOption::NumAnalogChannels(1),
            ],
        )
        .expect("scan demo");
    let dev = &devices[0];
    let names: Vec<String> = dev.channels().into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 17, "{names:?}");
    assert_eq!(names[15], "D15");
    assert_eq!(names[16], "A0");
    dev.set_pattern("Logic", "incremental").expect("pattern");
    // The demo's incremental pattern counts bytes: with two-byte samples,
    // sample i is the bytes 2i and 2i + 1 (mod 256), first byte D0..D7
    // (sigrok-cli shows the same). Asking for D15 enables D0..D15.
    let cap = dev
        .capture(&["D15", "D8", "D7", "D1", "D0"], 100_000, 600)
        .expect("capture");
    let bit = |name: &str, i: usize| cap.channel(name).expect("channel").samples[i];
    for name in ["D15", "D8", "D7", "D1", "D0"] {
        assert_eq!(
            cap.channel(name).expect("channel").samples.len(),
            600,
            "{name}"
        );
    }
    for i in 0..600 {
        let (lo, hi) = ((2 * i) & 0xff, (2 * i + 1) & 0xff);
        let expect = |byte: usize, b: usize| ((byte >> b) & 1) as f64;
        assert_eq!(bit("D0", i), expect(lo, 0), "D0 sample {i}");
        assert_eq!(bit("D1", i), expect(lo, 1), "D1 sample {i}");
        assert_eq!(bit("D7", i), expect(lo, 7), "D7 sample {i}");
        assert_eq!(bit("D8", i), expect(hi, 0), "D8 sample {i}");
        assert_eq!(bit("D15", i), expect(hi, 7), "D15 sample {i}");
    }
}

#[test]
fn the_walking_one_pattern_walks_one_channel_per_sample() {
    let Some(ctx) = context_or_skip("logic walking one") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_pattern("Logic", "walking-one").expect("pattern");
    let bytes = bytes_of(&dev.capture(&D, 100_000, 500).expect("capture"));
    assert_eq!(bytes.len(), 500);
    for (i, w) in bytes.windows(2).enumerate() {
        assert!(w[0].count_ones() <= 1, "sample {i}: {:08b}", w[0]);
        if w[0] != 0 && w[0] != 0x80 {
            assert_eq!(w[1], w[0] << 1, "samples {i}, {}", i + 1);
        }
    }
    assert!(bytes.contains(&0x01) && bytes.contains(&0x80));
}

#[test]
fn repeated_captures_and_contexts_work() {
    for round in 0..3 {
        let Some(ctx) = context_or_skip("repeated captures") else {
            return;
        };
        let devices = ctx.scan("demo", None).expect("scan demo");
        for n in [1u64, 17, 1_000] {
            let cap = devices[0]
                .capture(&["A0", "D0"], 20_000, n)
                .expect("capture");
            for c in &cap.channels {
                assert_eq!(c.samples.len() as u64, n, "round {round}, {}", c.name);
            }
        }
    }
}

#[test]
fn a_continuous_capture_stops_from_another_thread_without_losing_samples() {
    let Some(ctx) = context_or_skip("continuous capture") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    dev.set_pattern("Logic", "incremental").expect("pattern");
    // A limited capture first: the continuous one must lift the limit.
    let limited = dev.capture(&D, 10_000, 100).expect("limited capture");
    assert_eq!(bytes_of(&limited).len(), 100);
    let stop = StopHandle::new();
    let remote = stop.clone();
    let stopper = thread::spawn(move || {
        assert_eq!(
            remote.wait_running(Duration::from_secs(10)),
            RunStatus::Running
        );
        let started = Instant::now();
        thread::sleep(Duration::from_millis(300));
        remote.stop();
        started.elapsed()
    });
    let cap = dev
        .capture_until_stopped(&D, 10_000, &stop)
        .expect("capture");
    let ran = stopper.join().expect("stopper thread");
    assert_eq!(stop.status(), RunStatus::Finished);
    let bytes = bytes_of(&cap);
    eprintln!("continuous: {} samples at 10 kHz in {ran:?}", bytes.len());
    // The demo device paces itself in real time (10 kHz for ~0.3 s), and
    // sends what is due every 100 ms, so the last slice may not come.
    let expected = ran.as_secs_f64() * 10_000.0;
    assert!(
        (bytes.len() as f64) > 0.5 * expected && (bytes.len() as f64) < 1.5 * expected,
        "{} samples in {ran:?}",
        bytes.len()
    );
    for (i, w) in bytes.windows(2).enumerate() {
        assert_eq!(
            w[1],
            w[0].wrapping_add(1),
            "samples {i}, {}: a gap or a repeat",
            i + 1
        );
    }
}

#[test]
fn stopping_before_the_capture_starts_ends_it_at_once() {
    let Some(ctx) = context_or_skip("early stop") else {
        return;
    };
    let devices = ctx.scan("demo", None).expect("scan demo");
    let stop = StopHandle::new();
    stop.stop();
    let t0 = Instant::now();
    devices[0]
        .capture_until_stopped(&["A0"], 1_000, &stop)
        .expect("capture");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let err = devices[0]
        .capture_until_stopped(&["A0"], 1_000, &stop)
        .expect_err("a handle serves one capture");
    assert!(matches!(err, SigrokError::InvalidRequest(_)), "{err:?}");
}

#[test]
fn a_second_context_waits_for_the_first() {
    let Some(ctx) = context_or_skip("busy") else {
        return;
    };
    let err = Context::load_timeout(Duration::from_millis(50)).expect_err("two contexts");
    assert!(matches!(err, SigrokError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("one at a time"), "{err}");
    drop(ctx);
    let again = Context::load_timeout(Duration::from_secs(10)).expect("after the first is dropped");
    let dev = again.first_device("demo", None).expect("a demo device");
    assert_eq!(dev.driver(), "demo");
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let Some(ctx) = context_or_skip("errors") else {
        return;
    };
    let err = ctx
        .scan("no-such-driver", None)
        .expect_err("unknown driver");
    assert!(matches!(err, SigrokError::UnknownDriver { .. }), "{err:?}");
    assert!(err.to_string().contains("demo"), "{err}");

    let devices = ctx.scan("demo", None).expect("scan demo");
    let dev = &devices[0];
    let err = dev
        .capture(&["Z9"], 1_000, 10)
        .expect_err("unknown channel");
    assert!(
        err.to_string().contains("`Z9`") && err.to_string().contains("A0"),
        "{err}"
    );
    let err = dev
        .capture(&["A0", "A0"], 1_000, 10)
        .expect_err("duplicate");
    assert!(matches!(err, SigrokError::InvalidRequest(_)), "{err:?}");
    let err = dev.capture(&["A0"], 1_000, 0).expect_err("no samples");
    assert!(matches!(err, SigrokError::InvalidRequest(_)), "{err:?}");
    let err = dev.set_pattern("Nope", "sine").expect_err("unknown group");
    assert!(
        matches!(err, SigrokError::UnknownChannelGroup { .. }),
        "{err:?}"
    );
    let err = dev
        .set_pattern("Logic", "no-such-pattern")
        .expect_err("bad pattern");
    let msg = err.to_string();
    assert!(
        msg.contains("sr_config_set(SR_CONF_PATTERN_MODE) failed"),
        "{msg}"
    );
    // And the device still works.
    let cap = dev
        .capture(&["A0"], 1_000, 10)
        .expect("capture after errors");
    assert_eq!(cap.channels[0].samples.len(), 10);
}
