//! Traffic traces in candump `-L` format: [`CandumpWriter`] appends one
//! line per frame, and [`TracedBus`] records both directions of any
//! [`CanBus`] through one.
//!
//! Lines are strict `-L` (`(1700000000.123456) can0 123#DEADBEEF`, see
//! [`crate::candump`]), so `canplayer`, `log2asc`, `cantools` and
//! `python-can` read them. There is no direction field; a [`TracedBus`]
//! can name the two directions as different interfaces
//! ([`TracedBus::with_interfaces`]) where that matters.
//!
//! Every line goes to the kernel in one `write` as soon as the frame
//! passes, so a run that is killed keeps every frame traced before the
//! kill (not fsync'd: a power cut may still lose the page cache).

use crate::bus::{CanBus, LinkError, LinkStats};
use crate::candump::{format_line, Timestamp};
use crate::frame::CanFrame;
use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where timestamps come from: the wall clock by default, or a caller's
/// (virtual) clock.
pub type TraceClock = Box<dyn FnMut() -> Timestamp + Send>;

/// Appends candump `-L` lines to a file, one `write` per frame.
pub struct CandumpWriter {
    file: File,
    path: PathBuf,
    clock: TraceClock,
    lines: u64,
    line: String,
}

impl std::fmt::Debug for CandumpWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandumpWriter")
            .field("path", &self.path)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl CandumpWriter {
    /// Create (or truncate) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LinkError> {
        Self::with_options(
            path.as_ref(),
            OpenOptions::new().write(true).create(true).truncate(true),
        )
    }

    /// Append to `path`, creating it if needed.
    pub fn append(path: impl AsRef<Path>) -> Result<Self, LinkError> {
        Self::with_options(path.as_ref(), OpenOptions::new().append(true).create(true))
    }

    fn with_options(path: &Path, options: &OpenOptions) -> Result<Self, LinkError> {
        let file = options.open(path).map_err(|source| LinkError::Open {
            device: path.display().to_string(),
            source,
        })?;
        Ok(CandumpWriter {
            file,
            path: path.to_owned(),
            clock: Box::new(wall_clock),
            lines: 0,
            line: String::with_capacity(64),
        })
    }

    /// Take timestamps from `clock` (e.g. the rig's virtual time) instead
    /// of the wall clock.
    pub fn with_clock(mut self, clock: impl FnMut() -> Timestamp + Send + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Append one line for `frame` seen on `iface`, now.
    pub fn write(&mut self, iface: &str, frame: &CanFrame) -> Result<(), LinkError> {
        let t = (self.clock)();
        self.write_at(t, iface, frame)
    }

    /// Append one line with the given timestamp.
    pub fn write_at(
        &mut self,
        timestamp: Timestamp,
        iface: &str,
        frame: &CanFrame,
    ) -> Result<(), LinkError> {
        self.line.clear();
        self.line.push_str(&format_line(timestamp, iface, frame));
        self.line.push('\n');
        self.file
            .write_all(self.line.as_bytes())
            .map_err(|source| LinkError::Io {
                device: self.path.display().to_string(),
                action: "writing a candump line",
                source,
            })?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Now, by the wall clock.
pub fn wall_clock() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: since.as_secs(),
        micros: since.subsec_micros(),
    }
}

/// A [`CanBus`] whose every sent and received frame is traced.
///
/// A trace line that cannot be written does not fail the send or lose the
/// received frame: it is counted (`errors.trace_failures`) and the first
/// such error is kept ([`TracedBus::trace_error`]).
#[derive(Debug)]
pub struct TracedBus<B: CanBus> {
    inner: B,
    writer: CandumpWriter,
    send_iface: String,
    recv_iface: String,
    failures: u64,
    first_failure: Option<LinkError>,
}

impl<B: CanBus> TracedBus<B> {
    /// Trace both directions under one interface name (e.g. `can0`).
    pub fn new(inner: B, writer: CandumpWriter, iface: &str) -> Self {
        Self::with_interfaces(inner, writer, iface, iface)
    }

    /// Trace sent frames under `send_iface` and received ones under
    /// `recv_iface`.
    pub fn with_interfaces(
        inner: B,
        writer: CandumpWriter,
        send_iface: &str,
        recv_iface: &str,
    ) -> Self {
        TracedBus {
            inner,
            writer,
            send_iface: send_iface.to_owned(),
            recv_iface: recv_iface.to_owned(),
            failures: 0,
            first_failure: None,
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn writer(&self) -> &CandumpWriter {
        &self.writer
    }

    /// The first trace line that could not be written, if any.
    pub fn trace_error(&self) -> Option<&LinkError> {
        self.first_failure.as_ref()
    }

    fn trace(&mut self, sent: bool, frame: &CanFrame) {
        let iface = if sent {
            &self.send_iface
        } else {
            &self.recv_iface
        };
        if let Err(e) = self.writer.write(iface, frame) {
            self.failures += 1;
            self.first_failure.get_or_insert(e);
        }
    }
}

#[async_trait]
impl<B: CanBus> CanBus for TracedBus<B> {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        self.inner.send(frame).await?;
        self.trace(true, frame);
        Ok(())
    }

    /// Cancel-safe as the inner `recv` is: the line is written in the same
    /// poll that returns the frame.
    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        let frame = self.inner.recv().await?;
        self.trace(false, &frame);
        Ok(frame)
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        self.inner.flush().await
    }

    fn stats(&self) -> LinkStats {
        let mut s = self.inner.stats();
        s.errors.trace_failures += self.failures;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candump::parse_line;
    use crate::frame::CanId;
    use crate::in_process::InProcessBus;

    #[tokio::test]
    async fn a_traced_bus_logs_both_directions_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let mut t = 0u64;
        let writer = CandumpWriter::create(&path).unwrap().with_clock(move || {
            t += 1;
            Timestamp {
                secs: 1_700_000_000,
                micros: t as u32,
            }
        });
        let (a, mut b) = InProcessBus::pair();
        let mut a = TracedBus::new(a, writer, "can0");
        let f1 = CanFrame::new(CanId::Standard(0x123), &[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        let f2 = CanFrame::remote(CanId::Extended(0x1234_5678), 2).unwrap();
        a.send(&f1).await.unwrap();
        b.send(&f2).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), f2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "(1700000000.000001) can0 123#DEADBEEF\n(1700000000.000002) can0 12345678#R2\n"
        );
        for line in text.lines() {
            parse_line(line).unwrap();
        }
        assert_eq!(a.writer().lines(), 2);
        assert!(a.trace_error().is_none());
    }

    #[test]
    fn an_unwritable_trace_says_where() {
        let e = CandumpWriter::create("/nonexistent-dir/run.log").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open /nonexistent-dir/run.log"),
            "{e}"
        );
    }
}
