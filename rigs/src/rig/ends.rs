//! Where the controller runs, seen from the plant: something that takes the
//! plant's frames and telegrams and gives back the controller's frames.
//!
//! - [`InProcessEnd`]: the production [`Node`] in this process, linked by
//!   the in-process bus. In lockstep its clock is the bus clock (time-sync
//!   frames), exactly as `maslow-firmware --clock bus` runs it, so the SIL
//!   rig can be checked against it decision for decision.
//! - [`LinkedEnd`]: a controller behind real transports — a
//!   `maslow-firmware` child process on SLCAN and P1 pseudo-terminal
//!   pairs, or a board on SocketCAN/SLCAN and a serial P1 line.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firmware::node::{ClockMode, Node};
use firmware::wire::can::messages::CtrlHeartbeat;
use firmware::Millis;
use links::{CanBus, CanFrame};
use tokio::io::AsyncWriteExt;

use crate::rig::config::{CanTransport, ControllerLocation, MeterTransport, Rig, TimeMode};
use crate::rig::error::RigError;

/// The controller as the plant sees it.
pub trait ControllerEnd {
    /// Lockstep: delivers the step's frames, telegrams and `sync` (the
    /// time sync for `t_ms`), and returns once the controller has answered
    /// with a heartbeat echoing `t_ms`; its frames are appended to `out`
    /// (the acknowledging heartbeat last).
    fn exchange_lockstep(
        &mut self,
        t_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        sync: &CanFrame,
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError>;

    /// Real time: delivers now and appends whatever the controller has sent
    /// since the last call, without waiting.
    fn exchange_realtime(
        &mut self,
        now_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError>;

    /// Stops the controller (if the rig started it) and reports how it ended.
    fn finish(&mut self) -> Result<String, RigError>;

    /// Delivers a message from the remote server at plant time `now_ms`
    /// and returns the controller's immediate answers. Ends without a
    /// server link say so.
    fn uplink(&mut self, now_ms: u64, message: &UplinkMessage) -> Result<Vec<Reply>, RigError> {
        let _ = (now_ms, message);
        Err(RigError::Controller(
            "this rig has no link from the remote server to the controller (the in-process rig has one; the fleet link over MQTT comes with the fleet issue)".into(),
        ))
    }

    /// Answers to the server that arrived since the last call.
    fn take_replies(&mut self) -> Vec<Reply> {
        Vec::new()
    }

    /// The controller's decisions logged since the last call (ends that
    /// cannot see the controller's log return none). Decisions that fell
    /// out of the controller's bounded log between calls are counted in
    /// [`DecisionTap::missed`].
    fn take_decisions(&mut self, tap: &mut DecisionTap) -> Vec<DecisionEntry> {
        let _ = tap;
        Vec::new()
    }
}

/// One entry of the controller's decision log, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionEntry {
    pub at_ms: u64,
    /// What was decided (`battery discharge 1200 W`...).
    pub what: String,
    /// `function/code` (`peak_reduction/InWindow`).
    pub reason: String,
}

/// Where a reader of a decision log is: how many entries it has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionTap {
    pub seen: u64,
    /// Entries that fell out of the controller's ring before being read.
    pub missed: u64,
}

impl DecisionTap {
    /// The entries of `log` logged since the last call.
    pub fn take<const N: usize>(
        &mut self,
        log: &firmware::decision::DecisionLog<N>,
    ) -> Vec<DecisionEntry> {
        let new = log.total().saturating_sub(self.seen);
        if new == 0 {
            return Vec::new();
        }
        let kept = (log.len() as u64).min(new);
        self.missed += new - kept;
        self.seen = log.total();
        log.iter()
            .skip(log.len() - kept as usize)
            .map(|d| DecisionEntry {
                at_ms: d.at.0,
                what: d.what.as_str().to_owned(),
                reason: d.reason.to_string(),
            })
            .collect()
    }
}

/// A message from the remote server to the controller.
#[derive(Debug, Clone, PartialEq)]
pub enum UplinkMessage {
    Demand(firmware::demand::DemandSignal),
    ChargeNow(firmware::scheduling::ChargeNowRequest),
    /// A signed dispatch message (firmware/docs/dispatch.md).
    Dispatch(Vec<u8>),
}

/// The controller's answer to the server, or a report it sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    DemandAck(firmware::demand::Ack),
    DispatchVerdict(firmware::cluster::Verdict),
    /// What a peak window delivered against the assured reduction, sent
    /// when the window ends.
    PeakReport(firmware::peak::PeakReport),
}

/// The CtrlHeartbeat identifier and its sync echo, if `f` is one.
pub fn sync_echo_ms(f: &CanFrame) -> Option<u64> {
    let id = match CtrlHeartbeat::MESSAGE_ID {
        embedded_can::Id::Standard(s) => u32::from(s.as_raw()),
        embedded_can::Id::Extended(e) => e.as_raw(),
    };
    if f.id().raw() != id || f.id().is_extended() {
        return None;
    }
    CtrlHeartbeat::try_from(f.data())
        .ok()
        .map(|h| u64::from(h.sync_echo_ms()))
}

// ---------------------------------------------------------------------------

/// The firmware node in this process.
pub struct InProcessEnd {
    /// ~150 KB (the whole controller): boxed.
    node: Box<Node>,
    bus: PlantBus,
    controller_side: links::InProcessBus,
    replies: Vec<Reply>,
}

/// The plant's end of the in-process bus: plain, or through the seeded
/// fault injector (driven on a small runtime of its own).
enum PlantBus {
    Plain(links::InProcessBus),
    Faulty(
        Box<links::FaultyBus<links::InProcessBus>>,
        tokio::runtime::Runtime,
    ),
}

/// The rig file's link faults as a plan for the plant's sending side
/// (status frames towards the controller; the controller's frames and the
/// lockstep time sync are not disturbed).
pub fn fault_plan(rig: &Rig) -> Option<links::FaultPlan> {
    rig.faults.map(|f| links::FaultPlan {
        seed: f.seed,
        send: links::FaultRates {
            drop: f.drop,
            duplicate: f.duplicate,
            corrupt: f.corrupt,
            delay: 0.0,
        },
        recv: links::FaultRates::default(),
        delay: Duration::ZERO,
        bus_off: Vec::new(),
    })
}

impl InProcessEnd {
    pub fn new(rig: &Rig) -> Result<Self, RigError> {
        let path = rig
            .controller
            .config
            .as_deref()
            .ok_or_else(|| RigError::Controller("no controller config".into()))?;
        let controller_cfg = firmware::config_file::load(path)?;
        let mut link_cfg = controller_cfg.link.clone().unwrap_or_default();
        link_cfg.clock = match rig.time {
            TimeMode::Lockstep => ClockMode::Bus,
            TimeMode::Realtime => ClockMode::Local,
        };
        let node = Box::new(
            Node::new(controller_cfg, link_cfg, Millis(0))
                .map_err(|e| RigError::Controller(format!("{}: {e}", path.display())))?,
        );
        let (plant_side, controller_side) = links::InProcessBus::pair();
        let bus = match fault_plan(rig) {
            None => PlantBus::Plain(plant_side),
            Some(plan) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|source| RigError::Io {
                        what: "starting the fault injector's runtime".into(),
                        source,
                    })?;
                let faulty = {
                    let _guard = rt.enter();
                    links::FaultyBus::new(plant_side, plan)
                        .map_err(|e| RigError::Link(e.to_string()))?
                };
                PlantBus::Faulty(Box::new(faulty), rt)
            }
        };
        Ok(InProcessEnd {
            node,
            bus,
            controller_side,
            replies: Vec::new(),
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    fn collect_replies(&mut self) {
        use firmware::controller::Output;
        while let Some(o) = self.node.poll_event() {
            match o {
                Output::DemandAck(a) => self.replies.push(Reply::DemandAck(a)),
                Output::DispatchVerdict(v) => self.replies.push(Reply::DispatchVerdict(v)),
                Output::PeakReport(r) => self.replies.push(Reply::PeakReport(r)),
                _ => {}
            }
        }
    }

    /// Moves frames plant → node (then `sync`, past any fault injector),
    /// and node → plant.
    fn pump(
        &mut self,
        now_ms: u64,
        frames: &[CanFrame],
        sync: Option<&CanFrame>,
        telegrams: &[Vec<u8>],
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError> {
        let now = Millis(now_ms);
        let link = |e: links::LinkError| RigError::Link(e.to_string());
        match &mut self.bus {
            PlantBus::Plain(bus) => {
                for f in frames {
                    bus.try_send(f).map_err(link)?;
                }
                if let Some(s) = sync {
                    bus.try_send(s).map_err(link)?;
                }
            }
            PlantBus::Faulty(bus, rt) => {
                rt.block_on(async {
                    for f in frames {
                        bus.send(f).await?;
                    }
                    bus.flush().await
                })
                .map_err(link)?;
                if let Some(s) = sync {
                    bus.inner_mut().try_send(s).map_err(link)?;
                }
            }
        }
        for t in telegrams {
            self.node.handle_p1(now, t);
        }
        while let Ok(f) = self.controller_side.try_recv() {
            // Anything but an 11-bit data frame is handed over as an
            // unknown identifier and counted there.
            let id = f.standard_data_id().unwrap_or(u16::MAX);
            self.node.handle_frame(now, id, f.data());
        }
        if self.node.link_config().clock == ClockMode::Local {
            while let Some(t) = self.node.poll_timeout() {
                if t.0 > now_ms {
                    break;
                }
                self.node.handle_timeout(now);
            }
        }
        while let Some(tx) = self.node.poll_transmit() {
            let f = CanFrame::standard(tx.id, tx.payload())
                .map_err(|e| RigError::Controller(e.to_string()))?;
            self.controller_side
                .try_send(&f)
                .map_err(|e| RigError::Link(e.to_string()))?;
        }
        self.collect_replies();
        let plant_side = match &mut self.bus {
            PlantBus::Plain(b) => b,
            PlantBus::Faulty(b, _) => b.inner_mut(),
        };
        while let Ok(f) = plant_side.try_recv() {
            out.push(f);
        }
        Ok(())
    }
}

impl ControllerEnd for InProcessEnd {
    fn exchange_lockstep(
        &mut self,
        t_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        sync: &CanFrame,
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError> {
        let before = out.len();
        self.pump(t_ms, frames, Some(sync), telegrams, out)?;
        if out[before..].last().and_then(sync_echo_ms) != Some(t_ms) {
            return Err(RigError::SyncTimeout {
                at_ms: t_ms,
                timeout_ms: 0,
                detail: " (the in-process controller answered without acknowledging)".into(),
            });
        }
        Ok(())
    }

    fn exchange_realtime(
        &mut self,
        now_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError> {
        self.pump(now_ms, frames, None, telegrams, out)
    }

    fn uplink(&mut self, now_ms: u64, message: &UplinkMessage) -> Result<Vec<Reply>, RigError> {
        use firmware::node::Uplink;
        let m = match message {
            UplinkMessage::Demand(d) => Uplink::Demand(*d),
            UplinkMessage::ChargeNow(r) => Uplink::ChargeNow(*r),
            UplinkMessage::Dispatch(b) => Uplink::Dispatch(b),
        };
        self.node.handle_uplink(Millis(now_ms), m);
        self.collect_replies();
        Ok(std::mem::take(&mut self.replies))
    }

    fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    fn take_decisions(&mut self, tap: &mut DecisionTap) -> Vec<DecisionEntry> {
        tap.take(self.node.controller().decisions())
    }

    fn finish(&mut self) -> Result<String, RigError> {
        let faults = match &self.bus {
            PlantBus::Plain(_) => String::new(),
            PlantBus::Faulty(b, _) => {
                let f = b.stats().faults.send;
                format!(
                    "; faults injected on status frames: {} dropped, {} duplicated, {} corrupted",
                    f.dropped, f.duplicated, f.corrupted
                )
            }
        };
        Ok(format!("in-process node: {}{faults}", self.node.stats()))
    }
}

// ---------------------------------------------------------------------------

/// A controller behind real transports.
pub struct LinkedEnd {
    rt: tokio::runtime::Runtime,
    /// Through the fault injector (no faults unless the rig file asks);
    /// the time sync goes around it.
    can: links::FaultyBus<Box<dyn CanBus>>,
    meter: Option<links::SerialLink>,
    child: Option<Child>,
    child_log: Option<PathBuf>,
    sync_timeout: Duration,
}

/// Finds the firmware program: a path as given, else next to the running
/// executable (cargo puts `maslow` and `maslow-firmware` side by side), else
/// on PATH.
pub fn resolve_program(program: &str) -> Result<PathBuf, RigError> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(RigError::Controller(format!(
                "controller.program {program} does not exist"
            )))
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(program);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(program);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(RigError::Controller(format!(
        "cannot find `{program}` next to this executable or on PATH: build it with `cargo build --release -p firmware` (or set controller.program to its path)"
    )))
}

impl LinkedEnd {
    /// Opens the rig's transports; for a child-process controller creates
    /// the pseudo-terminal pairs and starts `maslow-firmware` on them.
    pub fn new(rig: &Rig, program: Option<&Path>, log_dir: &Path) -> Result<Self, RigError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RigError::Io {
                what: "starting the rig's IO runtime".into(),
                source,
            })?;
        let link = |e: links::LinkError| RigError::Link(e.to_string());
        let mut child_args: Vec<String> = Vec::new();
        // The adapter side of an SLCAN pty waits for the child's `O`.
        let mut adapter: Option<links::SlcanBus> = None;
        let mut can: Option<Box<dyn CanBus>> = None;
        {
            let _guard = rt.enter();
            match rig.can {
                CanTransport::SlcanPty => {
                    let pty = links::Pty::open().map_err(link)?;
                    child_args.push("--can".into());
                    child_args.push(format!("slcan:{}", pty.slave_path()));
                    adapter = Some(links::SlcanBus::adapter_on_pty(pty).map_err(link)?);
                }
                CanTransport::Slcan => {
                    let device = rig.can_device.clone().unwrap_or_default();
                    can = Some(Box::new(
                        rt.block_on(links::SlcanBus::open(&device, rig.bitrate))
                            .map_err(link)?,
                    ));
                }
                CanTransport::Socketcan => {
                    let iface = rig.can_interface.clone().unwrap_or_default();
                    #[cfg(target_os = "linux")]
                    {
                        can = Some(Box::new(links::SocketCanBus::open(&iface).map_err(link)?));
                    }
                    #[cfg(not(target_os = "linux"))]
                    {
                        return Err(RigError::Link(format!("SocketCAN ({iface}) needs Linux")));
                    }
                }
                CanTransport::InProcess => {
                    return Err(RigError::Link(
                        "an in-process bus has no separate controller".into(),
                    ))
                }
            }
        }
        let meter = {
            let _guard = rt.enter();
            match rig.meter {
                MeterTransport::Pty => {
                    let pty = links::Pty::open().map_err(link)?;
                    child_args.push("--p1".into());
                    child_args.push(pty.slave_path().to_string());
                    Some(links::SerialLink::on_pty_master(pty).map_err(link)?)
                }
                MeterTransport::Serial => {
                    let device = rig.meter_device.clone().unwrap_or_default();
                    Some(links::SerialLink::open(&device, rig.meter_baud).map_err(link)?)
                }
                MeterTransport::InProcess => None,
            }
        };
        let mut child = None;
        let mut child_log = None;
        if rig.controller.runs == ControllerLocation::ChildProcess {
            let program = match program {
                Some(p) => p.to_path_buf(),
                None => resolve_program(&rig.controller.program)?,
            };
            let config = rig
                .controller
                .config
                .clone()
                .ok_or_else(|| RigError::Controller("no controller config".into()))?;
            let log_path = log_dir.join("maslow-firmware.log");
            let log = File::create(&log_path).map_err(|source| RigError::Io {
                what: format!("creating {}", log_path.display()),
                source,
            })?;
            let mut cmd = Command::new(&program);
            cmd.arg("--config")
                .arg(&config)
                .args(&child_args)
                .arg("--clock")
                .arg(match rig.time {
                    TimeMode::Lockstep => "bus",
                    TimeMode::Realtime => "os",
                })
                .arg("--log-format")
                .arg("json")
                .args(&rig.controller.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            child = Some(cmd.spawn().map_err(|source| RigError::Io {
                what: format!("starting {}", program.display()),
                source,
            })?);
            child_log = Some(log_path);
        }
        let placeholder: Box<dyn CanBus> = Box::new(links::InProcessBus::pair().0);
        let plan = fault_plan(rig).unwrap_or_default();
        let faulty = |bus: Box<dyn CanBus>, rt: &tokio::runtime::Runtime| {
            let _guard = rt.enter();
            links::FaultyBus::new(bus, plan.clone()).map_err(|e| RigError::Link(e.to_string()))
        };
        let mut end = LinkedEnd {
            can: faulty(placeholder, &rt)?,
            rt,
            meter,
            child,
            child_log,
            sync_timeout: Duration::from_millis(rig.sync_timeout_ms),
        };
        let bus: Box<dyn CanBus> = match (adapter, can) {
            (Some(a), _) => Box::new(end.wait_until_open(a)?),
            (None, Some(c)) => c,
            (None, None) => return Err(RigError::Link("no CAN transport".into())),
        };
        end.can = faulty(bus, &end.rt)?;
        Ok(end)
    }

    /// Serves the adapter side until the child has opened its CAN channel
    /// (its SLCAN `O`), or fails naming why.
    fn wait_until_open(
        &mut self,
        mut adapter: links::SlcanBus,
    ) -> Result<links::SlcanBus, RigError> {
        let deadline = Instant::now() + self.sync_timeout;
        loop {
            let step = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(50), adapter.wait_until_open()).await
            });
            match step {
                Ok(Ok(())) => return Ok(adapter),
                Ok(Err(e)) => {
                    return Err(RigError::Controller(format!(
                        "the firmware's CAN channel failed while opening: {e}{}",
                        self.log_tail()
                    )))
                }
                Err(_) => {}
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(RigError::Controller(format!(
                        "maslow-firmware exited before opening its CAN channel ({status}){}",
                        self.log_tail()
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(RigError::Controller(format!(
                    "maslow-firmware did not open its CAN channel within {} ms{}",
                    self.sync_timeout.as_millis(),
                    self.log_tail()
                )));
            }
        }
    }

    fn log_tail(&self) -> String {
        let Some(path) = &self.child_log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        if tail.is_empty() {
            format!("; its log {} is empty", path.display())
        } else {
            format!(
                "; last lines of {}:\n{}",
                path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }

    fn send_all(
        &mut self,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        sync: Option<&CanFrame>,
    ) -> Result<(), RigError> {
        let can = &mut self.can;
        let meter = &mut self.meter;
        self.rt
            .block_on(async {
                if let Some(m) = meter.as_mut() {
                    for t in telegrams {
                        m.write_all(t).await.map_err(|e| links::LinkError::Io {
                            device: "P1 port".into(),
                            action: "writing a telegram",
                            source: e,
                        })?;
                    }
                    m.flush().await.map_err(|e| links::LinkError::Io {
                        device: "P1 port".into(),
                        action: "flushing telegrams",
                        source: e,
                    })?;
                }
                for f in frames {
                    can.send(f).await?;
                }
                if let Some(s) = sync {
                    can.send(s).await?;
                }
                can.flush().await
            })
            .map_err(|e| RigError::Link(e.to_string()))
    }
}

impl ControllerEnd for LinkedEnd {
    fn exchange_lockstep(
        &mut self,
        t_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        sync: &CanFrame,
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError> {
        self.send_all(frames, telegrams, Some(sync))?;
        let deadline = tokio::time::Instant::now() + self.sync_timeout;
        let can = &mut self.can;
        let acked = self.rt.block_on(async {
            loop {
                match tokio::time::timeout_at(deadline, can.recv()).await {
                    Err(_) => return Ok(false),
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(f)) => {
                        let echo = sync_echo_ms(&f);
                        out.push(f);
                        if echo == Some(t_ms) {
                            return Ok(true);
                        }
                    }
                }
            }
        });
        match acked {
            Ok(true) => Ok(()),
            Ok(false) => Err(RigError::SyncTimeout {
                at_ms: t_ms,
                timeout_ms: self.sync_timeout.as_millis() as u64,
                detail: self.log_tail(),
            }),
            Err(e) => Err(RigError::Link(e.to_string())),
        }
    }

    fn exchange_realtime(
        &mut self,
        _now_ms: u64,
        frames: &[CanFrame],
        telegrams: &[Vec<u8>],
        out: &mut Vec<CanFrame>,
    ) -> Result<(), RigError> {
        self.send_all(frames, telegrams, None)?;
        let can = &mut self.can;
        self.rt
            .block_on(async {
                loop {
                    match tokio::time::timeout(Duration::ZERO, can.recv()).await {
                        Err(_) => return Ok(()),
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(f)) => out.push(f),
                    }
                }
            })
            .map_err(|e| RigError::Link(e.to_string()))
    }

    fn finish(&mut self) -> Result<String, RigError> {
        let Some(mut child) = self.child.take() else {
            return Ok(format!("board link: {}", link_line(&self.can.stats())));
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RigError::Controller(format!(
                        "maslow-firmware did not stop within 5 s of SIGTERM{}",
                        self.log_tail()
                    )));
                }
            }
        };
        if !status.success() {
            return Err(RigError::Controller(format!(
                "maslow-firmware ended with {status} after SIGTERM{}",
                self.log_tail()
            )));
        }
        Ok(format!(
            "maslow-firmware stopped cleanly on SIGTERM; link: {}",
            link_line(&self.can.stats())
        ))
    }
}

fn link_line(s: &links::LinkStats) -> String {
    format!(
        "{} frames sent, {} received, {} link errors, {} faults injected",
        s.frames_sent,
        s.frames_received,
        s.errors.total(),
        s.faults.send.total() + s.faults.recv.total()
    )
}

impl Drop for LinkedEnd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
