//! The JUnit XML validates against the common JUnit schema
//! (`tests/schema/junit.xsd`) with xmllint (Debian `libxml2-utils`);
//! skipped with a printed reason where xmllint is missing, unless
//! `MASLOW_REQUIRE_XMLLINT=1` (set by `.ci/run`).

mod common;
#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schema/junit.xsd")
}

/// xmllint's verdict on `xml`: Ok, or its complaint.
fn validate(xmllint: &Path, xml: &str) -> Result<(), String> {
    validate_with(xmllint, &schema(), xml)
}

fn validate_with(xmllint: &Path, schema: &Path, xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .expect("xmllint runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn junit_xml_validates_against_the_junit_schema() {
    let Some(xmllint) = tools::tool("xmllint", "MASLOW_REQUIRE_XMLLINT", "junit schema") else {
        return;
    };
    let xml = reports::junit::to_junit_xml(&common::run()).unwrap();
    validate(&xmllint, &xml).unwrap_or_else(|e| panic!("junit.xml is not valid JUnit: {e}\n{xml}"));
}

/// Jenkins' own `junit-10.xsd` (MIT, Gregory Boissinot), as pytest's source
/// distribution on PyPI carries it (`testing/example_scripts/junit-10.xsd`):
/// `.ci/run` fetches it and names it in `MASLOW_JUNIT10_XSD`. Without it the
/// test says why it skips, unless `MASLOW_REQUIRE_XMLLINT=1`.
#[test]
fn junit_xml_validates_against_jenkins_junit_10_xsd() {
    let Some(xmllint) = tools::tool("xmllint", "MASLOW_REQUIRE_XMLLINT", "junit-10 schema") else {
        return;
    };
    let xsd = match std::env::var_os("MASLOW_JUNIT10_XSD") {
        Some(p) => PathBuf::from(p),
        None if std::env::var("MASLOW_REQUIRE_XMLLINT").as_deref() == Ok("1") => {
            panic!("MASLOW_REQUIRE_XMLLINT=1 but MASLOW_JUNIT10_XSD names no junit-10.xsd")
        }
        None => {
            eprintln!(
                "skipped: MASLOW_JUNIT10_XSD is not set (.ci/run fetches Jenkins' junit-10.xsd)"
            );
            return;
        }
    };
    assert!(
        xsd.is_file(),
        "MASLOW_JUNIT10_XSD: {} is not a file",
        xsd.display()
    );
    let xml = reports::junit::to_junit_xml(&common::run()).unwrap();
    validate_with(&xmllint, &xsd, &xml)
        .unwrap_or_else(|e| panic!("junit.xml does not validate against junit-10.xsd: {e}\n{xml}"));
}

#[test]
fn the_schema_rejects_what_ci_tools_would() {
    let Some(xmllint) = tools::tool("xmllint", "MASLOW_REQUIRE_XMLLINT", "junit schema") else {
        return;
    };
    let xml = reports::junit::to_junit_xml(&common::run()).unwrap();
    // A test case without a name, a count that is not a number, an
    // unknown element: each must fail, or the check above proves nothing.
    for (what, bad) in [
        (
            "nameless testcase",
            xml.replacen("<testcase name=", "<testcase label=", 1),
        ),
        ("bad count", xml.replacen("tests=\"6\"", "tests=\"six\"", 1)),
        (
            "unknown element",
            xml.replacen("<properties>", "<props/><properties>", 1),
        ),
    ] {
        assert_ne!(bad, xml, "{what}: the mutation did not apply");
        assert!(validate(&xmllint, &bad).is_err(), "{what} validated");
    }
}
