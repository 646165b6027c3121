//! What stops a rig run or a direct session, as errors that name the file,
//! the setting or the link at fault.

use crate::plant_port::PortError;

/// Problems wiring a controller directly to a house.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("controller config: {0}")]
    Controller(Box<firmware::ConfigError>),
    #[error(
        "the controller drives {controller} {what} but the house has {house}: make [assembly] match the house's [bus]"
    )]
    Mismatch {
        what: &'static str,
        controller: usize,
        house: usize,
    },
}

/// Why a rig run could not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error(transparent)]
    RigFile(#[from] crate::rig::config::RigFileError),
    #[error(transparent)]
    Param(#[from] twin::params::ParamError),
    #[error("scenario: {0}")]
    Scenario(String),
    #[error(transparent)]
    Engine(#[from] twin::engine::EngineError),
    #[error(transparent)]
    PlantLink(#[from] crate::plant_link::PlantLinkError),
    #[error(transparent)]
    Direct(#[from] DirectError),
    #[error(transparent)]
    ControllerConfig(#[from] firmware::config_file::LoadError),
    #[error("controller: {0}")]
    Controller(String),
    #[error("link: {0}")]
    Link(String),
    #[error(
        "the controller did not acknowledge the time sync of t = {at_ms} ms within {timeout_ms} ms{detail}"
    )]
    SyncTimeout {
        at_ms: u64,
        timeout_ms: u64,
        detail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl RigError {
    /// Whether the user's input (rig file, scenario, controller config) is
    /// at fault, rather than the run.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RigError::RigFile(_)
                | RigError::Param(_)
                | RigError::Scenario(_)
                | RigError::ControllerConfig(_)
        )
    }
}
