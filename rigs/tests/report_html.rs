//! The HTML report in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `.ci/run`) loads `index.html` of a run of the
//! fixture features from disk, with no network; it must render with no
//! console error, show the run's counts, and hold one `<svg>` plot per
//! measured signal. A screenshot of the failing scenario is saved in the
//! report dir (`target/tmp/maslow-report-html/`, a CI artefact).
//!
//! Skipped, with the reason printed, where chromium is missing, unless
//! `MASLOW_REQUIRE_CHROMIUM=1` (as in CI): then a missing browser fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|p| {
            std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(p))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file());
    match found {
        Some(p) => Some(p),
        None if std::env::var("MASLOW_REQUIRE_CHROMIUM").as_deref() == Ok("1") => {
            panic!("chromium is not installed but MASLOW_REQUIRE_CHROMIUM=1 (.ci/run installs it: apt-get install chromium)")
        }
        None => {
            eprintln!("html report in chromium: skipped: chromium is not installed (apt-get install chromium; MASLOW_REQUIRE_CHROMIUM=1 makes this a failure)");
            None
        }
    }
}

/// What chromium printed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs headless chromium with `args` on `url`, killed after 90 s; its
/// output goes to files (a DOM dump overflows a pipe nobody reads yet).
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> Ran {
    let out_path = profile.join("stdout.txt");
    let err_path = profile.join("stderr.txt");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for chromium") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 90 s: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ran {
        ok: status.success(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn count_between(html: &str, id: &str) -> Option<u32> {
    let start = html.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    html[start..].split('<').next()?.trim().parse().ok()
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("maslow-report-html");
    let out = Command::new(env!("CARGO_BIN_EXE_maslow"))
        .current_dir(&root)
        .args([
            "test",
            "rigs/tests/fixtures/features/passing.feature",
            "rigs/tests/fixtures/features/failing.feature",
            "--report-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let index = dir.join("index.html").canonicalize().unwrap();
    let url = format!("file://{}", index.display());
    let profile = tempfile::tempdir().unwrap();

    let dom = headless(&browser, profile.path(), &["--dump-dom"], &url);
    let (html, log) = (&dom.stdout, &dom.stderr);
    assert!(dom.ok, "chromium failed: {log}");
    // No console errors: chromium logs page console messages and uncaught
    // exceptions as `CONSOLE(...)` lines / "Uncaught" with --enable-logging.
    for bad in [
        "Uncaught",
        "CONSOLE",
        "Failed to load resource",
        "ERR_FILE_NOT_FOUND",
    ] {
        assert!(!log.contains(bad), "`{bad}` in chromium's log:\n{log}");
    }
    // The counts as rendered.
    assert_eq!(count_between(html, "count-passed"), Some(1), "{html}");
    assert_eq!(count_between(html, "count-failed"), Some(2));
    assert_eq!(count_between(html, "count-skipped"), Some(0));
    // One <svg> per measured signal, scenario by scenario.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let mut total = 0;
    for section in html.split("<section class=\"scenario\"").skip(1) {
        let end = section.find("</section>").unwrap_or(section.len());
        let body = &section[..end];
        let signals: usize = body
            .split("data-signals=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|n| n.parse().ok())
            .expect("each section says how many signals it measured");
        assert_eq!(body.matches("<svg").count(), signals, "plots in a section");
        total += signals;
    }
    assert!(
        total > 20,
        "the two scenarios that ran measured {total} signals"
    );
    assert_eq!(run["scenarios"].as_array().unwrap().len(), 3);

    // A screenshot of the failing scenario, kept with the report: its
    // section on a page of its own (headless chromium screenshots the top
    // of a page, not a fragment).
    let page = std::fs::read_to_string(&index).unwrap();
    let head = &page[..page.find("<h1>").expect("a heading")];
    let section = page
        .split("<section class=\"scenario\"")
        .skip(1)
        .find(|s| s.contains("data-status=\"failed\"") && s.contains("An impossible band"))
        .and_then(|s| s.split("</section>").next())
        .expect("the failing scenario's section");
    let single = dir.join("failing-scenario.html");
    std::fs::write(
        &single,
        format!("{head}<section class=\"scenario\"{section}</section></body></html>\n"),
    )
    .unwrap();
    let shot = dir.join("screenshot-failing-scenario.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
            "--hide-scrollbars",
        ],
        &format!("file://{}", single.display()),
    );
    assert!(out.ok, "{}", out.stderr);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    // A blank page compresses to ~14 kB; plots and text take far more.
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "{} bytes",
        png.len()
    );
    println!("screenshot of the failing scenario: {}", shot.display());
}
