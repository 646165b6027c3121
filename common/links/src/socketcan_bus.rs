//! SocketCAN (Linux `can0`, `vcan0`, …) through the `socketcan` crate's
//! tokio socket: [`SocketCanBus`], and the frame conversions
//! [`to_socketcan`] / [`from_socketcan`].
//!
//! The kernel queues frames, so nothing is buffered here: `send` writes the
//! frame, `flush` has nothing to do. Error frames (only delivered if the
//! socket asks for them) and anything not a classic frame are counted as
//! bus errors and skipped.

use crate::bus::{CanBus, LinkError, LinkStats};
use crate::frame::{CanFrame, CanId};
use async_trait::async_trait;
use socketcan::{EmbeddedFrame, ExtendedId, Id, StandardId};

/// Why a SocketCAN frame has no [`CanFrame`] counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("an error frame (bus error report), not a data or remote frame")]
    ErrorFrame,
    #[error("frame fields out of range for classic CAN")]
    OutOfRange,
}

/// Our frame as a SocketCAN frame. Every [`CanFrame`] has one; `None` is
/// not expected.
pub fn to_socketcan(frame: &CanFrame) -> Option<socketcan::CanFrame> {
    let id: Id = match frame.id() {
        CanId::Standard(id) => StandardId::new(id)?.into(),
        CanId::Extended(id) => ExtendedId::new(id)?.into(),
    };
    if frame.is_remote() {
        socketcan::CanFrame::new_remote(id, usize::from(frame.dlc()))
    } else {
        socketcan::CanFrame::new(id, frame.data())
    }
}

/// A SocketCAN frame as ours.
pub fn from_socketcan(frame: &socketcan::CanFrame) -> Result<CanFrame, ConversionError> {
    if matches!(frame, socketcan::CanFrame::Error(_)) {
        return Err(ConversionError::ErrorFrame);
    }
    let id = match frame.id() {
        Id::Standard(id) => CanId::standard(id.as_raw()),
        Id::Extended(id) => CanId::extended(id.as_raw()),
    }
    .map_err(|_| ConversionError::OutOfRange)?;
    let built = if frame.is_remote_frame() {
        u8::try_from(frame.dlc())
            .map_err(|_| ConversionError::OutOfRange)
            .and_then(|dlc| CanFrame::remote(id, dlc).map_err(|_| ConversionError::OutOfRange))
    } else {
        CanFrame::new(id, frame.data()).map_err(|_| ConversionError::OutOfRange)
    };
    built
}

/// A SocketCAN interface.
pub struct SocketCanBus {
    socket: socketcan::tokio::CanSocket,
    name: String,
    stats: LinkStats,
}

impl std::fmt::Debug for SocketCanBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketCanBus")
            .field("name", &self.name)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SocketCanBus {
    /// Open interface `name` (e.g. `can0`, `vcan0`). Call inside a tokio
    /// runtime. A missing interface is [`LinkError::NoSuchInterface`],
    /// whose message says how to create a virtual one.
    pub fn open(name: &str) -> Result<Self, LinkError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LinkError::NoRuntime("a SocketCAN bus"));
        }
        let socket = socketcan::tokio::CanSocket::open(name).map_err(|source| {
            if source.raw_os_error() == Some(libc::ENODEV) {
                LinkError::NoSuchInterface {
                    name: name.to_owned(),
                }
            } else {
                LinkError::Open {
                    device: name.to_owned(),
                    source,
                }
            }
        })?;
        Ok(SocketCanBus {
            socket,
            name: name.to_owned(),
            stats: LinkStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl CanBus for SocketCanBus {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        let Some(out) = to_socketcan(frame) else {
            self.stats.errors.bus_errors += 1;
            return Ok(());
        };
        self.socket
            .write_frame(out)
            .await
            .map_err(|source| LinkError::Io {
                device: self.name.clone(),
                action: "writing a frame",
                source,
            })?;
        self.stats.count_sent(frame);
        Ok(())
    }

    /// Cancel-safe: the socket reads a whole frame or nothing.
    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        loop {
            let got = self
                .socket
                .read_frame()
                .await
                .map_err(|source| LinkError::Io {
                    device: self.name.clone(),
                    action: "reading a frame",
                    source,
                })?;
            match from_socketcan(&got) {
                Ok(frame) => {
                    self.stats.count_received(&frame);
                    return Ok(frame);
                }
                Err(_) => self.stats.errors.bus_errors += 1,
            }
        }
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        Ok(())
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::frame::strategy::arb_frame;

    #[test]
    fn known_frames_convert_field_by_field() {
        let f = CanFrame::new(CanId::Standard(0x123), &[0xDE, 0xAD]).unwrap();
        let s = to_socketcan(&f).unwrap();
        assert_eq!(s.id(), Id::Standard(StandardId::new(0x123).unwrap()));
        assert_eq!(s.data(), &[0xDE, 0xAD]);
        assert!(!s.is_remote_frame());
        // A low extended id stays extended (socketcan's from_raw_id would
        // make it standard).
        let e = CanFrame::remote(CanId::Extended(0x7), 3).unwrap();
        let s = to_socketcan(&e).unwrap();
        assert!(s.is_extended());
        assert!(s.is_remote_frame());
        assert_eq!(s.dlc(), 3);
        assert_eq!(from_socketcan(&s), Ok(e));
        let err = socketcan::CanFrame::Error(
            socketcan::CanErrorFrame::new_error(0x004, &[0; 8]).unwrap(),
        );
        assert_eq!(from_socketcan(&err), Err(ConversionError::ErrorFrame));
    }

    proptest! {
        #[test]
        fn frames_round_trip_through_socketcan(f in arb_frame()) {
            let s = to_socketcan(&f).unwrap();
            prop_assert_eq!(from_socketcan(&s), Ok(f));
        }
    }

    /// Needs a `vcan0` interface; where there is none (CI, this VM), says
    /// how to make one and passes.
    #[tokio::test]
    async fn vcan0_round_trip_when_present() {
        let mut a = match SocketCanBus::open("vcan0") {
            Ok(bus) => bus,
            Err(e @ LinkError::NoSuchInterface { .. }) => {
                println!("skipped: no vcan0 interface ({e})");
                return;
            }
            Err(e) => {
                println!("skipped: cannot open vcan0 ({e})");
                return;
            }
        };
        let mut b = SocketCanBus::open("vcan0").unwrap();
        let f = CanFrame::new(CanId::Extended(0x1234_5678), &[1, 2, 3]).unwrap();
        a.send(&f).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), b.recv())
            .await
            .expect("vcan0 delivered nothing within 2 s")
            .unwrap();
        assert_eq!(got, f);
        assert_eq!(a.stats().frames_sent, 1);
        assert_eq!(b.stats().frames_received, 1);
    }

    #[tokio::test]
    async fn a_missing_interface_says_how_to_create_one() {
        let e = SocketCanBus::open("nosuchcan9").unwrap_err();
        match e {
            LinkError::NoSuchInterface { .. } => {
                assert!(e.to_string().contains("type vcan"))
            }
            // Some sandboxes refuse CAN sockets altogether.
            other => println!("skipped: {other}"),
        }
    }
}
