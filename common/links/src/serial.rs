//! Serial ports and pseudo-terminals, async: the byte pipe under
//! [`SlcanBus`](crate::slcan_bus::SlcanBus), and [`SerialLink`] for the
//! smart meter's P1 port (raw bytes, 115200 8N1 by default).
//!
//! Ports are opened with the `serialport` crate (no libudev), put in raw
//! mode (no echo, no CR/LF translation, no line editing), made
//! non-blocking and registered with tokio's reactor through
//! [`tokio::io::unix::AsyncFd`]. Why `AsyncFd` and not a reader thread: a
//! tty fd is pollable, so the reactor wakes us exactly when bytes arrive
//! or the port can take more — no thread per port, no extra copy through a
//! channel, no busy-polling, and cancellation is trivially safe (bytes are
//! read only inside a completed `try_io`, never inside a dropped future).
//! The cost: the port is served only while someone awaits on it, so the
//! adapter side of an SLCAN pty answers commands only while its owner is in
//! `recv`/`send`/`flush` (see `SlcanBus::wait_until_open`).
//!
//! [`Pty`] makes a pseudo-terminal pair: the master end stays in this
//! process, the slave's device path ([`Pty::slave_path`]) goes to a child
//! process that opens it like `/dev/ttyACM0`.

use crate::bus::LinkError;
use serialport::{SerialPort, TTYPort};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Baud rate of the DSMR 5 P1 port.
pub const P1_BAUD: u32 = 115_200;

/// A pseudo-terminal pair.
pub struct Pty {
    /// The end this process keeps (the "device" side).
    pub master: TTYPort,
    /// The other end, already open here; a child process opens it again by
    /// [`Pty::slave_path`]. Keep it open until the child has opened it, or
    /// the master reads a hang-up.
    pub slave: TTYPort,
    slave_path: String,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty")
            .field("slave_path", &self.slave_path)
            .finish_non_exhaustive()
    }
}

impl Pty {
    /// A new pair, both ends in raw mode.
    pub fn open() -> Result<Self, LinkError> {
        let (master, slave) = TTYPort::pair().map_err(|e| LinkError::Open {
            device: "a pseudo-terminal pair".to_owned(),
            source: e.into(),
        })?;
        let slave_path = slave.name().unwrap_or_default();
        for port in [&master, &slave] {
            set_raw(port.as_raw_fd()).map_err(|source| LinkError::Io {
                device: slave_path.clone(),
                action: "setting raw mode",
                source,
            })?;
        }
        Ok(Pty {
            master,
            slave,
            slave_path,
        })
    }

    /// The slave's device path, e.g. `/dev/pts/3`.
    pub fn slave_path(&self) -> &str {
        &self.slave_path
    }
}

/// An open serial device or pty end, registered with tokio.
#[derive(Debug)]
pub(crate) struct SerialIo {
    pub(crate) fd: AsyncFd<File>,
    pub(crate) device: String,
    /// Held open and never read: the slave of a [`Pty`] whose master this
    /// is, so the master does not see a hang-up before a child opens it.
    _keep_open: Option<File>,
}

impl SerialIo {
    /// Open `path` at `baud`, 8N1, no flow control. Exclusive (TIOCEXCL
    /// and `flock`), except a pty slave (`/dev/pts/…`): the rig holds that
    /// open for its whole run, so an exclusive open would outlive a child
    /// process and keep a restarted one from opening it again.
    pub(crate) fn open(path: &str, baud: u32) -> Result<Self, LinkError> {
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .exclusive(!path.starts_with("/dev/pts/"))
            .open_native()
            .map_err(|e| LinkError::Open {
                device: path.to_owned(),
                source: open_error(e),
            })?;
        Self::from_port(port, None)
    }

    /// Wrap an open port; `device` names it in errors (defaults to the
    /// port's path).
    pub(crate) fn from_port(port: TTYPort, device: Option<String>) -> Result<Self, LinkError> {
        let device = device
            .or_else(|| port.name())
            .unwrap_or_else(|| "serial port".to_owned());
        Self::from_fd(port.into_raw_fd(), device, None)
    }

    /// The master end of `pty`, holding its slave open.
    pub(crate) fn from_pty_master(pty: Pty) -> Result<Self, LinkError> {
        let device = format!("pty master of {}", pty.slave_path);
        // SAFETY: `into_raw_fd` hands over ownership of an open fd.
        let keep = unsafe { File::from_raw_fd(pty.slave.into_raw_fd()) };
        Self::from_fd(pty.master.into_raw_fd(), device, Some(keep))
    }

    fn from_fd(
        raw: std::os::fd::RawFd,
        device: String,
        keep_open: Option<File>,
    ) -> Result<Self, LinkError> {
        // SAFETY: the caller hands over ownership of an open fd.
        let file = unsafe { File::from_raw_fd(raw) };
        let io_err = |action, source| LinkError::Io {
            device: device.clone(),
            action,
            source,
        };
        set_raw(file.as_raw_fd()).map_err(|e| io_err("setting raw mode", e))?;
        set_nonblocking(file.as_raw_fd()).map_err(|e| io_err("setting non-blocking mode", e))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LinkError::NoRuntime("a serial link"));
        }
        // SAFETY: the `File` owns its fd and the `AsyncFd` owns the `File`,
        // so the fd stays open and the same until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register(file) }
            .map_err(|e| io_err("registering with tokio", e.into()))?;
        Ok(SerialIo {
            fd,
            device,
            _keep_open: keep_open,
        })
    }

    /// Read what is there without waiting; `Ok(None)` if nothing is.
    /// A hang-up (EOF, or EIO on a pty whose other end closed) is
    /// [`LinkError::Disconnected`].
    pub(crate) fn classify_read(&self, r: io::Result<usize>) -> Result<usize, LinkError> {
        match r {
            Ok(0) => Err(self.disconnected()),
            Ok(n) => Ok(n),
            Err(e) if is_hangup(&e) => Err(self.disconnected()),
            Err(source) => Err(LinkError::Io {
                device: self.device.clone(),
                action: "reading",
                source,
            }),
        }
    }

    pub(crate) fn write_error(&self, source: io::Error) -> LinkError {
        if is_hangup(&source) {
            self.disconnected()
        } else {
            LinkError::Io {
                device: self.device.clone(),
                action: "writing",
                source,
            }
        }
    }

    pub(crate) fn wait_error(&self, source: io::Error) -> LinkError {
        LinkError::Io {
            device: self.device.clone(),
            action: "waiting for the port",
            source,
        }
    }

    fn disconnected(&self) -> LinkError {
        LinkError::Disconnected {
            device: self.device.clone(),
        }
    }
}

/// `serialport` reports a busy or locked port (EBUSY from TIOCEXCL, a held
/// `flock`) as `NoDevice`; say "busy", not "not found".
fn open_error(e: serialport::Error) -> io::Error {
    match e.kind() {
        serialport::ErrorKind::NoDevice => {
            io::Error::new(io::ErrorKind::ResourceBusy, e.description)
        }
        _ => e.into(),
    }
}

fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO) || e.kind() == io::ErrorKind::BrokenPipe
}

/// Raw mode: no echo, no canonical lines, no CR/LF translation, 8 bits.
/// Best effort on an fd that is not a tty (nothing to configure).
fn set_raw(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOTTY) {
            Ok(())
        } else {
            Err(e)
        };
    }
    // SAFETY: `t` is a valid termios from tcgetattr.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cflag |= libc::CREAD | libc::CLOCAL;
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raw bytes over a serial device or a pty end: the P1 meter port. Use it
/// through [`AsyncRead`] / [`AsyncWrite`] (e.g. `tokio::io::BufReader`).
/// A hang-up of the other end reads as end of file.
#[derive(Debug)]
pub struct SerialLink {
    io: SerialIo,
}

impl SerialLink {
    /// Open a serial device, 8N1, at `baud` ([`P1_BAUD`] for P1). Call
    /// inside a tokio runtime.
    pub fn open(path: &str, baud: u32) -> Result<Self, LinkError> {
        Ok(SerialLink {
            io: SerialIo::open(path, baud)?,
        })
    }

    /// Wrap an already-open port (e.g. one end of a [`Pty`]).
    pub fn from_port(port: TTYPort) -> Result<Self, LinkError> {
        Ok(SerialLink {
            io: SerialIo::from_port(port, None)?,
        })
    }

    /// The master end of `pty` (the meter's side); the slave stays open
    /// here until this link is dropped, for a child to open by path.
    pub fn on_pty_master(pty: Pty) -> Result<Self, LinkError> {
        Ok(SerialLink {
            io: SerialIo::from_pty_master(pty)?,
        })
    }

    /// The device's name, for messages.
    pub fn device(&self) -> &str {
        &self.io.device
    }
}

impl AsyncRead for SerialLink {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.io.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| f.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // A pty whose other end closed: end of file.
                Ok(Err(e)) if is_hangup(&e) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialLink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.io.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| f.get_ref().write(buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    /// Bytes written are in the kernel's tty buffer already.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_a_pty_untranslated_both_ways() {
        let pty = Pty::open().unwrap();
        assert!(pty.slave_path().starts_with("/dev/"), "{pty:?}");
        let slave = pty.slave.try_clone_native().unwrap();
        let mut meter = SerialLink::on_pty_master(pty).unwrap();
        let mut controller = SerialLink::from_port(slave).unwrap();
        // CR, LF, BEL and 0xFF must come through as they are (raw mode).
        let telegram: Vec<u8> =
            b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.7.0(00.318*kW)\r\n!E4A7\r\n\x07\xff".to_vec();
        meter.write_all(&telegram).await.unwrap();
        let mut got = vec![0u8; telegram.len()];
        controller.read_exact(&mut got).await.unwrap();
        assert_eq!(got, telegram);
        controller.write_all(b"ack\r\n").await.unwrap();
        let mut back = [0u8; 5];
        meter.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ack\r\n");
    }

    /// A firmware process that restarts must be able to open its pty end
    /// again while the rig holds it (and, here, while the old one is open).
    #[tokio::test]
    async fn a_pty_slave_can_be_opened_again_by_path() {
        let pty = Pty::open().unwrap();
        let path = pty.slave_path().to_owned();
        let mut meter = SerialLink::on_pty_master(pty).unwrap();
        // A real (non-pty) path would be opened exclusively; a second open
        // of the same path then says "in use".
        let e = open_error(serialport::Error::new(
            serialport::ErrorKind::NoDevice,
            "Unable to acquire exclusive lock on serial port",
        ));
        let msg = LinkError::Open {
            device: "/dev/ttyACM0".into(),
            source: e,
        }
        .to_string();
        assert!(msg.contains("in use by another program"), "{msg}");
        let first = SerialLink::open(&path, P1_BAUD).unwrap();
        let mut second = SerialLink::open(&path, P1_BAUD).unwrap();
        drop(first);
        meter.write_all(b"/XMX5\r\n").await.unwrap();
        let mut got = [0u8; 7];
        second.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"/XMX5\r\n");
    }

    #[tokio::test]
    async fn opening_a_missing_device_says_so() {
        let e = SerialLink::open("/dev/ttyNOSUCHmaslow", P1_BAUD).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("cannot open /dev/ttyNOSUCHmaslow"), "{msg}");
        assert!(msg.contains("no such device"), "{msg}");
    }

    #[test]
    fn outside_a_runtime_is_a_clear_error() {
        let pty = Pty::open().unwrap();
        let e = SerialLink::on_pty_master(pty).unwrap_err();
        assert!(matches!(e, LinkError::NoRuntime(_)), "{e}");
    }
}
