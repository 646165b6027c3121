//! Every step definition's pattern is listed in the glossary
//! (features/README.md), and every listed pattern still exists.

use std::path::PathBuf;

fn patterns_in_code() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    let dir = root.join("src/scenario/steps");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/scenario/steps")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        code.push_str(&std::fs::read_to_string(&f).expect("step file"));
        code.push('\n');
    }
    // Attributes may span lines (rustfmt breaks long ones after `(`).
    let mut out = Vec::new();
    for attr in ["#[given(", "#[when(", "#[then("] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let Some(body) = rest.trim_start().strip_prefix("regex = r\"") else {
                continue;
            };
            // A raw string has no `"` inside.
            if let Some(end) = body.find('"') {
                out.push(body[..end].to_owned());
            }
        }
    }
    out
}

fn glossary() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("../features/README.md"))
        .expect("features/README.md")
        // Table cells escape the regex alternation bar.
        .replace("\\|", "|")
}

#[test]
fn every_step_is_in_the_glossary() {
    let code = patterns_in_code();
    assert!(
        code.len() >= 40,
        "found only {} step definitions",
        code.len()
    );
    let doc = glossary();
    let missing: Vec<&String> = code
        .iter()
        .filter(|p| !doc.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "steps missing from features/README.md: {missing:#?}"
    );
}

#[test]
fn every_glossary_pattern_is_a_step() {
    let code = patterns_in_code();
    let doc = glossary();
    for line in doc.lines().filter(|l| l.starts_with("| `^")) {
        let pat = line[3..]
            .split("$` |")
            .next()
            .unwrap_or_default()
            .to_owned()
            + "$";
        assert!(
            code.contains(&pat),
            "glossary lists `{pat}`, which no step defines"
        );
    }
}
