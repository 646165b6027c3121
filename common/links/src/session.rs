//! SLCAN sessions, sans IO: how a host opens an adapter ([`HostOpen`]) and
//! how an adapter answers a host ([`AdapterEmulator`]).
//!
//! The host's open sequence is `C` (close whatever was open; its reply, CR
//! or BEL, or none at all, is ignored), then `Sn` (bitrate), then `O`
//! (open); each of the last two must be answered by CR, and a BEL means the
//! adapter refused. The emulator is the other end: the rig's side of a
//! pseudo-terminal pair, so a firmware process that opens the pty as if it
//! were a CANable gets a CANable's replies. Both are driven by decoded
//! [`Event`]s and write their bytes into a caller's buffer, so they are
//! tested here without any pty.

use crate::frame::CanFrame;
use crate::slcan::{encode_event, Bitrate, Command, Event, Status, MAX_ENCODED_LEN};
use thiserror::Error;

/// Where the host's open sequence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStep {
    /// `C` sent; any reply (or none) moves on.
    Close,
    /// `Sn` sent; waiting for CR.
    SetBitrate,
    /// `O` sent; waiting for CR.
    Open,
    /// The channel is open.
    Done,
}

/// What the host does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenProgress {
    /// Send this command, then wait for its reply.
    Send(Command),
    /// Not a reply; keep waiting.
    Waiting,
    /// The channel is open.
    Done,
}

/// Why the open sequence failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("adapter refused {0:?} (answered BEL)")]
    Refused(Command),
    #[error("no reply to {0:?}")]
    NoReply(Command),
}

/// The host's open sequence: `C`, `Sn`, `O`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOpen {
    bitrate: Bitrate,
    step: OpenStep,
}

impl HostOpen {
    pub fn new(bitrate: Bitrate) -> Self {
        HostOpen {
            bitrate,
            step: OpenStep::Close,
        }
    }

    /// The first command to send: `C`.
    pub fn start(&self) -> Command {
        Command::Close
    }

    pub fn step(&self) -> OpenStep {
        self.step
    }

    /// The command whose reply is awaited, if any.
    pub fn awaiting(&self) -> Option<Command> {
        match self.step {
            OpenStep::Close => Some(Command::Close),
            OpenStep::SetBitrate => Some(Command::SetBitrate(self.bitrate)),
            OpenStep::Open => Some(Command::Open),
            OpenStep::Done => None,
        }
    }

    /// Feed a decoded event from the adapter. Events other than CR and BEL
    /// (stale frames from before the close, acks) are not replies.
    pub fn on_event(&mut self, event: &Event) -> Result<OpenProgress, OpenError> {
        let ok = match event {
            Event::Ok => true,
            Event::Error => false,
            _ => return Ok(OpenProgress::Waiting),
        };
        match self.step {
            OpenStep::Close => Ok(self.advance()),
            OpenStep::SetBitrate | OpenStep::Open if ok => Ok(self.advance()),
            OpenStep::SetBitrate | OpenStep::Open => match self.awaiting() {
                Some(command) => Err(OpenError::Refused(command)),
                None => Ok(OpenProgress::Done),
            },
            OpenStep::Done => Ok(OpenProgress::Done),
        }
    }

    /// No reply came in time: fine after `C` (a closed adapter may stay
    /// silent), an error after `Sn` or `O`.
    pub fn on_timeout(&mut self) -> Result<OpenProgress, OpenError> {
        match self.step {
            OpenStep::Close => Ok(self.advance()),
            OpenStep::Done => Ok(OpenProgress::Done),
            _ => match self.awaiting() {
                Some(command) => Err(OpenError::NoReply(command)),
                None => Ok(OpenProgress::Done),
            },
        }
    }

    fn advance(&mut self) -> OpenProgress {
        self.step = match self.step {
            OpenStep::Close => OpenStep::SetBitrate,
            OpenStep::SetBitrate => OpenStep::Open,
            OpenStep::Open | OpenStep::Done => OpenStep::Done,
        };
        match self.awaiting() {
            Some(command) => OpenProgress::Send(command),
            None => OpenProgress::Done,
        }
    }
}

/// What the emulated adapter made of one event from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterAction {
    /// A frame the host put on the bus: deliver it to the rig.
    Deliver(CanFrame),
    /// A command, answered.
    Answered(Command),
    /// Refused with BEL: a frame while the channel is closed.
    RefusedClosed,
    /// Refused with BEL: a command not allowed now (`Sn` or `Z` while
    /// open, `O` twice).
    Refused(Command),
    /// A reply or status line, which a host never sends: ignored.
    Unexpected,
}

/// An SLCAN adapter's replies, as a CANable (slcan firmware) or Lawicel
/// CANUSB gives them: CR for `Sn`, `O`, `C`, `Zn`; `F00` for `F`, `V1013`
/// for `V`, `NMSLW` for `N`; BEL for a frame while closed, for `Sn`/`Zn`
/// while open and for `O` while open. Frames are delivered without a `z`
/// acknowledgement (CANable behaviour; hosts accept both) and without
/// timestamps, even after `Z1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdapterEmulator {
    open: bool,
    bitrate: Option<Bitrate>,
}

impl AdapterEmulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the host has opened the channel (`O`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The bitrate the host set (`Sn`), if any.
    pub fn bitrate(&self) -> Option<Bitrate> {
        self.bitrate
    }

    /// Handle one event from the host; the reply, if any, is appended to
    /// `reply`.
    pub fn on_event(&mut self, event: &Event, reply: &mut Vec<u8>) -> AdapterAction {
        let ok = |reply: &mut Vec<u8>, event: Event, command: Command| {
            push_event(reply, &event);
            AdapterAction::Answered(command)
        };
        let refuse = |reply: &mut Vec<u8>, command: Command| {
            push_event(reply, &Event::Error);
            AdapterAction::Refused(command)
        };
        match *event {
            Event::Frame { frame, .. } if self.open => AdapterAction::Deliver(frame),
            Event::Frame { .. } => {
                push_event(reply, &Event::Error);
                AdapterAction::RefusedClosed
            }
            Event::Command(command) => match command {
                Command::SetBitrate(_) | Command::Timestamps(_) | Command::Open if self.open => {
                    refuse(reply, command)
                }
                Command::SetBitrate(b) => {
                    self.bitrate = Some(b);
                    ok(reply, Event::Ok, command)
                }
                Command::Open => {
                    self.open = true;
                    ok(reply, Event::Ok, command)
                }
                Command::Close => {
                    self.open = false;
                    ok(reply, Event::Ok, command)
                }
                Command::Timestamps(_) => ok(reply, Event::Ok, command),
                Command::ReadStatus => ok(reply, Event::Status(Status(0)), command),
                Command::ReadVersion => ok(
                    reply,
                    Event::Version {
                        hardware: 0x10,
                        software: 0x13,
                    },
                    command,
                ),
                Command::ReadSerial => ok(reply, Event::Serial(*b"MSLW"), command),
                // The decoder yields frame lines as `Event::Frame`, never as
                // this; answer like any other frame if it ever comes.
                Command::Transmit(frame) if self.open => AdapterAction::Deliver(frame),
                Command::Transmit(_) => {
                    push_event(reply, &Event::Error);
                    AdapterAction::RefusedClosed
                }
            },
            Event::Ok
            | Event::Error
            | Event::TransmitAck { .. }
            | Event::Status(_)
            | Event::Version { .. }
            | Event::Serial(_) => AdapterAction::Unexpected,
        }
    }
}

/// Append an encoded event. The replies above always encode (valid serial,
/// buffer of the maximum size).
fn push_event(out: &mut Vec<u8>, event: &Event) {
    let mut buf = [0u8; MAX_ENCODED_LEN];
    if let Ok(n) = encode_event(event, &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::CanId;
    use crate::slcan::{encode, Decoder};

    /// Run a host open sequence against the emulator through the codec,
    /// byte for byte, as it would go over a pty.
    #[test]
    fn a_host_opens_the_emulated_adapter() {
        let mut host = HostOpen::new(Bitrate::Kbit500);
        let mut adapter = AdapterEmulator::new();
        let (mut to_adapter, mut to_host) = (Decoder::new(), Decoder::new());
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        let mut progress = OpenProgress::Send(host.start());
        while let OpenProgress::Send(command) = progress {
            sent.push(command);
            let mut buf = [0u8; MAX_ENCODED_LEN];
            let n = encode(&command, &mut buf).unwrap();
            to_adapter.push(&buf[..n]);
            let mut reply = Vec::new();
            for ev in to_adapter.by_ref() {
                adapter.on_event(&ev.unwrap(), &mut reply);
            }
            wire.extend_from_slice(&reply);
            to_host.push(&reply);
            let ev = to_host.next().unwrap().unwrap();
            progress = host.on_event(&ev).unwrap();
        }
        assert_eq!(progress, OpenProgress::Done);
        assert_eq!(
            sent,
            [
                Command::Close,
                Command::SetBitrate(Bitrate::Kbit500),
                Command::Open
            ]
        );
        assert_eq!(wire, b"\r\r\r");
        assert!(adapter.is_open());
        assert_eq!(adapter.bitrate(), Some(Bitrate::Kbit500));
    }

    #[test]
    fn the_close_reply_is_ignored_and_may_be_missing() {
        let mut host = HostOpen::new(Bitrate::Kbit125);
        assert_eq!(
            host.on_event(&Event::Error),
            Ok(OpenProgress::Send(Command::SetBitrate(Bitrate::Kbit125)))
        );
        let mut host = HostOpen::new(Bitrate::Kbit125);
        assert_eq!(
            host.on_timeout(),
            Ok(OpenProgress::Send(Command::SetBitrate(Bitrate::Kbit125)))
        );
        // Stale frames are not replies.
        let f = CanFrame::new(CanId::Standard(1), &[]).unwrap();
        let stale = Event::Frame {
            frame: f,
            timestamp_ms: None,
        };
        assert_eq!(host.on_event(&stale), Ok(OpenProgress::Waiting));
        assert_eq!(host.step(), OpenStep::SetBitrate);
    }

    #[test]
    fn bel_or_silence_after_bitrate_or_open_fails() {
        let mut host = HostOpen::new(Bitrate::Kbit500);
        host.on_timeout().unwrap();
        assert_eq!(
            host.on_event(&Event::Error),
            Err(OpenError::Refused(Command::SetBitrate(Bitrate::Kbit500)))
        );
        let mut host = HostOpen::new(Bitrate::Kbit500);
        host.on_timeout().unwrap();
        host.on_event(&Event::Ok).unwrap();
        assert_eq!(host.on_timeout(), Err(OpenError::NoReply(Command::Open)));
        assert_eq!(
            host.on_event(&Event::Error),
            Err(OpenError::Refused(Command::Open))
        );
        assert_eq!(host.on_event(&Event::Ok), Ok(OpenProgress::Done));
        assert_eq!(host.awaiting(), None);
    }

    #[test]
    fn the_emulator_answers_like_an_adapter() {
        let mut a = AdapterEmulator::new();
        let f = CanFrame::new(CanId::Standard(0x123), &[1]).unwrap();
        let frame = Event::Frame {
            frame: f,
            timestamp_ms: None,
        };
        let cases: &[(Event, &[u8], AdapterAction)] = &[
            (frame, b"\x07", AdapterAction::RefusedClosed),
            (
                Event::Command(Command::ReadVersion),
                b"V1013\r",
                AdapterAction::Answered(Command::ReadVersion),
            ),
            (
                Event::Command(Command::ReadStatus),
                b"F00\r",
                AdapterAction::Answered(Command::ReadStatus),
            ),
            (
                Event::Command(Command::ReadSerial),
                b"NMSLW\r",
                AdapterAction::Answered(Command::ReadSerial),
            ),
            (
                Event::Command(Command::SetBitrate(Bitrate::Kbit500)),
                b"\r",
                AdapterAction::Answered(Command::SetBitrate(Bitrate::Kbit500)),
            ),
            (
                Event::Command(Command::Open),
                b"\r",
                AdapterAction::Answered(Command::Open),
            ),
            (frame, b"", AdapterAction::Deliver(f)),
            (
                Event::Command(Command::Open),
                b"\x07",
                AdapterAction::Refused(Command::Open),
            ),
            (
                Event::Command(Command::SetBitrate(Bitrate::Kbit10)),
                b"\x07",
                AdapterAction::Refused(Command::SetBitrate(Bitrate::Kbit10)),
            ),
            (Event::Ok, b"", AdapterAction::Unexpected),
            (
                Event::Command(Command::Close),
                b"\r",
                AdapterAction::Answered(Command::Close),
            ),
            (frame, b"\x07", AdapterAction::RefusedClosed),
        ];
        for (event, want_reply, want_action) in cases {
            let mut reply = Vec::new();
            assert_eq!(a.on_event(event, &mut reply), *want_action, "{event:?}");
            assert_eq!(reply, *want_reply, "{event:?}");
        }
        assert_eq!(a.bitrate(), Some(Bitrate::Kbit500));
    }
}
