//! `maslow-firmware`: the board runtime. The same sans-IO core that rigs run
//! in-process ([`firmware::node::Node`] around the controller), with the
//! operating system at its edges: a TOML config, CAN through SocketCAN or an
//! SLCAN adapter, the smart meter's P1 port on a serial line, structured
//! logs on stderr, and a graceful stop on SIGTERM / Ctrl-C.
//!
//! Clock: `--clock os` (a board) takes `now` from the OS monotonic clock;
//! `--clock bus` follows the plant's TimeSync frames, so a lockstep rig can
//! run this process in virtual time.
//!
//! Exit codes: 0 after a requested stop, 2 for an unusable config, port or
//! argument (one line naming it), 1 when a link fails while running.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use firmware::node::{ClockMode, Node};
use firmware::Millis;
use links::{CanBus, CanFrame};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Clock {
    /// The OS monotonic clock (a board).
    Os,
    /// The plant's TimeSync frames (lockstep rigs).
    Bus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The battery assembly's controller, as it runs on the board.
#[derive(Debug, Parser)]
#[command(name = "maslow-firmware", version)]
struct Args {
    /// Controller configuration (TOML; see firmware/README.md), e.g.
    /// firmware/config/terrace.toml.
    #[arg(long)]
    config: PathBuf,
    /// CAN link: `slcan:DEVICE` (a CANable/USBtin-class adapter or a
    /// pseudo-terminal) or `socketcan:IFACE` (e.g. socketcan:can0).
    #[arg(long)]
    can: String,
    /// CAN bitrate, bit/s (the contract runs at 500000).
    #[arg(long, default_value_t = 500_000)]
    can_bitrate: u32,
    /// The smart meter's P1 port (serial device or pseudo-terminal). Without
    /// it the controller runs without meter data (flagged as a stale meter).
    #[arg(long)]
    p1: Option<PathBuf>,
    /// P1 baud rate (DSMR 5: 115200 8N1).
    #[arg(long, default_value_t = 115_200)]
    p1_baud: u32,
    /// Where `now` comes from.
    #[arg(long, value_enum, default_value_t = Clock::Os)]
    clock: Clock,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A user-fixable problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unusable(String);

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.log_format);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            let unusable = e
                .chain()
                .any(|c| c.is::<Unusable>() || c.is::<firmware::config_file::LoadError>());
            ExitCode::from(if unusable { 2 } else { 1 })
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn open_can(spec: &str, bitrate: u32) -> Result<Box<dyn CanBus>> {
    let (kind, target) = spec.split_once(':').ok_or_else(|| {
        Unusable(format!(
            "--can `{spec}`: expected `slcan:DEVICE` or `socketcan:IFACE`"
        ))
    })?;
    match kind {
        "slcan" => {
            let bus = links::SlcanBus::open(target, bitrate)
                .await
                .map_err(|e| Unusable(format!("--can {spec}: {e}")))?;
            Ok(Box::new(bus))
        }
        #[cfg(target_os = "linux")]
        "socketcan" => {
            let bus = links::SocketCanBus::open(target)
                .map_err(|e| Unusable(format!("--can {spec}: {e}")))?;
            Ok(Box::new(bus))
        }
        other => Err(Unusable(format!(
            "--can `{spec}`: unknown link `{other}` (use slcan or socketcan)"
        ))
        .into()),
    }
}

async fn run(args: Args) -> Result<()> {
    let controller_cfg = firmware::config_file::load(&args.config)?;
    let mut link_cfg = controller_cfg.link.clone().unwrap_or_default();
    link_cfg.clock = match args.clock {
        Clock::Os => ClockMode::Local,
        Clock::Bus => ClockMode::Bus,
    };
    let start = Instant::now();
    let now = || Millis(start.elapsed().as_millis() as u64);
    // The node holds the whole controller (~150 KB): on the heap here.
    let mut node = Box::new(
        Node::new(controller_cfg, link_cfg, now())
            .map_err(|e| Unusable(format!("{}: {e}", args.config.display())))?,
    );
    let mut p1 = match &args.p1 {
        Some(path) => Some(
            links::SerialLink::open(&path.to_string_lossy(), args.p1_baud)
                .map_err(|e| Unusable(format!("--p1 {}: {e}", path.display())))?,
        ),
        None => {
            warn!("no --p1 port: running without meter data");
            None
        }
    };
    // CAN last: once its channel is open (SLCAN `O`) every port is ready,
    // so a lockstep rig may start sending as soon as it sees the open.
    let mut can = open_can(&args.can, args.can_bitrate).await?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    info!(
        config = %args.config.display(),
        can = %args.can,
        p1 = ?args.p1,
        clock = ?args.clock,
        "maslow-firmware started"
    );
    let mut p1_buf = [0u8; 1024];
    let mut last_state = None;
    loop {
        while let Some(tx) = node.poll_transmit() {
            let frame =
                CanFrame::standard(tx.id, tx.payload()).context("the node produced a bad frame")?;
            can.send(&frame).await.context("CAN send failed")?;
        }
        can.flush().await.context("CAN flush failed")?;
        while let Some(event) = node.poll_event() {
            tracing::debug!(?event, "controller output");
        }
        let state = (node.link_lost(), node.meter_stale());
        if last_state != Some(state) {
            info!(link_lost = state.0, meter_stale = state.1, "link state");
            last_state = Some(state);
        }
        let wake = match (link_clock(&node), node.poll_timeout()) {
            (ClockMode::Local, Some(t)) => {
                let wait = t.0.saturating_sub(now().0);
                Some(tokio::time::Instant::now() + Duration::from_millis(wait))
            }
            _ => None,
        };
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
            _ = tokio::signal::ctrl_c() => { info!("interrupt: stopping"); break; }
            frame = can.recv() => {
                let frame = frame.context("CAN receive failed")?;
                // The contract has 11-bit data frames only; anything else is
                // handed over as an unknown identifier and counted there.
                let id = frame.standard_data_id().unwrap_or(u16::MAX);
                node.handle_frame(now(), id, frame.data());
            }
            n = read_p1(&mut p1, &mut p1_buf) => {
                let n = n.context("P1 port read failed")?;
                if n == 0 {
                    warn!("P1 port closed");
                    p1 = None;
                } else {
                    node.handle_p1(now(), &p1_buf[..n]);
                }
            }
            _ = sleep_until(wake) => node.handle_timeout(now()),
        }
    }
    info!(node = %node.stats(), can = ?can.stats(), "maslow-firmware stopped");
    Ok(())
}

fn link_clock(node: &Node) -> ClockMode {
    node.link_config().clock
}

async fn read_p1(port: &mut Option<links::SerialLink>, buf: &mut [u8]) -> std::io::Result<usize> {
    match port {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
