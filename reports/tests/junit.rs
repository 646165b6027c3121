//! JUnit XML of a fixed run: a snapshot of the whole document, then the
//! document read back with an independent XML parser (roxmltree) and
//! checked against the record.

mod common;

use reports::junit::{to_junit_xml, write_junit};
use reports::ReportError;

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no `{name}`", node.tag_name().name()))
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.has_tag_name(name))
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &'a str) -> Option<roxmltree::Node<'a, 'i>> {
    children(node, name).next()
}

#[test]
fn junit_xml_snapshot() {
    let xml = to_junit_xml(&common::run()).unwrap();
    insta::assert_snapshot!("junit_xml", xml);
}

#[test]
fn junit_xml_reads_back_with_the_record_counts() {
    let run = common::run();
    let xml = to_junit_xml(&run).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(attr(root, "name"), "maslow");
    let counts = run.counts();
    assert_eq!((counts.passed, counts.failed, counts.skipped), (2, 3, 1));
    assert_eq!(attr(root, "tests"), "6");
    assert_eq!(attr(root, "failures"), counts.failed.to_string());
    // junit-10.xsd allows no `skipped` or `timestamp` on the root: the
    // suites carry them.
    assert_eq!(root.attribute("skipped"), None);
    assert_eq!(root.attribute("timestamp"), None);
    assert_eq!(attr(root, "errors"), "0");
    assert_eq!(attr(root, "time"), "12.750");
    let suite_skipped: usize = children(root, "testsuite")
        .map(|s| attr(s, "skipped").parse::<usize>().unwrap())
        .sum();
    assert_eq!(suite_skipped, counts.skipped);
    for s in children(root, "testsuite") {
        assert_eq!(attr(s, "timestamp"), "2026-11-26T12:00:00.500+00:00");
    }

    let suites: Vec<_> = children(root, "testsuite").collect();
    assert_eq!(suites.len(), run.features.len());
    for (suite, feature) in suites.iter().zip(&run.features) {
        assert_eq!(attr(*suite, "name"), feature.name);
        assert_eq!(attr(*suite, "tests"), feature.scenarios.len().to_string());
        let props: Vec<(&str, &str)> = children(child(*suite, "properties").unwrap(), "property")
            .map(|p| (attr(p, "name"), attr(p, "value")))
            .collect();
        assert_eq!(
            props,
            [("rig", "sim"), ("mode", "lockstep"), ("seed", "42")]
        );
        let cases: Vec<_> = children(*suite, "testcase").collect();
        assert_eq!(cases.len(), feature.scenarios.len());
        for (case, scenario) in cases.iter().zip(&feature.scenarios) {
            assert_eq!(attr(*case, "name"), scenario.name);
            assert_eq!(attr(*case, "classname"), feature.uri);
            let time: f64 = attr(*case, "time").parse().unwrap();
            assert!((time - scenario.duration_s).abs() <= 1e-3, "{time}");
            let out = child(*case, "system-out").unwrap().text().unwrap();
            let first = out.lines().next().unwrap();
            assert_eq!(first, format!("seed {}", scenario.seed));
            if !scenario.output.is_empty() {
                assert!(out.ends_with(&scenario.output), "{out:?}");
            }
        }
    }

    let case = |name: &str| {
        root.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase `{name}`"))
    };
    let verdicts = |name: &str| -> Vec<String> {
        case(name)
            .children()
            .filter(|c| c.is_element() && !c.has_tag_name("system-out"))
            .map(|c| c.tag_name().name().to_owned())
            .collect()
    };

    assert_eq!(verdicts("Standby current stays low"), Vec::<String>::new());

    // The failure message survives escaping exactly: <, &, " and °C, µs.
    let failure = child(case("Pack temperature limit"), "failure").unwrap();
    assert_eq!(attr(failure, "message"), common::TEMPERATURE_ERROR);
    assert_eq!(attr(failure, "type"), "failed");
    assert_eq!(
        failure.text().unwrap(),
        format!(
            "Then the pack temperature stays below 45 °C (line 14)\n{}",
            common::TEMPERATURE_ERROR
        )
    );
    assert_eq!(verdicts("Pack temperature limit"), ["failure"]);

    assert_eq!(verdicts("Cell balancing"), ["skipped"]);

    let undefined = child(case("Heartbeat frames"), "failure").unwrap();
    assert_eq!(attr(undefined, "message"), "a step has no definition");
    assert_eq!(attr(undefined, "type"), "undefined");
    assert!(undefined
        .text()
        .unwrap()
        .starts_with("When the controller sleeps (line 5)\n"));

    // Passed on its retry: a passing testcase carrying the failed attempt.
    assert_eq!(verdicts("Bus-off recovery"), ["flakyFailure"]);
    // Failed after two retries: the failure and the two earlier attempts.
    assert_eq!(
        verdicts("Error frames are counted"),
        ["failure", "rerunFailure", "rerunFailure"]
    );
    let frames = child(case("Error frames are counted"), "failure").unwrap();
    assert_eq!(
        attr(frames, "message"),
        "expected 3 error frames, counted 2"
    );
}

#[test]
fn junit_xml_reads_back_with_quick_junit() {
    let run = common::run();
    let xml = to_junit_xml(&run).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.tests, 6);
    assert_eq!(report.failures, 3);
    let skipped: usize = report.test_suites.iter().map(|s| s.skipped).sum();
    assert_eq!(skipped, 1);
    assert_eq!(report.test_suites.len(), 2);
}

#[test]
fn write_junit_is_atomic_and_names_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(&common::run(), &path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    roxmltree::Document::parse(&written).unwrap();
    assert_eq!(written, to_junit_xml(&common::run()).unwrap());
    // Nothing but the report is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["junit.xml"]);

    let missing = dir.path().join("no-such-dir").join("junit.xml");
    let err = write_junit(&common::run(), &missing).unwrap_err();
    assert!(
        matches!(&err, ReportError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn a_nan_duration_is_an_error_naming_the_scenario() {
    let mut run = common::run();
    run.features[1].scenarios[0].duration_s = f64::NAN;
    let err = to_junit_xml(&run).unwrap_err();
    assert!(matches!(err, ReportError::BadTime { .. }), "{err:?}");
    assert!(err.to_string().contains("Heartbeat frames"), "{err}");
}
