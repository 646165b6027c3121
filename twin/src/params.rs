//! Reading parameter files: the one place in `twin` that touches the file
//! system. Models never do IO; they take the typed, validated parameter
//! structs that the `load_*` functions here (and in each model's module)
//! produce from TOML files and the CSV tables those files reference.
//!
//! Every error names the file, and where it can, the line and the key, so
//! that a user who wrote the file from their own lab data knows what to fix.

use std::path::{Path, PathBuf};

/// A problem with a parameter file. The `Display` text is meant to be shown
/// to the user as it is: it names the file, the line where known, and what
/// is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or schema error; `message` carries toml's line/column.
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    /// A CSV table with a bad row or header.
    #[error("{path}: line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// Parsed, but a value is out of its physical range or inconsistent.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ParamError {
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ParamError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Reads a file to a string, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, ParamError> {
    std::fs::read_to_string(path).map_err(|source| ParamError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and deserialises a TOML file. Unknown keys are rejected when the
/// target type says `#[serde(deny_unknown_fields)]` (all of ours do), so a
/// misspelt parameter is an error, not a silent default.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ParamError> {
    let text = read_text(path)?;
    parse_toml(path, &text)
}

/// Deserialises TOML text that came from `path` (used in error messages).
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ParamError> {
    toml::from_str(text).map_err(|e| ParamError::Toml {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', " | "),
    })
}

/// Resolves a path written inside a parameter file relative to that file's
/// directory (absolute paths are kept as they are).
pub fn resolve_relative(param_file: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        param_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(p)
    }
}

/// A numeric CSV table: a header row of column names and rows of finite
/// numbers. Blank lines and lines starting with `#` are skipped; `lines`
/// keeps each row's line in the file, for later error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub lines: Vec<u64>,
}

impl NumericTable {
    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    /// The values of one column.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.column_index(name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }
}

/// Reads a numeric CSV table from a file.
pub fn load_numeric_csv(path: &Path) -> Result<NumericTable, ParamError> {
    let text = read_text(path)?;
    parse_numeric_csv(path, &text)
}

/// The file line (1-based) of a byte offset. A CSV record's position can sit
/// on the blank and comment lines before it, so those are skipped first.
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = (byte as usize).min(bytes.len());
    loop {
        while end < bytes.len() && (bytes[end] == b'\n' || bytes[end] == b'\r') {
            end += 1;
        }
        if end < bytes.len() && bytes[end] == b'#' {
            while end < bytes.len() && bytes[end] != b'\n' {
                end += 1;
            }
        } else {
            break;
        }
    }
    bytes[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

/// Parses a numeric CSV table; every cell must be a finite number and every
/// row as wide as the header. Errors name the file line.
pub fn parse_numeric_csv(path: &Path, text: &str) -> Result<NumericTable, ParamError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_err = |line: u64, message: String| ParamError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| csv_err(1, format!("cannot read the header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if columns.iter().all(|c| c.is_empty()) {
        return Err(csv_err(1, "the file has no header row".into()));
    }
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(text, p.byte()));
            csv_err(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| line_at(text, p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != columns.len() {
            return Err(csv_err(
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
        for (field, name) in record.iter().zip(&columns) {
            let v: f64 = field.parse().map_err(|_| {
                csv_err(line, format!("column `{name}`: `{field}` is not a number"))
            })?;
            if !v.is_finite() {
                return Err(csv_err(
                    line,
                    format!("column `{name}`: `{field}` is not a finite number"),
                ));
            }
            row.push(v);
        }
        rows.push(row);
        lines.push(line);
    }
    Ok(NumericTable {
        columns,
        rows,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_csv_parses_and_reports_bad_cells() {
        let p = Path::new("t.csv");
        let t = parse_numeric_csv(p, "a,b\n# comment\n1,2\n\n3,4.5\n").unwrap();
        assert_eq!(t.lines, vec![3, 5]);
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.column("b").unwrap(), vec![2.0, 4.5]);
        let e = parse_numeric_csv(p, "a,b\n1,2\n3,x\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.csv: line 3") && e.contains("`x` is not a number"),
            "{e}"
        );
        let e = parse_numeric_csv(p, "a,b\n1,2,3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 2 values"), "{e}");
        let e = parse_numeric_csv(p, "a,b\n1,NaN\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("not a finite number"),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_name_the_file() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            a: f64,
        }
        let e = parse_toml::<P>(Path::new("x.toml"), "a = 1.0\nb = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:") && e.contains("unknown field `b`"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_param_file() {
        let p = resolve_relative(Path::new("/a/b/cell.toml"), "tables/ocv.csv");
        assert_eq!(p, PathBuf::from("/a/b/tables/ocv.csv"));
    }
}
