//! Reading user-supplied input tables (current profiles, weather, load
//! series) with errors that name the file, the line and the problem.
//!
//! The rules every input table follows: a header row naming the columns;
//! numeric cells, finite; the time column (`time_s`) strictly increasing;
//! blank lines and `#` comments skipped. Extra columns are allowed and
//! ignored, so a table exported from another tool can be used as it is.

use std::path::{Path, PathBuf};

/// A problem with an input file. `Display` is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// A numeric table read from a CSV file, with the source line of each row
/// kept for later error messages.
#[derive(Debug, Clone)]
pub struct InputTable {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub lines: Vec<u64>,
}

impl InputTable {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses CSV text that came from `path` (named in errors), with the
    /// same rules as parameter tables (`twin::params::parse_numeric_csv`).
    pub fn parse(path: &Path, text: &str) -> Result<Self, InputError> {
        let file_err = |message: &str| InputError::File {
            path: path.to_path_buf(),
            message: message.into(),
        };
        if text.trim().is_empty() {
            return Err(file_err(
                "the file is empty; expected a header row such as `time_s,current_a`",
            ));
        }
        let t = twin::params::parse_numeric_csv(path, text).map_err(|e| match e {
            twin::params::ParamError::Csv {
                path,
                line,
                message,
            } => InputError::Line {
                path,
                line,
                message,
            },
            other => InputError::File {
                path: path.to_path_buf(),
                message: other.to_string(),
            },
        })?;
        if t.rows.is_empty() {
            return Err(file_err("the file has a header but no data rows"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns: t.columns,
            rows: t.rows,
            lines: t.lines,
        })
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    /// The values of a required column, or an error listing what the file has.
    pub fn column(&self, name: &str) -> Result<Vec<f64>, InputError> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| InputError::File {
                path: self.path.clone(),
                message: format!(
                    "missing column `{name}` (the header has: {})",
                    self.columns.join(", ")
                ),
            })?;
        Ok(self.rows.iter().map(|r| r[i]).collect())
    }

    /// The time column, checked to be strictly increasing and non-negative.
    pub fn time_column(&self, name: &str) -> Result<Vec<f64>, InputError> {
        let t = self.column(name)?;
        for (k, w) in t.windows(2).enumerate() {
            if w[1] <= w[0] {
                return Err(InputError::Line {
                    path: self.path.clone(),
                    line: self.lines[k + 1],
                    message: format!("`{name}` must increase strictly: {} follows {}", w[1], w[0]),
                });
            }
        }
        if let Some((k, v)) = t.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(InputError::Line {
                path: self.path.clone(),
                line: self.lines[k],
                message: format!("`{name}` must not be negative, found {v}"),
            });
        }
        Ok(t)
    }

    /// The first of `names` that the file has (for alternatives such as
    /// `current_a` or `power_w`).
    pub fn one_of<'a>(&self, names: &[&'a str]) -> Result<(&'a str, Vec<f64>), InputError> {
        for n in names {
            if self.has_column(n) {
                return Ok((n, self.column(n)?));
            }
        }
        Err(InputError::File {
            path: self.path.clone(),
            message: format!(
                "needs one of the columns {} (the header has: {})",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.columns.join(", ")
            ),
        })
    }

    /// Source line of row `k` (1-based file line).
    pub fn line_of_row(&self, k: usize) -> u64 {
        self.lines.get(k).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("profile.csv")
    }

    #[test]
    fn reads_columns_and_skips_comments() {
        let t = InputTable::parse(p(), "# pulse\ntime_s,current_a\n0,1\n\n10,-2.5\n").unwrap();
        assert_eq!(t.time_column("time_s").unwrap(), vec![0.0, 10.0]);
        assert_eq!(t.column("current_a").unwrap(), vec![1.0, -2.5]);
        assert_eq!(t.lines, vec![3, 5]);
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let e = InputTable::parse(p(), "time_s,current_a\n0,1\n5,abc\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile.csv: line 3: column `current_a`: `abc` is not a number"
        );
        let e = InputTable::parse(p(), "time_s,current_a\n0,1\n5,NaN\n").unwrap_err();
        assert!(e.to_string().contains("line 3") && e.to_string().contains("not a finite"));
        let t = InputTable::parse(p(), "time_s,current_a\n0,1\n5,1\n5,2\n").unwrap();
        let e = t.time_column("time_s").unwrap_err().to_string();
        assert_eq!(
            e,
            "profile.csv: line 4: `time_s` must increase strictly: 5 follows 5"
        );
        let e = t.column("power_w").unwrap_err().to_string();
        assert!(
            e.contains("missing column `power_w`") && e.contains("time_s, current_a"),
            "{e}"
        );
        let e = t.one_of(&["power_w", "energy_wh"]).unwrap_err().to_string();
        assert!(e.contains("`power_w` or `energy_wh`"), "{e}");
        let e = InputTable::parse(p(), "time_s,current_a\n0,1,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("expected 2 values"),
            "{e}"
        );
        let e = InputTable::parse(p(), "").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = InputTable::parse(p(), "time_s,current_a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no data rows"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = InputTable::parse(p(), &s).map(|t| t.time_column("time_s"));
        }
    }
}
