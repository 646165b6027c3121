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
    // rustfmt may wrap a long attribute over several lines.
    let re =
        regex::Regex::new(r#"#\[(?:given|when|then)\(\s*regex\s*=\s*r"((?:[^"\\]|\\.)*)"\s*\)\]"#)
            .expect("pattern");
    re.captures_iter(&code).map(|c| c[1].to_owned()).collect()
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

/// The step sources, concatenated.
fn step_sources() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("src/scenario/steps"))
        .expect("src/scenario/steps")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("step file"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Then` steps without a negative test yet (none now). The list may only
/// shrink: a step with a test may not stay in it.
const WITHOUT_NEGATIVE_TEST_YET: &[&str] = &[];

#[test]
fn every_then_step_has_a_negative_test_or_is_listed() {
    let code = step_sources();
    let re = regex::Regex::new(
        r#"#\[then\(\s*regex\s*=\s*r"(?:[^"\\]|\\.)*"\s*\)\]\s*(?:///[^\n]*\n\s*)*(?:async\s+)?fn\s+(\w+)"#,
    )
    .expect("pattern");
    let thens: Vec<String> = re.captures_iter(&code).map(|c| c[1].to_owned()).collect();
    assert!(thens.len() >= 40, "found only {} Then steps", thens.len());
    let tested = |name: &str| code.contains(&format!("fn negative_{name}()"));
    let missing: Vec<&String> = thens
        .iter()
        .filter(|n| !tested(n) && !WITHOUT_NEGATIVE_TEST_YET.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "Then steps without a negative test (`fn negative_<name>()` in the steps' tests): {missing:?}"
    );
    let stale: Vec<&&str> = WITHOUT_NEGATIVE_TEST_YET
        .iter()
        .filter(|n| tested(n) || !thens.iter().any(|t| t == *n))
        .collect();
    assert!(
        stale.is_empty(),
        "listed as without a negative test but tested, or no longer a Then step: {stale:?}"
    );
}

/// Every step definition: (its pattern, its function's name).
fn steps_with_names() -> Vec<(String, String)> {
    let re = regex::Regex::new(
        r#"#\[(?:given|when|then)\(\s*regex\s*=\s*r"((?:[^"\\]|\\.)*)"\s*\)\]\s*(?:///[^\n]*\n\s*)*(?:async\s+)?fn\s+(\w+)"#,
    )
    .expect("pattern");
    re.captures_iter(&step_sources())
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect()
}

/// The steps that set a daily schedule: their times hold every day, so
/// they take a bare `HH:MM`.
const DAILY_SCHEDULES: &[&str] = &["off_peak", "peak_window", "plugged_schedule", "tariff_rule"];

/// The one pattern fragment of a moment: `HH:MM` or `HH:MM on day N`
/// (parsed by `clock_s`).
const MOMENT: &str = r"(\d\d:\d\d(?: on day \d+)?)";

#[test]
fn every_moment_a_step_takes_may_be_on_a_later_day() {
    let steps = steps_with_names();
    assert!(steps.len() >= 90, "found only {} steps", steps.len());
    let bare: Vec<&String> = steps
        .iter()
        .filter(|(p, name)| {
            let times = p.matches(r"\d\d:\d\d").count();
            let moments = p.matches(MOMENT).count();
            times != moments && !DAILY_SCHEDULES.contains(&name.as_str())
        })
        .map(|(p, _)| p)
        .collect();
    assert!(
        bare.is_empty(),
        "steps whose times cannot be on a later day (write them `{MOMENT}`, or list a daily schedule in DAILY_SCHEDULES): {bare:#?}"
    );
    for daily in DAILY_SCHEDULES {
        assert!(
            steps.iter().any(|(_, n)| n == daily),
            "DAILY_SCHEDULES names `{daily}`, which is no step"
        );
    }
}

/// The step lines of every feature file (`Given`/`When`/`Then`/`And`/`But`
/// without the keyword), a scenario outline's expanded with each row of its
/// file's `Examples` tables that names all its placeholders.
fn feature_steps() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../features");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("features/").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "feature") {
                files.push(p);
            }
        }
    }
    let keyword = regex::Regex::new(r"^\s*(?:Given|When|Then|And|But)\s+(.+?)\s*$").expect("re");
    let mut steps = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("feature file");
        let rows = examples(&text);
        let name = f.display().to_string();
        for line in text.lines() {
            let Some(c) = keyword.captures(line) else {
                continue;
            };
            for step in expand(&c[1], &rows) {
                steps.push((name.clone(), step));
            }
        }
    }
    steps
}

/// The rows of a feature file's `Examples` tables, each as (column, value).
fn examples(text: &str) -> Vec<Vec<(String, String)>> {
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut rows = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut in_examples = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("Examples:") || line.starts_with("Scenarios:") {
            in_examples = true;
            header = None;
        } else if in_examples && line.starts_with('|') {
            match &header {
                None => header = Some(cells(line)),
                Some(h) => rows.push(h.iter().cloned().zip(cells(line)).collect()),
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            in_examples = false;
        }
    }
    rows
}

/// A step line with its `<placeholders>` filled from each row that names
/// them all (the line itself when it has none).
fn expand(step: &str, rows: &[Vec<(String, String)>]) -> Vec<String> {
    if !step.contains('<') {
        return vec![step.to_owned()];
    }
    rows.iter()
        .map(|row| {
            row.iter()
                .fold(step.to_owned(), |s, (k, v)| s.replace(&format!("<{k}>"), v))
        })
        .filter(|s| !s.contains('<'))
        .collect()
}

#[test]
fn every_step_is_used_by_a_feature_file() {
    let used = feature_steps();
    assert!(used.len() >= 200, "found only {} step lines", used.len());
    let unused: Vec<String> = steps_with_names()
        .into_iter()
        .filter(|(p, _)| {
            let re = regex::Regex::new(p).expect("a step's pattern compiles");
            !used.iter().any(|(_, s)| re.is_match(s))
        })
        .map(|(p, name)| format!("{name}: {p}"))
        .collect();
    assert!(
        unused.is_empty(),
        "glossary steps no feature file uses (use each in a scenario that shows what it judges, or remove it): {unused:#?}"
    );
}

#[test]
fn an_outline_step_is_used_with_its_examples() {
    let text = "Scenario Outline: x\n  When <n> minutes pass\n\n  Examples:\n    | n |\n    | 5 |\n    | 10 |\n";
    let rows = examples(text);
    assert_eq!(
        expand("<n> minutes pass", &rows),
        vec!["5 minutes pass", "10 minutes pass"]
    );
}
