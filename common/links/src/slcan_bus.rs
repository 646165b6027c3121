//! SLCAN over a serial port or pty end: [`SlcanBus`], either side.
//!
//! * Host side ([`SlcanBus::open`], [`SlcanBus::host`]): talks to a
//!   CANable/USBtin-class adapter. Opening runs `C`, `Sn`, `O` and checks
//!   the replies ([`HostOpen`]).
//! * Adapter side ([`SlcanBus::adapter_side`],
//!   [`SlcanBus::adapter_on_pty`]): emulates the adapter at the device end
//!   of a pty ([`AdapterEmulator`]) — answers `S`/`O`/`C`/`F`/`V`/`N`/`Z`,
//!   delivers frames the host transmits, and sends frames "from the bus" as
//!   received-frame lines. A firmware process that opens the other end as if
//!   it were a CANable gets a CANable's replies.
//!
//! Sends are buffered and written by [`CanBus::flush`] (one `write` per
//! burst; a burst above 8 KiB is written as it grows). While waiting to
//! write, the bus also reads, and while waiting to read it also writes, so
//! two sides that both send a lot cannot deadlock on full tty buffers. The
//! async machinery is `AsyncFd` (see [`crate::serial`] for why).

use crate::bus::{CanBus, LinkError, LinkStats};
use crate::frame::CanFrame;
use crate::serial::{Pty, SerialIo};
use crate::session::{AdapterAction, AdapterEmulator, HostOpen, OpenError, OpenProgress};
use crate::slcan::{encode, Bitrate, Command, Decoder, Event, MAX_ENCODED_LEN};
use async_trait::async_trait;
use serialport::TTYPort;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::time::Duration;

/// How long the host waits for each reply while opening.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// Buffered output above which `send` writes without waiting for `flush`.
const WRITE_THRESHOLD: usize = 8 * 1024;
/// Baud rate for the serial device; USB CDC adapters ignore it.
const SERIAL_BAUD: u32 = 115_200;

#[derive(Debug)]
enum Role {
    Host {
        /// Replies (CR, BEL) collected while the open sequence runs.
        replies: Option<VecDeque<Event>>,
        /// Replies seen so far while opening.
        replies_seen: usize,
        /// Frames seen while opening, with the number of replies before
        /// each: those after the last reply (the one to `O`) are live
        /// traffic that arrived in the same read; earlier ones are stale.
        early_frames: Vec<(usize, CanFrame)>,
    },
    Adapter(AdapterEmulator),
}

/// SLCAN over a serial device or a pty end; see the module docs.
#[derive(Debug)]
pub struct SlcanBus {
    io: SerialIo,
    decoder: Decoder,
    role: Role,
    rx: VecDeque<CanFrame>,
    tx: Vec<u8>,
    read_buf: Box<[u8; 4096]>,
    stats: LinkStats,
}

impl SlcanBus {
    /// Open an SLCAN adapter at `path` (e.g. `/dev/ttyACM0`) and its CAN
    /// channel at `bitrate_bps` (one of the `S0`..`S8` rates).
    pub async fn open(path: &str, bitrate_bps: u32) -> Result<Self, LinkError> {
        let bitrate = slcan_bitrate(bitrate_bps)?;
        let io = SerialIo::open(path, SERIAL_BAUD)?;
        Self::start_host(io, bitrate, REPLY_TIMEOUT).await
    }

    /// Host side on an already-open port (e.g. a pty end whose other end is
    /// served by [`SlcanBus::adapter_side`]); runs the open sequence.
    pub async fn host(port: TTYPort, bitrate_bps: u32) -> Result<Self, LinkError> {
        let bitrate = slcan_bitrate(bitrate_bps)?;
        let io = SerialIo::from_port(port, None)?;
        Self::start_host(io, bitrate, REPLY_TIMEOUT).await
    }

    /// Adapter side on an already-open port: no handshake; answers the
    /// host's commands. Call inside a tokio runtime.
    pub fn adapter_side(port: TTYPort) -> Result<Self, LinkError> {
        Ok(Self::new(
            SerialIo::from_port(port, None)?,
            Role::Adapter(AdapterEmulator::new()),
        ))
    }

    /// Adapter side on the master end of `pty`, keeping its slave open so
    /// a child process can open [`Pty::slave_path`] at any time. (A child
    /// that exits is then not seen as a hang-up.)
    pub fn adapter_on_pty(pty: Pty) -> Result<Self, LinkError> {
        Ok(Self::new(
            SerialIo::from_pty_master(pty)?,
            Role::Adapter(AdapterEmulator::new()),
        ))
    }

    /// The device, for messages.
    pub fn device(&self) -> &str {
        &self.io.device
    }

    /// Adapter side: whether the host has opened the channel (`O`).
    /// Always true on the host side once constructed.
    pub fn is_open(&self) -> bool {
        match &self.role {
            Role::Host { .. } => true,
            Role::Adapter(a) => a.is_open(),
        }
    }

    /// Adapter side: serve the port (answering commands, queueing frames)
    /// until the host has opened the channel. Returns at once on the host
    /// side. The reply to `O` is written before it returns.
    pub async fn wait_until_open(&mut self) -> Result<(), LinkError> {
        while !self.is_open() {
            self.pump().await?;
        }
        self.flush().await
    }

    fn new(io: SerialIo, role: Role) -> Self {
        SlcanBus {
            io,
            decoder: Decoder::new(),
            role,
            rx: VecDeque::new(),
            tx: Vec::new(),
            read_buf: Box::new([0; 4096]),
            stats: LinkStats::default(),
        }
    }

    async fn start_host(
        io: SerialIo,
        bitrate: Bitrate,
        timeout: Duration,
    ) -> Result<Self, LinkError> {
        let mut bus = Self::new(
            io,
            Role::Host {
                replies: Some(VecDeque::new()),
                replies_seen: 0,
                early_frames: Vec::new(),
            },
        );
        bus.run_open(bitrate, timeout).await?;
        let role = std::mem::replace(
            &mut bus.role,
            Role::Host {
                replies: None,
                replies_seen: 0,
                early_frames: Vec::new(),
            },
        );
        if let Role::Host {
            replies_seen,
            early_frames,
            ..
        } = role
        {
            for (replies_before, frame) in early_frames {
                if replies_before == replies_seen {
                    bus.stats.count_received(&frame);
                    bus.rx.push_back(frame);
                } else {
                    bus.stats.errors.unexpected_messages += 1;
                }
            }
        }
        Ok(bus)
    }

    async fn run_open(&mut self, bitrate: Bitrate, timeout: Duration) -> Result<(), LinkError> {
        let mut open = HostOpen::new(bitrate);
        let mut progress = OpenProgress::Send(open.start());
        let mut deadline = tokio::time::Instant::now() + timeout;
        let fail = |bus: &Self, e: OpenError| match e {
            OpenError::Refused(c) => LinkError::AdapterRefused {
                device: bus.io.device.clone(),
                command: command_text(&c),
            },
            OpenError::NoReply(c) => LinkError::NoReply {
                device: bus.io.device.clone(),
                command: command_text(&c),
                timeout,
            },
        };
        loop {
            match progress {
                OpenProgress::Done => return Ok(()),
                OpenProgress::Send(command) => {
                    self.queue(&command);
                    self.flush().await?;
                    deadline = tokio::time::Instant::now() + timeout;
                }
                OpenProgress::Waiting => {}
            }
            let reply = match &mut self.role {
                Role::Host {
                    replies: Some(replies),
                    ..
                } => replies.pop_front(),
                _ => None,
            };
            progress = match reply {
                Some(event) => open.on_event(&event).map_err(|e| fail(self, e))?,
                None => match tokio::time::timeout_at(deadline, self.pump()).await {
                    Ok(r) => r.map(|()| OpenProgress::Waiting)?,
                    Err(_elapsed) => open.on_timeout().map_err(|e| fail(self, e))?,
                },
            };
        }
    }

    fn queue(&mut self, command: &Command) {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        if let Ok(n) = encode(command, &mut buf) {
            self.tx.extend_from_slice(&buf[..n]);
        }
    }

    /// Wait until the port is readable (or writable, while output is
    /// queued), then read what is there and write what it takes. Cancel-
    /// safe: bytes move only inside a completed `try_io`.
    async fn pump(&mut self) -> Result<(), LinkError> {
        let want_write = !self.tx.is_empty();
        let io = &self.io;
        tokio::select! {
            biased;
            ready = io.fd.writable(), if want_write => {
                let mut guard = ready.map_err(|e| io.wait_error(e))?;
                if let Ok(r) = guard.try_io(|f| f.get_ref().write(&self.tx)) {
                    let n = r.map_err(|e| io.write_error(e))?;
                    self.tx.drain(..n);
                }
            }
            ready = io.fd.readable() => {
                let mut guard = ready.map_err(|e| io.wait_error(e))?;
                let buf = &mut self.read_buf[..];
                if let Ok(r) = guard.try_io(|f| f.get_ref().read(buf)) {
                    let n = io.classify_read(r)?;
                    drop(guard);
                    self.ingest(n);
                }
            }
        }
        Ok(())
    }

    /// Decode the first `n` bytes of the read buffer and act on them.
    fn ingest(&mut self, n: usize) {
        self.decoder.push(&self.read_buf[..n]);
        for result in self.decoder.by_ref() {
            let Ok(event) = result else {
                continue; // counted by the decoder
            };
            match &mut self.role {
                Role::Host {
                    replies,
                    replies_seen,
                    early_frames,
                } => match event {
                    Event::Frame { frame, .. } => {
                        if replies.is_some() {
                            // Stale (queued by the adapter before our `C`)
                            // or live (after the reply to `O`): decided
                            // when the open sequence ends.
                            early_frames.push((*replies_seen, frame));
                        } else {
                            self.stats.count_received(&frame);
                            self.rx.push_back(frame);
                        }
                    }
                    Event::Ok | Event::Error if replies.is_some() => {
                        *replies_seen += 1;
                        if let Some(r) = replies.as_mut() {
                            r.push_back(event);
                        }
                    }
                    Event::Error => self.stats.errors.adapter_refused += 1,
                    // Replies to transmits (`z`, or CR on some firmware)
                    // and to status requests.
                    Event::Ok
                    | Event::TransmitAck { .. }
                    | Event::Status(_)
                    | Event::Version { .. }
                    | Event::Serial(_) => {}
                    Event::Command(_) => self.stats.errors.unexpected_messages += 1,
                },
                Role::Adapter(adapter) => match adapter.on_event(&event, &mut self.tx) {
                    AdapterAction::Deliver(frame) => {
                        self.stats.count_received(&frame);
                        self.rx.push_back(frame);
                    }
                    AdapterAction::Answered(_) => {}
                    AdapterAction::RefusedClosed => self.stats.errors.sent_while_closed += 1,
                    AdapterAction::Refused(_) | AdapterAction::Unexpected => {
                        self.stats.errors.unexpected_messages += 1
                    }
                },
            }
        }
    }
}

#[async_trait]
impl CanBus for SlcanBus {
    /// Queues the frame line; written by `flush` (or here once more than
    /// 8 KiB are queued). On the adapter side, fails with
    /// [`LinkError::NotOpen`] until the host has opened the channel.
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        if !self.is_open() {
            return Err(LinkError::NotOpen {
                device: self.io.device.clone(),
            });
        }
        self.queue(&Command::Transmit(*frame));
        self.stats.count_sent(frame);
        if self.tx.len() >= WRITE_THRESHOLD {
            self.flush().await?;
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        loop {
            if let Some(frame) = self.rx.pop_front() {
                return Ok(frame);
            }
            self.pump().await?;
        }
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        while !self.tx.is_empty() {
            self.pump().await?;
        }
        Ok(())
    }

    fn stats(&self) -> LinkStats {
        let mut s = self.stats;
        s.errors.malformed_lines = self.decoder.stats().discarded;
        s
    }
}

fn slcan_bitrate(bps: u32) -> Result<Bitrate, LinkError> {
    Bitrate::from_bits_per_second(bps).ok_or(LinkError::UnsupportedBitrate { bitrate: bps })
}

/// A command as its line, without the CR, for messages.
fn command_text(command: &Command) -> String {
    let mut buf = [0u8; MAX_ENCODED_LEN];
    match encode(command, &mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n.saturating_sub(1)]).into_owned(),
        Err(_) => format!("{command:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::CanId;

    fn frame(i: u32) -> CanFrame {
        CanFrame::new(CanId::Standard((i % 0x800) as u16), &i.to_be_bytes()).unwrap()
    }

    /// Host on the slave end, adapter on the master end (served in a task).
    async fn pair() -> (SlcanBus, tokio::task::JoinHandle<SlcanBus>) {
        let pty = Pty::open().unwrap();
        let slave = pty.slave.try_clone_native().unwrap();
        let mut adapter = SlcanBus::adapter_on_pty(pty).unwrap();
        let served = tokio::spawn(async move {
            adapter.wait_until_open().await.unwrap();
            adapter
        });
        let host = SlcanBus::host(slave, 500_000).await.unwrap();
        (host, served)
    }

    #[tokio::test]
    async fn a_host_opens_the_adapter_side_and_frames_flow_both_ways() {
        let (mut host, served) = pair().await;
        let mut adapter = served.await.unwrap();
        assert!(adapter.is_open());
        for i in 0..10 {
            host.send(&frame(i)).await.unwrap();
        }
        host.flush().await.unwrap();
        for i in 0..10 {
            assert_eq!(adapter.recv().await.unwrap(), frame(i));
            adapter.send(&frame(100 + i)).await.unwrap();
        }
        adapter.flush().await.unwrap();
        for i in 0..10 {
            assert_eq!(host.recv().await.unwrap(), frame(100 + i));
        }
        assert_eq!(host.stats().errors.total(), 0);
        assert_eq!(adapter.stats().errors.total(), 0);
    }

    #[tokio::test]
    async fn the_adapter_side_refuses_to_send_before_open() {
        let pty = Pty::open().unwrap();
        let mut adapter = SlcanBus::adapter_on_pty(pty).unwrap();
        let e = adapter.send(&frame(1)).await.unwrap_err();
        assert!(matches!(e, LinkError::NotOpen { .. }), "{e}");
        assert!(e.to_string().contains("wait_until_open"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_adapter_is_a_clear_error() {
        let pty = Pty::open().unwrap();
        let slave = pty.slave.try_clone_native().unwrap();
        let _master_unserved = pty;
        tokio::time::pause();
        let e = SlcanBus::host(slave, 500_000).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no reply to `S6`"), "{msg}");
    }

    #[tokio::test]
    async fn unsupported_bitrates_are_refused() {
        let pty = Pty::open().unwrap();
        let e = SlcanBus::host(pty.slave, 333_333).await.unwrap_err();
        assert!(e
            .to_string()
            .contains("333333 bit/s is not an SLCAN bitrate"));
    }

    #[tokio::test]
    async fn garbage_from_the_host_is_counted_not_fatal() {
        use tokio::io::AsyncWriteExt;
        let pty = Pty::open().unwrap();
        let slave = pty.slave.try_clone_native().unwrap();
        let mut adapter = SlcanBus::adapter_on_pty(pty).unwrap();
        let mut raw = crate::serial::SerialLink::from_port(slave).unwrap();
        raw.write_all(b"O\rt12\rXYZ\rt1230\rt1231AA\r")
            .await
            .unwrap();
        assert_eq!(adapter.recv().await.unwrap().data(), &[] as &[u8]);
        assert_eq!(adapter.recv().await.unwrap().data(), &[0xAA]);
        let s = adapter.stats();
        assert_eq!(s.errors.malformed_lines.total(), 2);
        assert_eq!(s.frames_received, 2);
    }

    /// Found by the SIL rig under load: the adapter's reply to `O` and the
    /// first frames can arrive in one read. Frames before the reply to `C`
    /// are stale and dropped (counted); frames after the reply to `O` are
    /// traffic and must be delivered.
    #[tokio::test]
    async fn frames_in_the_same_read_as_the_open_reply_are_kept() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pty = Pty::open().unwrap();
        let slave = pty.slave.try_clone_native().unwrap();
        let mut adapter = crate::serial::SerialLink::on_pty_master(pty).unwrap();
        let served = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 64];
            // A stale frame the adapter held from before, then the replies;
            // the reply to `O` shares its write with two live frames.
            adapter.write_all(b"t7FF1EE\r").await.unwrap();
            for reply in [&b"\r"[..], b"\r", b"\rt1001AA\rt2000\r"] {
                loop {
                    let n = adapter.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                    if seen.ends_with(b"\r") {
                        break;
                    }
                }
                seen.clear();
                adapter.write_all(reply).await.unwrap();
            }
            adapter
        });
        let mut host = SlcanBus::host(slave, 500_000).await.unwrap();
        let _adapter = served.await.unwrap();
        let within = std::time::Duration::from_secs(2);
        let first = tokio::time::timeout(within, host.recv()).await;
        assert_eq!(
            first.expect("the live frame arrives").unwrap().data(),
            &[0xAA]
        );
        let second = tokio::time::timeout(within, host.recv()).await;
        assert_eq!(
            second.expect("the second live frame arrives").unwrap().id(),
            CanId::Standard(0x200)
        );
        assert_eq!(host.stats().frames_received, 2);
        assert_eq!(host.stats().errors.unexpected_messages, 1);
    }
}
