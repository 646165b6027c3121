//! One async trait for every CAN transport: [`CanBus`], its errors
//! ([`LinkError`]) and its counters ([`LinkStats`]).
//!
//! A transport may buffer sends: a frame given to [`CanBus::send`] is on
//! the wire at the latest when [`CanBus::flush`] returns (or when the next
//! [`CanBus::recv`] starts waiting). Lockstep callers send a step's burst,
//! then flush once. [`CanBus::recv`] is cancel-safe on every transport in
//! this crate: dropping its future (a losing `tokio::select!` branch) loses
//! no frame.
//!
//! Bits are counted with [`bit_length`]`(..).actual()`,
//! stuff bits included, so `bits_sent / elapsed` is the bus load a real
//! controller would see.

use crate::frame::{bit_length, CanFrame, FrameError};
use crate::slcan::DiscardCounts;
use async_trait::async_trait;
use std::io;
use std::time::Duration;
use thiserror::Error;

/// A CAN transport: in-process, SLCAN over a serial port or pty, SocketCAN,
/// or a wrapper around one of these (faults, tracing).
#[async_trait]
pub trait CanBus: Send {
    /// Queue a frame for the bus. It is on the wire at the latest when
    /// [`flush`](CanBus::flush) returns.
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError>;

    /// The next frame from the bus. Cancel-safe: if the future is dropped
    /// before it completes, no frame is lost. Also writes out frames still
    /// queued by [`send`](CanBus::send) while it waits.
    async fn recv(&mut self) -> Result<CanFrame, LinkError>;

    /// Put every queued frame on the wire (one `write` per burst where the
    /// transport buffers).
    async fn flush(&mut self) -> Result<(), LinkError>;

    /// Frames and bits sent and received, errors by reason and, for
    /// [`FaultyBus`](crate::faulty::FaultyBus), the faults injected.
    fn stats(&self) -> LinkStats;
}

#[async_trait]
impl<B: CanBus + ?Sized> CanBus for Box<B> {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        (**self).send(frame).await
    }
    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        (**self).recv().await
    }
    async fn flush(&mut self) -> Result<(), LinkError> {
        (**self).flush().await
    }
    fn stats(&self) -> LinkStats {
        (**self).stats()
    }
}

/// What a link has carried and what went wrong on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Frames accepted by [`CanBus::send`] for the wire.
    pub frames_sent: u64,
    /// Their bits on the wire, stuff bits included.
    pub bits_sent: u64,
    /// Frames returned by [`CanBus::recv`] (or queued for it).
    pub frames_received: u64,
    pub bits_received: u64,
    pub errors: ErrorCounts,
    /// Faults injected by a [`FaultyBus`](crate::faulty::FaultyBus) (zero
    /// elsewhere).
    pub faults: FaultCounts,
}

impl LinkStats {
    /// Count a frame sent.
    pub fn count_sent(&mut self, frame: &CanFrame) {
        self.frames_sent += 1;
        self.bits_sent += u64::from(bit_length(frame).actual());
    }

    /// Count a frame received.
    pub fn count_received(&mut self, frame: &CanFrame) {
        self.frames_received += 1;
        self.bits_received += u64::from(bit_length(frame).actual());
    }
}

/// Errors a link survived (it goes on working), by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorCounts {
    /// SLCAN lines the decoder discarded, by reason.
    pub malformed_lines: DiscardCounts,
    /// BEL replies: the SLCAN adapter refused a command or a frame.
    pub adapter_refused: u64,
    /// Messages that make no sense from the peer: a reply arriving at the
    /// adapter side, a command at the host side, a frame before the channel
    /// was opened.
    pub unexpected_messages: u64,
    /// Frames the SLCAN host sent before opening the channel (`O`); the
    /// adapter side answers them with BEL, as a real adapter does.
    pub sent_while_closed: u64,
    /// Error frames reported by the CAN controller (SocketCAN), and frames
    /// of a kind this crate does not carry.
    pub bus_errors: u64,
    /// candump trace lines that could not be written.
    pub trace_failures: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.malformed_lines.total()
            + self.adapter_refused
            + self.unexpected_messages
            + self.sent_while_closed
            + self.bus_errors
            + self.trace_failures
    }
}

/// Faults injected in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionFaults {
    pub dropped: u64,
    pub duplicated: u64,
    /// Frames with one data bit flipped.
    pub corrupted: u64,
    pub delayed: u64,
    /// Frames lost in a bus-off period.
    pub lost_to_bus_off: u64,
}

impl DirectionFaults {
    pub fn total(&self) -> u64 {
        self.dropped + self.duplicated + self.corrupted + self.delayed + self.lost_to_bus_off
    }
}

/// Faults injected, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounts {
    pub send: DirectionFaults,
    pub recv: DirectionFaults,
}

/// Why a link operation failed. Messages say what to do about it.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("cannot open {device}: {}", open_hint(source))]
    Open {
        device: String,
        #[source]
        source: io::Error,
    },
    #[error("{device}: {action} failed: {source}")]
    Io {
        device: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{device}: the other end hung up (adapter unplugged, or the peer process exited)")]
    Disconnected { device: String },
    #[error(
        "{device}: the SLCAN adapter refused `{command}` (answered BEL) — close any other \
         program using it (another maslow run, slcand, a terminal), or unplug and replug it"
    )]
    AdapterRefused { device: String, command: String },
    #[error(
        "{device}: no reply to `{command}` within {timeout:?} — is it an SLCAN adapter \
         (CANable/USBtin with slcan firmware, not candleLight/gs_usb), and is the other end \
         of the pty being served?"
    )]
    NoReply {
        device: String,
        command: String,
        timeout: Duration,
    },
    #[error(
        "{device}: the SLCAN host has not opened the channel yet (no `O` received); \
         wait for it with SlcanBus::wait_until_open"
    )]
    NotOpen { device: String },
    #[error(
        "{bitrate} bit/s is not an SLCAN bitrate; use 10000, 20000, 50000, 100000, 125000, \
         250000, 500000, 800000 or 1000000"
    )]
    UnsupportedBitrate { bitrate: u32 },
    #[error("bus off (injected fault period): frames are lost until the bus recovers")]
    BusOff,
    #[error(
        "no CAN interface `{name}` — for a virtual one: sudo modprobe vcan && \
         sudo ip link add dev {name} type vcan && sudo ip link set up {name}"
    )]
    NoSuchInterface { name: String },
    #[error("{0} must be created inside a tokio runtime (with IO and time enabled)")]
    NoRuntime(&'static str),
    #[error("frame cannot be carried: {0}")]
    Frame(#[from] FrameError),
}

/// Why opening a device failed, in words that say what to fix.
fn open_hint(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied — add yourself to the dialout \
             group (sudo usermod -aG dialout $USER) and log in again"
            .to_owned(),
        io::ErrorKind::NotFound => "no such device — is the adapter plugged in? \
             (ls /dev/ttyACM* /dev/ttyUSB*)"
            .to_owned(),
        // EBUSY, or the exclusive lock (flock) held elsewhere.
        io::ErrorKind::ResourceBusy | io::ErrorKind::WouldBlock => {
            "the device is in use by another program (another maslow run, slcand, a terminal, \
             or ModemManager)"
                .to_owned()
        }
        _ => e.to_string(),
    }
}

/// Why a non-async [`try_recv`](crate::in_process::InProcessBus::try_recv)
/// returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TryRecvError {
    #[error("no frame waiting")]
    Empty,
    #[error("every other node of the in-process bus was dropped")]
    Disconnected,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_say_what_to_fix() {
        let e = LinkError::Open {
            device: "/dev/ttyACM0".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            e.to_string(),
            "cannot open /dev/ttyACM0: permission denied — add yourself to the dialout group \
             (sudo usermod -aG dialout $USER) and log in again"
        );
        let e = LinkError::Open {
            device: "/dev/ttyACM0".into(),
            source: io::Error::from_raw_os_error(16),
        };
        assert!(e.to_string().contains("in use by another program"), "{e}");
        let e = LinkError::NoSuchInterface {
            name: "vcan0".into(),
        };
        assert!(e.to_string().contains("ip link add dev vcan0 type vcan"));
    }

    #[test]
    fn stats_count_bits_with_stuffing() {
        let f = CanFrame::new(crate::CanId::Standard(0x123), &[0xDE, 0xAD]).unwrap();
        let mut s = LinkStats::default();
        s.count_sent(&f);
        s.count_received(&f);
        s.count_received(&f);
        assert_eq!((s.frames_sent, s.bits_sent), (1, 64));
        assert_eq!((s.frames_received, s.bits_received), (2, 128));
    }
}
