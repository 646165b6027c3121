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

    /// Parses CSV text that came from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, InputError> {
        // The file line of a byte offset (csv's own line count skips blank
        // lines, which would mislead a user looking for the bad row).
        let line_at = |byte: u64| -> u64 {
            let bytes = text.as_bytes();
            let mut end = (byte as usize).min(bytes.len());
            // A record's position can sit on the blank lines before it.
            while end < bytes.len() && (bytes[end] == b'\n' || bytes[end] == b'\r') {
                end += 1;
            }
            bytes[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
        };
        let line_err = |line: u64, message: String| InputError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| line_err(1, format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(InputError::File {
                path: path.to_path_buf(),
                message: "the file is empty; expected a header row such as `time_s,current_a`"
                    .into(),
            });
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                line_err(line, e.to_string())
            })?;
            let line = record.position().map_or(0, |p| line_at(p.byte()));
            if record.iter().all(str::is_empty) {
                continue;
            }
            if record.len() != columns.len() {
                return Err(line_err(
                    line,
                    format!(
                        "expected {} values (columns {}), found {}",
                        columns.len(),
                        columns.join(","),
                        record.len()
                    ),
                ));
            }
            let mut row = Vec::with_capacity(columns.len());
            for (cell, name) in record.iter().zip(&columns) {
                let v: f64 = cell.parse().map_err(|_| {
                    line_err(line, format!("column `{name}`: `{cell}` is not a number"))
                })?;
                if !v.is_finite() {
                    return Err(line_err(
                        line,
                        format!("column `{name}`: `{cell}` is not a finite number"),
                    ));
                }
                row.push(v);
            }
            rows.push(row);
            lines.push(line);
        }
        if rows.is_empty() {
            return Err(InputError::File {
                path: path.to_path_buf(),
                message: "the file has a header but no data rows".into(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns,
            rows,
            lines,
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
