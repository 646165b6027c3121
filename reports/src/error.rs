//! The error every run-record writer returns ([`ReportError`]), the atomic
//! file write they share, and checked conversions of the record's seconds.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Failure turning a [`RunRecord`](crate::run::RunRecord) into a report or
/// writing it; names the file, or the record field, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file (or its temporary sibling) could not be written or renamed.
    #[error("{path}: cannot write: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// quick-junit refused the report.
    #[error("cannot serialize JUnit XML: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    /// serde_json refused the report.
    #[error("cannot serialize Cucumber JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A time in the record is NaN, infinite, negative or out of range.
    #[error("{what} is {value}, not a usable number of seconds")]
    BadTime { what: String, value: f64 },
}

/// Writes `bytes` to `path` atomically: to a temporary file beside it
/// (`.NAME.PID.partial`), flushed and synced, then renamed over `path`. On any
/// error the temporary file is removed and `path` is untouched. The directory
/// must exist: a report aimed at a missing directory is a mistake worth
/// hearing about, not one to paper over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io_err = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io_err(std::io::Error::other("not a file name")))?
        .to_string_lossy()
        .into_owned();
    let tmp = path.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io_err)?;
        file.write_all(bytes).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A record's duration in seconds as a [`Duration`]; NaN, infinite or
/// negative values are an error naming `what`.
pub(crate) fn duration(
    what: impl FnOnce() -> String,
    seconds: f64,
) -> Result<Duration, ReportError> {
    Duration::try_from_secs_f64(seconds).map_err(|_| ReportError::BadTime {
        what: what(),
        value: seconds,
    })
}

/// A record's duration in whole nanoseconds (rounded to the nearest), as
/// Cucumber JSON wants it; saturates past 584 years.
pub(crate) fn nanoseconds(what: impl FnOnce() -> String, seconds: f64) -> Result<u64, ReportError> {
    duration(what, seconds)?;
    // `as` saturates at u64::MAX; the value is finite and non-negative here.
    Ok((seconds * 1e9).round() as u64)
}
