//! The host-side (`std`) loader for the controller's TOML configuration.

use std::path::{Path, PathBuf};

use crate::controller::ControllerConfig;

/// A configuration file that cannot be used; `Display` names the file and,
/// where known, the line or the field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    Invalid {
        path: PathBuf,
        error: Box<crate::ConfigError>,
    },
}

/// Reads, parses and validates a controller configuration file.
pub fn load(path: &Path) -> Result<ControllerConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates configuration text that came from `path`.
pub fn parse(path: &Path, text: &str) -> Result<ControllerConfig, LoadError> {
    let cfg: ControllerConfig = toml::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', " | "),
    })?;
    cfg.validate().map_err(|error| LoadError::Invalid {
        path: path.to_path_buf(),
        error: Box::new(error),
    })?;
    Ok(cfg)
}

impl std::error::Error for crate::ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[assembly]\nsite_id = 7\nusable_capacity_wh = 5000.0\nmax_charge_w = 2500.0\nmax_discharge_w = 3500.0\ncircuits = 4\n";

    #[test]
    fn a_minimal_file_takes_every_default() {
        let c = parse(Path::new("c.toml"), MINIMAL).unwrap();
        assert_eq!(c.assembly.site_id, 7);
        assert_eq!(c.control_period_ms, 1000);
        assert!(c.cluster.is_none());
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse(
            Path::new("c.toml"),
            &(MINIMAL.to_owned() + "surprise = 1\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.toml:") && e.contains("surprise"), "{e}");
        let e = parse(
            Path::new("c.toml"),
            &MINIMAL.replace("max_charge_w = 2500.0", "max_charge_w = -1.0"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("assembly.max_charge_w") && e.contains("must be > 0"),
            "{e}"
        );
        let e = parse(
            Path::new("c.toml"),
            &(MINIMAL.to_owned() + "[scheduling]\nreserve_soc = 1.5\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scheduling.reserve_soc"), "{e}");
        let e = load(Path::new("/nonexistent/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
