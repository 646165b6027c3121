//! Column tables written as CSV: a header of column names (units in the
//! names, `time_s,voltage_v,...`) and rows of numbers.
//!
//! Files are written atomically: rows go to a temporary file beside the
//! target, which is flushed, synced and renamed over the target only when
//! complete. A run that fails or is killed half-way never leaves a file that
//! looks complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Failure writing a table; names the file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: cannot write: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write CSV: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("table column `{column}` has {found} values, expected {expected}")]
    Ragged {
        column: String,
        found: usize,
        expected: usize,
    },
}

/// A table of named numeric columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnTable {
    pub names: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

impl ColumnTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a column.
    pub fn push(&mut self, name: impl Into<String>, values: Vec<f64>) {
        self.names.push(name.into());
        self.columns.push(values);
    }

    /// Number of rows (checked by [`ColumnTable::check`]).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// All columns must be as long as the first.
    pub fn check(&self) -> Result<(), WriteError> {
        let expected = self.rows();
        for (name, col) in self.names.iter().zip(&self.columns) {
            if col.len() != expected {
                return Err(WriteError::Ragged {
                    column: name.clone(),
                    found: col.len(),
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Writes the table as CSV to any writer. Numbers use Rust's shortest
    /// round-trip formatting, so reading them back gives the same `f64`.
    pub fn write_to<W: Write>(&self, out: W) -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(&self.names)?;
        let mut row: Vec<String> = Vec::with_capacity(self.names.len());
        for r in 0..self.rows() {
            row.clear();
            row.extend(self.columns.iter().map(|c| format_value(c[r])));
            w.write_record(&row)?;
        }
        w.flush()?;
        Ok(())
    }

    /// Writes the table to `path` atomically (temporary file + rename).
    pub fn write_atomic(&self, path: &Path) -> Result<(), WriteError> {
        self.check()?;
        write_atomic_with(path, |w| {
            self.write_to(w).map_err(|source| WriteError::Csv {
                path: path.to_path_buf(),
                source,
            })
        })
    }
}

/// Formats a value for CSV: shortest round-trip representation; NaN is
/// written as an empty cell (a gap, e.g. a signal not yet published).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}

/// Runs `write` against a buffered temporary file next to `path`, then
/// flushes, syncs and renames it over `path`. On any error the temporary
/// file is removed and `path` is left untouched.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let io_err = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{file_name}.partial"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp).map_err(io_err)?);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_header_and_round_trip_numbers() {
        let mut t = ColumnTable::new();
        t.push("time_s", vec![0.0, 1.0]);
        t.push("voltage_v", vec![4.1, 0.1 + 0.2]);
        let mut buf = Vec::new();
        t.write_to(&mut buf).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(s, "time_s,voltage_v\n0,4.1\n1,0.30000000000000004\n");
    }

    #[test]
    fn atomic_write_leaves_no_partial_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut t = ColumnTable::new();
        t.push("a", vec![1.0, 2.0]);
        t.push("b", vec![1.0]);
        assert!(matches!(
            t.write_atomic(&path),
            Err(WriteError::Ragged { .. })
        ));
        assert!(!path.exists());
        let r = write_atomic_with(&path, |w| {
            w.write_all(b"half a file").unwrap();
            Err(WriteError::Ragged {
                column: "x".into(),
                found: 0,
                expected: 1,
            })
        });
        assert!(r.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        t.columns[1].push(3.0);
        t.write_atomic(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n1,1\n2,3\n");
    }
}
