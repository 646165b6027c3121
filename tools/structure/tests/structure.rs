//! maslow's structure, checked on the repository itself: arrows between
//! crates run one way, no module import circles, the firmware's functions
//! fit in a reader's head, and no text points at issue numbers.

use std::path::{Path, PathBuf};

use structure::{
    dependency_path, function_lengths, issue_mentions, rust_files, under_test_reads, ModuleGraph,
    UNDER_TEST_READS,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's crates, by their source roots.
const CRATE_SOURCES: &[&str] = &[
    "twin/src",
    "firmware/src",
    "common/links/src",
    "rigs/src",
    "rigs/sigrok/src",
    "reports/src",
    "tools/structure/src",
];

/// The longest function allowed in `firmware/src`, lines.
const FIRMWARE_FUNCTION_MAX_LINES: usize = 120;

#[test]
fn dependency_arrows_run_one_way() {
    // (package, packages it must not reach through any dependency kind)
    let forbidden: &[(&str, &[&str])] = &[
        ("firmware", &["rigs", "sigrok", "reports"]),
        ("twin", &["firmware", "rigs", "links", "sigrok", "reports"]),
        ("links", &["firmware", "rigs", "twin", "sigrok", "reports"]),
        ("reports", &["firmware", "rigs", "twin", "links", "sigrok"]),
        (
            "seeds",
            &["firmware", "rigs", "twin", "links", "sigrok", "reports"],
        ),
    ];
    let mut wrong = Vec::new();
    for (from, tos) in forbidden {
        for to in *tos {
            match dependency_path(&root(), from, to) {
                Ok(Some(chain)) => wrong.push(chain.join(" -> ")),
                Ok(None) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that run back up:\n{}",
        wrong.join("\n")
    );
    // The check can see an arrow that is there.
    assert!(dependency_path(&root(), "rigs", "firmware")
        .expect("Cargo.lock")
        .is_some());
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let mut found = Vec::new();
    for src in CRATE_SOURCES {
        let g = ModuleGraph::of_crate(&root().join(src)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            g.uses.len() > 1 || *src == "tools/structure/src",
            "{src}: no modules read"
        );
        for cycle in g.cycles() {
            let detail: Vec<String> = cycle
                .iter()
                .map(|m| {
                    let inside: Vec<&str> = g.uses[m]
                        .iter()
                        .filter(|t| cycle.contains(t))
                        .map(String::as_str)
                        .collect();
                    format!("    {m} uses {}", inside.join(", "))
                })
                .collect();
            found.push(format!(
                "{src}: {}\n{}",
                cycle.join(" <-> "),
                detail.join("\n")
            ));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn firmware_functions_fit_in_a_readers_head() {
    let mut long = Vec::new();
    let files = rust_files(&root().join("firmware/src")).expect("firmware sources");
    assert!(files.len() > 10, "firmware sources found: {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        for f in function_lengths(&path, &text).unwrap_or_else(|e| panic!("{e}")) {
            if f.lines > FIRMWARE_FUNCTION_MAX_LINES {
                long.push(format!(
                    "{}:{} fn {}: {} lines",
                    path.strip_prefix(root()).unwrap_or(&path).display(),
                    f.line,
                    f.name,
                    f.lines
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {FIRMWARE_FUNCTION_MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// Files git tracks, as paths from the root.
fn tracked_files() -> Vec<String> {
    let out = std::process::Command::new("git")
        .current_dir(root())
        .args(["ls-files", "-z"])
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn code_and_docs_say_what_things_are_not_which_issue_brought_them() {
    let mut found = Vec::new();
    let files = tracked_files();
    assert!(
        files.iter().any(|f| f == "ARCHITECTURE.md"),
        "tracked files listed"
    );
    for rel in files {
        // This crate's own unit tests quote such phrases to prove the check.
        if rel == "tools/structure/src/lib.rs" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root().join(&rel)) else {
            continue; // binary, or not UTF-8: not prose or code
        };
        for (line, what) in issue_mentions(&text) {
            found.push(format!("{rel}:{line}: {what}"));
        }
    }
    assert!(
        found.is_empty(),
        "issue numbers in code or docs:\n{}",
        found.join("\n")
    );
}

/// The reads of the running plant a step may make, each with why it is
/// not a verdict on a variable: (file under `rigs/src/scenario/steps/`,
/// the line's code, why).
const ALLOWED_UNDER_TEST_READS: &[(&str, &str, &str)] = &[
    (
        "functions.rs",
        "let epoch = w.sim()?.session.plant().epoch_unix_s();",
        "the calendar's epoch (configuration), to stamp the server's messages",
    ),
    (
        "protection.rs",
        "let plant = w.sim()?.session.plant();",
        "a forced circuit-current reading is scaled by the present bus voltage (fault injection, not a verdict)",
    ),
    (
        "protection.rs",
        ".plant()",
        "the commands as the plant applied them: the protection steps' reaction-time measurement",
    ),
];

#[test]
fn steps_judge_measurements_not_the_variables_under_test() {
    let dir = root().join("rigs/src/scenario/steps");
    let files = rust_files(&dir).expect("step sources");
    assert!(files.len() >= 4, "step sources found: {}", files.len());
    let mut found = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line, code) in under_test_reads(&text, UNDER_TEST_READS) {
            let allowed = ALLOWED_UNDER_TEST_READS
                .iter()
                .any(|(f, c, _)| *f == name && code == *c);
            if !allowed {
                found.push(format!("steps/{name}:{line}: {code}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "steps that read the controller's or the twin's variables (judge a measurement or a \
         report as it travelled instead, or add the read with its reason to \
         ALLOWED_UNDER_TEST_READS):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_under_test_lint_sees_a_step_that_reads_the_controller() {
    let step = "fn sneaky(w: &mut MaslowWorld) -> StepResult {\n    \
                // a comment naming .controller() is fine\n    \
                let st = w.sim()?.session.controller().controller.cluster_status(now);\n}";
    let found = under_test_reads(step, UNDER_TEST_READS);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 3);
}
