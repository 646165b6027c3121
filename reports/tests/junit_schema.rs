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
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
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
