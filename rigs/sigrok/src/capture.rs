//! Running a session and collecting its data feed.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ffi::{self, sr_packettype};
use crate::{channel_info, cstr, slist, ChannelKind, Device, Libs, SigrokError};

/// What a capture returned: one sample vector per channel asked for, in the
/// order asked, all at `samplerate_hz` (sample `i` is at `i / samplerate_hz`
/// seconds from the capture's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The sample rate the device was set to.
    pub samplerate_hz: u64,
    /// The channels, in the order they were asked for.
    pub channels: Vec<CapturedChannel>,
}

impl Capture {
    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&CapturedChannel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// The samples of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedChannel {
    /// The channel's name.
    pub name: String,
    /// Logic or analog.
    pub kind: ChannelKind,
    /// The unit libsigrok reported for analog samples (`V`, `A`, `°C`...;
    /// without AC/DC flags), "" for logic channels or when none came.
    pub unit: String,
    /// The samples: floats for analog channels (converted with
    /// `sr_analog_to_float`), 0.0 or 1.0 for logic channels.
    pub samples: Vec<f64>,
}

/// Where a capture stands, as seen by [`StopHandle::wait_running`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Not started yet.
    Waiting,
    /// The session has started.
    Running,
    /// The capture has ended (or failed before starting).
    Finished,
}

struct SessionRef {
    libs: &'static Libs,
    session: *mut ffi::sr_session,
}

// SAFETY: sr_session_stop is documented reentrant from any thread while the
// session is valid; the pointer is only used under `StopInner::phase`'s lock,
// and the session is destroyed only after the phase left `Running`.
unsafe impl Send for SessionRef {}

enum Phase {
    Waiting,
    Running(SessionRef),
    Finished,
}

struct StopInner {
    claimed: AtomicBool,
    requested: AtomicBool,
    stop_sent: AtomicBool,
    phase: Mutex<Phase>,
    changed: Condvar,
}

/// Stops a [`Device::capture_until_stopped`] from another thread. Cheap to
/// clone; one handle serves one capture.
#[derive(Clone)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

impl Default for StopHandle {
    fn default() -> Self {
        StopHandle::new()
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stop_requested", &self.stop_requested())
            .field("status", &self.status())
            .finish()
    }
}

impl StopHandle {
    /// A handle for a capture not yet started.
    pub fn new() -> StopHandle {
        StopHandle {
            inner: Arc::new(StopInner {
                claimed: AtomicBool::new(false),
                requested: AtomicBool::new(false),
                stop_sent: AtomicBool::new(false),
                phase: Mutex::new(Phase::Waiting),
                changed: Condvar::new(),
            }),
        }
    }

    /// Asks the capture to stop (`sr_session_stop`); returns at once. The
    /// capture's thread then returns the capture.
    pub fn stop(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        let phase = self.lock();
        if let Phase::Running(s) = &*phase {
            self.send_stop(s.libs, s.session);
        }
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn stop_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Where the capture stands.
    pub fn status(&self) -> RunStatus {
        match &*self.lock() {
            Phase::Waiting => RunStatus::Waiting,
            Phase::Running(_) => RunStatus::Running,
            Phase::Finished => RunStatus::Finished,
        }
    }

    /// Waits up to `timeout` for the capture to leave [`RunStatus::Waiting`].
    pub fn wait_running(&self, timeout: Duration) -> RunStatus {
        let deadline = Instant::now() + timeout;
        let mut phase = self.lock();
        loop {
            match &*phase {
                Phase::Running(_) => return RunStatus::Running,
                Phase::Finished => return RunStatus::Finished,
                Phase::Waiting => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return RunStatus::Waiting;
            }
            phase = self
                .inner
                .changed
                .wait_timeout(phase, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.inner
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `sr_session_stop`, at most once per capture.
    fn send_stop(&self, libs: &'static Libs, session: *mut ffi::sr_session) {
        if !self.inner.stop_sent.swap(true, Ordering::SeqCst) {
            // SAFETY: callers guarantee the session is alive (the session
            // thread, or a holder of the phase lock while `Running`).
            unsafe { libs.sr.sr_session_stop(session) };
        }
    }

    fn set_running(&self, libs: &'static Libs, session: *mut ffi::sr_session) {
        *self.lock() = Phase::Running(SessionRef { libs, session });
        self.inner.changed.notify_all();
        if self.stop_requested() {
            self.send_stop(libs, session);
        }
    }

    fn finish(&self) {
        *self.lock() = Phase::Finished;
        self.inner.changed.notify_all();
    }
}

/// What the data-feed callback sees (through a raw pointer).
struct Feed {
    libs: &'static Libs,
    session: *mut ffi::sr_session,
    stop: StopHandle,
    channels: Vec<Collecting>,
    error: Option<SigrokError>,
}

struct Collecting {
    ptr: *const ffi::sr_channel,
    name: String,
    index: i32,
    kind: ChannelKind,
    unit: Option<String>,
    samples: Vec<f64>,
}

/// Pops and releases the thread-default GLib main context pushed for the
/// session (so that a stop from another thread is queued to the session's
/// thread, never run in the caller's).
struct MainContextGuard {
    libs: &'static Libs,
    context: *mut ffi::GMainContext,
}

impl Drop for MainContextGuard {
    fn drop(&mut self) {
        // SAFETY: pushed by `run` on this thread.
        unsafe {
            self.libs.g.g_main_context_pop_thread_default(self.context);
            self.libs.g.g_main_context_unref(self.context);
        }
    }
}

/// Destroys the session, after marking the capture finished so that no
/// [`StopHandle`] touches it any more.
struct SessionGuard {
    libs: &'static Libs,
    session: *mut ffi::sr_session,
    stop: StopHandle,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.stop.finish();
        // SAFETY: created by sr_session_new; not running any more (run
        // returned, or start failed).
        unsafe { self.libs.sr.sr_session_destroy(self.session) };
    }
}

pub(crate) fn run(
    dev: &Device<'_>,
    names: &[&str],
    samplerate_hz: u64,
    limit: u64,
    stop: &StopHandle,
) -> Result<Capture, SigrokError> {
    if stop.inner.claimed.swap(true, Ordering::SeqCst) {
        return Err(SigrokError::InvalidRequest(
            "this StopHandle already served a capture (use a new one per capture)".to_owned(),
        ));
    }
    let result = run_session(dev, names, samplerate_hz, limit, stop);
    stop.finish();
    result
}

fn run_session(
    dev: &Device<'_>,
    names: &[&str],
    samplerate_hz: u64,
    limit: u64,
    stop: &StopHandle,
) -> Result<Capture, SigrokError> {
    if names.is_empty() {
        return Err(SigrokError::InvalidRequest(
            "no channels asked for".to_owned(),
        ));
    }
    if samplerate_hz == 0 {
        return Err(SigrokError::InvalidRequest("sample rate 0 Hz".to_owned()));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(SigrokError::InvalidRequest(format!(
                "channel `{n}` asked for twice"
            )));
        }
    }
    let ctx = dev.context();
    let libs = ctx.libs();
    let raw = dev.raw_channels();
    // SAFETY: channels are owned by the device, alive for the context.
    let infos: Vec<_> = raw
        .iter()
        .map(|&c| (c, unsafe { channel_info(c) }))
        .collect();
    let mut channels = Vec::with_capacity(names.len());
    for name in names {
        let Some((ptr, info)) = infos.iter().find(|(_, i)| i.name == *name) else {
            return Err(SigrokError::UnknownChannel {
                channel: (*name).to_owned(),
                available: infos
                    .iter()
                    .map(|(_, i)| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        channels.push(Collecting {
            ptr: *ptr,
            name: info.name.clone(),
            index: info.index,
            kind: info.kind,
            unit: None,
            samples: Vec::new(),
        });
    }
    // Logic channels are enabled from index 0 up to the highest one asked
    // for: the bit for channel `index` is then at bit `index` for every
    // driver (the demo driver, for one, masks off the bits above the count
    // of enabled logic channels).
    let top_logic = channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Logic)
        .map(|c| c.index)
        .max();
    for (ptr, info) in &infos {
        let wanted = names.contains(&info.name.as_str())
            || (info.kind == ChannelKind::Logic && top_logic.is_some_and(|top| info.index <= top));
        // SAFETY: a channel of this device.
        let code = unsafe { libs.sr.sr_dev_channel_enable(*ptr, i32::from(wanted)) };
        libs.check(&format!("sr_dev_channel_enable({})", info.name), code)?;
    }
    dev.ensure_open()?;
    dev.set_samplerate(samplerate_hz)?;
    dev.set_limit_samples(limit)?;

    // SAFETY: a new context, pushed on this thread, popped by the guard.
    let _main_context = unsafe {
        let context = libs.g.g_main_context_new();
        if context.is_null() {
            return Err(SigrokError::Null {
                function: "g_main_context_new",
            });
        }
        libs.g.g_main_context_push_thread_default(context);
        MainContextGuard { libs, context }
    };

    let mut feed = Box::new(Feed {
        libs,
        session: ptr::null_mut(),
        stop: stop.clone(),
        channels,
        error: None,
    });
    let mut session = ptr::null_mut();
    // SAFETY: writes a new session through the pointer.
    libs.check("sr_session_new", unsafe {
        libs.sr.sr_session_new(ctx_ptr(dev), &mut session)
    })?;
    if session.is_null() {
        return Err(SigrokError::Null {
            function: "sr_session_new",
        });
    }
    feed.session = session;
    let guard = SessionGuard {
        libs,
        session,
        stop: stop.clone(),
    };
    let feed_ptr: *mut Feed = &mut *feed;
    // SAFETY: valid session and device; `feed` outlives the session (it is
    // dropped after `guard`) and is not touched by this thread until the
    // session is destroyed.
    unsafe {
        libs.check(
            "sr_session_dev_add",
            libs.sr.sr_session_dev_add(session, dev.sdi()),
        )?;
        libs.check(
            "sr_session_datafeed_callback_add",
            libs.sr
                .sr_session_datafeed_callback_add(session, Some(on_datafeed), feed_ptr.cast()),
        )?;
        libs.check("sr_session_start", libs.sr.sr_session_start(session))?;
        stop.set_running(libs, session);
        libs.check("sr_session_run", libs.sr.sr_session_run(session))?;
    }
    drop(guard);

    if let Some(e) = feed.error.take() {
        return Err(e);
    }
    Ok(Capture {
        samplerate_hz,
        channels: std::mem::take(&mut feed.channels)
            .into_iter()
            .map(|c| CapturedChannel {
                name: c.name,
                kind: c.kind,
                unit: c.unit.unwrap_or_default(),
                samples: c.samples,
            })
            .collect(),
    })
}

fn ctx_ptr(dev: &Device<'_>) -> *mut ffi::sr_context {
    dev.context().ctx
}

/// The data-feed callback. Never unwinds into C: the body runs under
/// `catch_unwind`, and a panic or a bad packet ends the capture with an
/// error.
unsafe extern "C" fn on_datafeed(
    _sdi: *const ffi::sr_dev_inst,
    packet: *const ffi::sr_datafeed_packet,
    cb_data: *mut c_void,
) {
    if cb_data.is_null() || packet.is_null() {
        return;
    }
    let feed_ptr = cb_data.cast::<Feed>();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // The borrow ends before sr_session_stop, which may call back into
        // this function (the driver sends SR_DF_END).
        let (stop_now, libs, session, handle) = {
            // SAFETY: `run_session` keeps the Feed alive and untouched
            // while the session runs; callbacks come on the session thread.
            let feed = unsafe { &mut *feed_ptr };
            let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { feed.on_packet(packet) }));
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(panic) => Some(SigrokError::DataFeed(format!(
                    "panic in the data-feed callback: {}",
                    panic_message(&*panic)
                ))),
            };
            let failed = failure.is_some();
            if let Some(e) = failure {
                feed.error.get_or_insert(e);
            }
            (
                failed || feed.stop.stop_requested(),
                feed.libs,
                feed.session,
                feed.stop.clone(),
            )
        };
        if stop_now {
            handle.send_stop(libs, session);
        }
    }));
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".to_owned()
    }
}

impl Feed {
    /// # Safety
    /// `packet` is a packet libsigrok passed to the data-feed callback.
    unsafe fn on_packet(
        &mut self,
        packet: *const ffi::sr_datafeed_packet,
    ) -> Result<(), SigrokError> {
        #[cfg(test)]
        if tests::PANIC_IN_CALLBACK.load(Ordering::SeqCst) {
            panic!("test panic inside the data-feed callback");
        }
        let packet = &*packet;
        match u32::from(packet.type_) {
            sr_packettype::SR_DF_LOGIC if !packet.payload.is_null() => {
                self.on_logic(&*packet.payload.cast::<ffi::sr_datafeed_logic>())
            }
            sr_packettype::SR_DF_ANALOG if !packet.payload.is_null() => {
                self.on_analog(&*packet.payload.cast::<ffi::sr_datafeed_analog>())
            }
            _ => Ok(()),
        }
    }

    /// Logic samples are `unitsize` bytes each, little-endian, the bit for
    /// channel `index` at bit `index` (libsigrok's convention).
    unsafe fn on_logic(&mut self, logic: &ffi::sr_datafeed_logic) -> Result<(), SigrokError> {
        if !self.channels.iter().any(|c| c.kind == ChannelKind::Logic) {
            return Ok(());
        }
        let unitsize = usize::from(logic.unitsize);
        let Ok(length) = usize::try_from(logic.length) else {
            return Err(SigrokError::DataFeed(format!(
                "logic packet of {} bytes",
                logic.length
            )));
        };
        if length == 0 || logic.data.is_null() {
            return Ok(());
        }
        if unitsize == 0 {
            return Err(SigrokError::DataFeed(
                "logic packet with unitsize 0".to_owned(),
            ));
        }
        let bytes = std::slice::from_raw_parts(logic.data.cast::<u8>(), length);
        let n = length / unitsize;
        for c in self
            .channels
            .iter_mut()
            .filter(|c| c.kind == ChannelKind::Logic)
        {
            let Ok(bit) = usize::try_from(c.index) else {
                return Err(SigrokError::DataFeed(format!(
                    "channel {} has index {}",
                    c.name, c.index
                )));
            };
            let (byte, shift) = (bit / 8, bit % 8);
            if byte >= unitsize {
                return Err(SigrokError::DataFeed(format!(
                    "logic channel {} (bit {bit}) is beyond the packet's {unitsize}-byte samples",
                    c.name
                )));
            }
            c.samples.reserve(n);
            c.samples.extend(
                bytes
                    .chunks_exact(unitsize)
                    .map(|s| f64::from((s[byte] >> shift) & 1)),
            );
        }
        Ok(())
    }

    /// Analog packets carry `num_samples` samples of each channel in their
    /// meaning's channel list (one channel per packet for most drivers;
    /// several are taken as interleaved sample by sample).
    unsafe fn on_analog(&mut self, analog: &ffi::sr_datafeed_analog) -> Result<(), SigrokError> {
        if analog.meaning.is_null() || analog.encoding.is_null() {
            return Err(SigrokError::DataFeed(
                "analog packet without meaning or encoding".to_owned(),
            ));
        }
        let packet_channels = slist((*analog.meaning).channels);
        let nch = packet_channels.len();
        let n = analog.num_samples as usize;
        if nch == 0 || n == 0 {
            return Ok(());
        }
        let wanted: Vec<(usize, usize)> = packet_channels
            .iter()
            .enumerate()
            .filter_map(|(k, &p)| {
                self.channels
                    .iter()
                    .position(|c| c.ptr == p.cast_const().cast())
                    .map(|i| (k, i))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut buf = vec![0f32; n * nch];
        self.libs.check(
            "sr_analog_to_float",
            self.libs.sr.sr_analog_to_float(analog, buf.as_mut_ptr()),
        )?;
        for (k, i) in wanted {
            let libs = self.libs;
            let c = &mut self.channels[i];
            if c.unit.is_none() {
                c.unit = Some(unit_of(libs, analog)?);
            }
            c.samples.reserve(n);
            c.samples
                .extend((0..n).map(|s| f64::from(buf[s * nch + k])));
        }
        Ok(())
    }
}

/// The packet's unit without its AC/DC/... flags.
///
/// # Safety
/// `analog` is a packet libsigrok passed to the data-feed callback.
unsafe fn unit_of(libs: &Libs, analog: &ffi::sr_datafeed_analog) -> Result<String, SigrokError> {
    let mut meaning = *analog.meaning;
    meaning.mqflags = 0;
    let mut bare = *analog;
    bare.meaning = &mut meaning;
    let mut text = ptr::null_mut();
    libs.check(
        "sr_analog_unit_to_string",
        libs.sr.sr_analog_unit_to_string(&bare, &mut text),
    )?;
    let unit = cstr(text);
    libs.g.g_free(text.cast());
    Ok(unit.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context_or_skip;

    pub(super) static PANIC_IN_CALLBACK: AtomicBool = AtomicBool::new(false);

    #[test]
    fn a_panic_in_the_callback_ends_the_capture_with_an_error_and_the_next_one_works() {
        let Some(ctx) = context_or_skip("panic test") else {
            return;
        };
        let devices = ctx.scan("demo", None).expect("scan demo");
        let dev = devices.first().expect("a demo device");
        PANIC_IN_CALLBACK.store(true, Ordering::SeqCst);
        let result = dev.capture(&["A0"], 100_000, 1_000);
        PANIC_IN_CALLBACK.store(false, Ordering::SeqCst);
        match result {
            Err(SigrokError::DataFeed(m)) => {
                assert!(
                    m.contains("panic") && m.contains("test panic inside"),
                    "{m}"
                )
            }
            other => panic!("expected a data-feed error, got {other:?}"),
        }
        let again = dev
            .capture(&["A0"], 100_000, 1_000)
            .expect("capture after the panic");
        assert_eq!(again.channels[0].samples.len(), 1_000);
    }

    #[test]
    fn a_stop_handle_reports_its_phases() {
        let h = StopHandle::new();
        assert_eq!(h.status(), RunStatus::Waiting);
        assert_eq!(
            h.wait_running(Duration::from_millis(10)),
            RunStatus::Waiting
        );
        assert!(!h.stop_requested());
        h.stop();
        assert!(h.stop_requested());
        h.finish();
        assert_eq!(h.wait_running(Duration::from_secs(1)), RunStatus::Finished);
    }
}
