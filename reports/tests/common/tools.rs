//! External checkers (xmllint, chromium): found on PATH, or skipped with a
//! printed reason, unless the environment says CI installed them.

use std::path::PathBuf;

/// The program's path if it runs; `None` (after printing why) when it is
/// missing and `require_var` is not `1`; a panic when it is missing and
/// required.
pub fn tool(program: &str, require_var: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var(require_var).as_deref() == Ok("1") => {
            panic!("{test}: `{program}` is not installed but {require_var}=1 (CI installs it in .ci/run)")
        }
        None => {
            eprintln!("{test}: skipped: `{program}` is not installed (set {require_var}=1 to make that a failure)");
            None
        }
    }
}
