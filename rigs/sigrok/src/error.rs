//! Errors, naming what failed.

/// Why a libsigrok operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SigrokError {
    /// `libsigrok.so.4` (or GLib) could not be loaded: the library is
    /// optional, so this is an ordinary error, never a build failure.
    #[error("{library} not found or not loadable: {hint} ({source})")]
    LibraryMissing {
        /// The file name or path that was tried.
        library: String,
        /// What to install.
        hint: &'static str,
        /// The loader's own message.
        #[source]
        source: libloading::Error,
    },
    /// A libsigrok function returned an error code.
    #[error("{function} failed: {message} ({name}, code {code})")]
    Call {
        /// The function (and, for `sr_config_set`, the key).
        function: String,
        /// The `SR_ERR_*` code.
        code: i32,
        /// `sr_strerror_name(code)`.
        name: String,
        /// `sr_strerror(code)`.
        message: String,
    },
    /// A libsigrok function returned NULL where it should not.
    #[error("{function} returned nothing")]
    Null {
        /// The function.
        function: &'static str,
    },
    /// Another [`crate::Context`] stayed alive in this process for longer
    /// than the caller would wait (libsigrok allows one at a time).
    #[error(
        "libsigrok is in use by another context in this process (one at a time); waited {waited:?}"
    )]
    Busy {
        /// How long the caller waited.
        waited: std::time::Duration,
    },
    /// A scan found no device.
    #[error("driver `{driver}` found no device{}", connection.as_ref().map(|c| format!(" at `{c}`")).unwrap_or_default())]
    NoDevice {
        /// The driver scanned.
        driver: String,
        /// The connection it was given.
        connection: Option<String>,
    },
    /// No driver of that name in this libsigrok.
    #[error("libsigrok has no driver `{driver}` (it has: {available})")]
    UnknownDriver {
        /// The name asked for.
        driver: String,
        /// The names it has.
        available: String,
    },
    /// The device has no channel of that name.
    #[error("device has no channel `{channel}` (it has: {available})")]
    UnknownChannel {
        /// The name asked for.
        channel: String,
        /// The names it has.
        available: String,
    },
    /// The device has no channel group of that name.
    #[error("device has no channel group `{group}` (it has: {available})")]
    UnknownChannelGroup {
        /// The name asked for.
        group: String,
        /// The names it has.
        available: String,
    },
    /// A capture was asked for with bad arguments.
    #[error("invalid capture request: {0}")]
    InvalidRequest(String),
    /// A string for libsigrok held a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which argument.
        what: &'static str,
    },
    /// The data feed could not be read (bad packet, or a panic caught in the
    /// callback before it could cross into C).
    #[error("data feed: {0}")]
    DataFeed(String),
}

impl SigrokError {
    /// Whether this is the "libsigrok is not installed" error (tests use it
    /// to skip on machines without libsigrok).
    pub fn is_library_missing(&self) -> bool {
        matches!(self, SigrokError::LibraryMissing { .. })
    }
}
