//! `index.html` of a fixed run with a small fixed capture: a snapshot
//! (times and durations redacted), and its structure: counts, one `<svg>`
//! per measured signal, self-contained (no script, link or remote URL).

mod common;

use reports::html::to_html;
use reports::run::RunRecord;
use reports::scenario::{Assertion, Bound, Event, ScenarioCapture, Signal};

fn capture() -> ScenarioCapture {
    let t: Vec<f64> = (0..=60).map(|k| f64::from(k) * 60.0).collect();
    let soc = Signal {
        name: "soc".into(),
        unit: "1".into(),
        values: t.iter().map(|s| 0.8 - s / 36_000.0).collect(),
        t_s: t.clone(),
    };
    let bus = Signal {
        name: "bus_voltage_v".into(),
        unit: "V".into(),
        values: t
            .iter()
            .map(|s| if *s > 1800.0 { 45.0 } else { 48.0 })
            .collect(),
        t_s: t,
    };
    let assertions = vec![
        Assertion::judge(&soc, 0.0, 3600.0, Bound::AtLeast { limit: 0.2 }),
        Assertion::judge(&bus, 600.0, 3600.0, Bound::between(46.0, 50.0)),
    ];
    ScenarioCapture {
        signals: vec![soc, bus],
        events: vec![Event {
            at_s: 1800.0,
            label: "mains fail".into(),
        }],
        assertions,
        figures: Default::default(),
        invariants: Vec::new(),
    }
}

/// The fixed run with the capture in the failing temperature scenario's
/// directory (written to `dir`).
fn run_with_capture(dir: &std::path::Path) -> RunRecord {
    let mut run = common::run();
    let s = &mut run.features[0].scenarios[1];
    s.dir = "scenarios/pack-temperature-limit-102".into();
    capture().write(&dir.join(&s.dir)).unwrap();
    s.figures = reports::scenario::read_summary(&dir.join(&s.dir))
        .unwrap()
        .figures;
    run
}

#[test]
fn html_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_capture(dir.path());
    let html = to_html(&run, &|s| reports::html::extras_from_dir(dir.path(), s));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"<time>[^<]*</time>", "<time>[time]</time>");
    settings.add_filter(
        r#"<span class="dur">[^<]*</span>"#,
        r#"<span class="dur">[duration]</span>"#,
    );
    settings.bind(|| insta::assert_snapshot!("index_html", html));
}

#[test]
fn html_shows_counts_plots_and_failures_and_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_capture(dir.path());
    reports::html::write_html(&run, dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains(r#"<b id="count-passed">2</b>"#));
    assert!(html.contains(r#"<b id="count-failed">3</b>"#));
    assert!(html.contains(r#"<b id="count-skipped">1</b>"#));
    assert_eq!(
        html.matches("<svg").count(),
        2,
        "one plot per measured signal"
    );
    assert!(html.contains(r#"data-signals="2""#));
    assert_eq!(html.matches("<section class=\"scenario\"").count(), 6);
    // The failed step's expected-vs-measured message, escaped.
    assert!(html.contains("expected pack temperature &lt; 45 °C &amp; &quot;stable&quot;"));
    // The band that was violated is marked, the event drawn.
    assert!(html.contains("class=\"violated\""));
    assert!(html.contains("mains fail"));
    // Links to the scenario's files.
    for f in ["signals.csv", "events.csv", "scenario.json"] {
        assert!(
            html.contains(&format!("scenarios/pack-temperature-limit-102/{f}")),
            "{f}"
        );
    }
    assert!(!html.contains("plots.html\""));
    // Self-contained.
    for no in ["<script", "<link", "http://", "https://", "@import", "url("] {
        let hits: Vec<_> = html
            .match_indices(no)
            .filter(|(i, _)| {
                // The SVG namespace is an identifier, not a fetch.
                !html[*i..].starts_with("http://www.w3.org/2000/svg")
            })
            .collect();
        assert!(hits.is_empty(), "`{no}` in a self-contained page");
    }
}

#[test]
fn html_renders_without_scenario_dirs() {
    let run = common::run();
    let html = to_html(&run, &|_| Default::default());
    assert_eq!(html.matches("<svg").count(), 0);
    assert!(html.ends_with("</html>\n"));
}
