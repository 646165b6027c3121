//! Runs the fleet's sans-IO [`FleetServer`] and [`Shard`]s over MQTT: each
//! end publishes what its `poll_transmit` gives and hands every message it
//! receives to `handle`. The lockstep barrier is the fleet's protocol
//! (`Tick.expect`, `Done`): this module only moves messages, drops exact
//! duplicates and stops a hang with a clear error naming where the run
//! stalled.
//!
//! QoS 1 may deliver a message twice after a reconnection. What the shards
//! send carries its minute (and sequence), so at the server an identical
//! topic and payload is always a repeat. The server may send the same bytes
//! again on purpose — a scenario's replay attack re-sends an old dispatch —
//! so a shard drops a repeat only if it first came in the current or the
//! previous minute: a redelivery comes with the reconnection, before the
//! shard can finish the next minute. (A replay attack on a dispatch sent in
//! the same or the previous minute would be dropped and stall the run with
//! the error below; the fleet's replays copy older dispatches.)
//!
//! `speed` paces the lockstep against the wall clock: minute `m`'s tick is
//! published no earlier than `m · 60 / speed` seconds after the first one
//! (the barrier stays: a slow shard slows the run rather than falling behind).
//!
//! A real-time server ([`FleetServer::set_realtime`], with `speed`) has no
//! barrier: minute `m` ends `(m + 1) · 60 / speed` wall seconds after the
//! start whatever has come in, shards step on the tick without waiting for
//! its messages (what comes after it waits a minute), and what a shard
//! sends after its minute ended is counted late (`late_messages`), its
//! sites out of that minute's plan. Not deterministic: the wall clock
//! decides.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::{message_key, Message, MqttClient, MqttError};
use crate::fleet::scenario::FleetScenario;
use crate::fleet::server::{FleetServer, Phase};
use crate::fleet::shard::Shard;

/// How an end drives its part of the run.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Longest wait for the next message before the run is declared stalled.
    pub idle_timeout: Duration,
    /// Simulated seconds per wall second (server only); `None`: as fast as
    /// the barrier allows. Required by a real-time server
    /// ([`FleetServer::set_realtime`]): its minutes end every `60 / speed`
    /// wall seconds.
    pub speed: Option<f64>,
    /// The server runs in real time (no barrier; needs `speed`).
    pub realtime: bool,
    /// Print progress to stderr every simulated hour.
    pub progress: bool,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            idle_timeout: Duration::from_secs(300),
            speed: None,
            realtime: false,
            progress: false,
        }
    }
}

/// Why a driven run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error("{who}: no message for {secs} s at {phase} (is every shard running and connected to the same broker and run id? {hint})")]
    Stalled {
        who: String,
        phase: String,
        secs: u64,
        hint: String,
    },
    #[error("{who}: the MQTT client stopped delivering messages")]
    Closed { who: String },
    /// A real-time server without a speed.
    #[error("a real-time run needs a speed (simulated seconds per wall second, > 0)")]
    NoSpeed,
    #[error("shard journal {path}: {reason}")]
    Journal { path: String, reason: String },
}

/// What an end moved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DriveStats {
    pub sent: u64,
    pub received: u64,
    /// Exact duplicates (QoS 1 redelivery) dropped before `handle`.
    pub duplicates: u64,
    /// Messages `handle` refused (counted by the fleet end as well).
    pub bad: u64,
    /// Messages replayed from a shard's journal at start.
    pub replayed: u64,
    pub wall_s: f64,
}

/// Drops messages already seen (same topic and payload), remembering up to
/// 2 × `cap` of them, or what came since the last two [`Dedup::rotate`]s.
struct Dedup {
    cur: HashSet<(u64, u64)>,
    old: HashSet<(u64, u64)>,
    cap: usize,
}

impl Dedup {
    /// Forgets all but the messages seen since the last call.
    fn rotate(&mut self) {
        self.old = std::mem::take(&mut self.cur);
    }

    fn new(cap: usize) -> Self {
        Dedup {
            cur: HashSet::new(),
            old: HashSet::new(),
            cap,
        }
    }

    fn key(m: &Message) -> (u64, u64) {
        message_key(m)
    }

    /// `true` if `m` was seen before.
    fn seen(&mut self, m: &Message) -> bool {
        let k = Self::key(m);
        if self.cur.contains(&k) || self.old.contains(&k) {
            return true;
        }
        if self.cur.len() >= self.cap {
            self.old = std::mem::take(&mut self.cur);
        }
        self.cur.insert(k);
        false
    }
}

/// A shard's journal: every message it handled, in order, written and
/// flushed before the shard handles it and before the broker gets its ack.
/// A shard process killed and started again with the same journal replays
/// it into a new [`Shard`] (the simulation is deterministic, so the
/// households, their firmware and its replay protection come back as they
/// were) and carries on from the broker's persistent session: no message
/// lost, none handled twice.
///
/// Format: records of `u32 BE topic length, topic, u32 BE payload length,
/// payload, u8 retain`; a record cut short by a kill is dropped on reopening.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    fn err(path: &Path, e: impl std::fmt::Display) -> DriveError {
        DriveError::Journal {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Opens (or creates) the journal at `path`; returns it with the
    /// messages it already holds.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Message>), DriveError> {
        let mut bytes = Vec::new();
        if path.exists() {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| Self::err(path, e))?;
        }
        let mut msgs = Vec::new();
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
            let s = bytes.get(*at..at.checked_add(n)?)?;
            *at += n;
            Some(s)
        };
        let mut good = 0usize;
        loop {
            let rec = (|| {
                let tl = u32::from_be_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
                let topic = String::from_utf8(take(&mut at, tl)?.to_vec()).ok()?;
                let pl = u32::from_be_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
                let payload = take(&mut at, pl)?.to_vec();
                let retain = take(&mut at, 1)?[0] != 0;
                Some(Message {
                    topic,
                    payload,
                    retain,
                })
            })();
            match rec {
                Some(m) => {
                    msgs.push(m);
                    good = at;
                }
                None => break,
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Self::err(path, e))?;
        // Drop a record cut short by a kill.
        file.set_len(good as u64).map_err(|e| Self::err(path, e))?;
        Ok((
            Journal {
                path: path.to_owned(),
                file,
            },
            msgs,
        ))
    }

    fn append(&mut self, m: &Message) -> Result<(), DriveError> {
        let mut rec = Vec::with_capacity(m.topic.len() + m.payload.len() + 9);
        rec.extend_from_slice(&(m.topic.len() as u32).to_be_bytes());
        rec.extend_from_slice(m.topic.as_bytes());
        rec.extend_from_slice(&(m.payload.len() as u32).to_be_bytes());
        rec.extend_from_slice(&m.payload);
        rec.push(u8::from(m.retain));
        self.file
            .write_all(&rec)
            .and_then(|_| self.file.flush())
            .map_err(|e| Self::err(&self.path, e))
    }
}

/// Replays a journal into a new shard: returns what the shard must publish
/// again (its Hello and the outputs of the last minute it stepped, which
/// may not have left before the kill; the server drops the copies it has).
fn replay(shard: &mut Shard, msgs: &[Message], dedup: &mut Dedup) -> Vec<Message> {
    let mut again: Vec<Message> = Vec::new();
    let mut hello = Vec::new();
    while let Some(m) = shard.poll_transmit() {
        hello.push(m);
    }
    for m in msgs {
        dedup.seen(m);
        let _ = shard.handle(m);
        let before = shard.next_minute();
        let mut out = Vec::new();
        while let Some(o) = shard.poll_transmit() {
            out.push(o);
        }
        if shard.next_minute() != before {
            dedup.rotate();
            again = out;
        }
    }
    hello.extend(again);
    hello
}

async fn next(
    rx: &mut UnboundedReceiver<Message>,
    opts: &DriveOptions,
    who: &str,
    phase: impl Fn() -> String,
    hint: &str,
) -> Result<Message, DriveError> {
    match tokio::time::timeout(opts.idle_timeout, rx.recv()).await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(DriveError::Closed { who: who.into() }),
        Err(_) => Err(DriveError::Stalled {
            who: who.into(),
            phase: phase(),
            secs: opts.idle_timeout.as_secs(),
            hint: hint.into(),
        }),
    }
}

/// Drives the server to the end of the run; returns when every minute is
/// done and its last messages are acknowledged by the broker.
pub async fn drive_server(
    server: &mut FleetServer,
    client: &MqttClient,
    rx: &mut UnboundedReceiver<Message>,
    opts: &DriveOptions,
) -> Result<DriveStats, DriveError> {
    let t0 = Instant::now();
    if opts.realtime {
        let Some(speed) = opts.speed.filter(|s| s.is_finite() && *s > 0.0) else {
            return Err(DriveError::NoSpeed);
        };
        server.set_realtime(Some((60_000.0 / speed).round().max(1.0) as u64));
    }
    let mut stats = DriveStats::default();
    let mut dedup = Dedup::new(1 << 18);
    let mut paced_from: Option<Instant> = None;
    let mut last_hour = None;
    loop {
        let mut out = Vec::new();
        let before = server.phase();
        while let Some(m) = server.poll_transmit() {
            out.push(m);
        }
        // Pace a new minute before anything of it goes out.
        if let (Some(speed), Phase::Running(m)) = (opts.speed, server.phase()) {
            if before != server.phase() && speed > 0.0 {
                let start = *paced_from.get_or_insert_with(Instant::now);
                let due = start + Duration::from_secs_f64(f64::from(m) * 60.0 / speed);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        for m in out {
            client.publish(m).await?;
            stats.sent += 1;
        }
        if opts.progress {
            if let Phase::Running(m) = server.phase() {
                if last_hour != Some(m / 60) {
                    last_hour = Some(m / 60);
                    eprintln!(
                        "fleet server: minute {m} ({:.1} h simulated), {:.1} s wall",
                        f64::from(m) / 60.0,
                        t0.elapsed().as_secs_f64()
                    );
                }
            }
        }
        if server.is_finished() {
            client.flush(opts.idle_timeout).await?;
            stats.wall_s = t0.elapsed().as_secs_f64();
            return Ok(stats);
        }
        let phase = server.phase();
        let shards = server.shards().len();
        // Real time: the running minute ends on the wall clock, whatever
        // has come in by then.
        if let (true, Some(speed), Phase::Running(m), Some(start)) =
            (server.is_realtime(), opts.speed, phase, paced_from)
        {
            let end = start + Duration::from_secs_f64(f64::from(m + 1) * 60.0 / speed);
            tokio::select! {
                got = rx.recv() => match got {
                    Some(msg) => {
                        stats.received += 1;
                        if dedup.seen(&msg) {
                            stats.duplicates += 1;
                        } else if server.handle(&msg).is_err() {
                            stats.bad += 1;
                        }
                    }
                    None => return Err(DriveError::Closed { who: "fleet server".into() }),
                },
                _ = tokio::time::sleep_until(end.into()) => server.end_minute(),
            }
            continue;
        }
        let m = next(
            rx,
            opts,
            "fleet server",
            || match phase {
                Phase::Hello => format!("the start, waiting for shards' Hellos ({shards} so far)"),
                Phase::Running(m) => {
                    format!("minute {m}, waiting for the shards' telemetry, acks and Done")
                }
                Phase::Finished => "the end".into(),
            },
            "start the shards with the same FLEET.toml, --broker and --run-id; a message lost on the way also stops the lockstep",
        )
        .await?;
        let mut batch = vec![m];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut fresh = Vec::with_capacity(batch.len());
        for m in &batch {
            stats.received += 1;
            if dedup.seen(m) {
                stats.duplicates += 1;
                continue;
            }
            fresh.push(m);
        }
        stats.bad += server.handle_batch(&fresh) as u64;
    }
}

/// Drives one shard to the end of the run (its last minute's messages
/// acknowledged by the broker). Stepping a minute is CPU work: it runs in
/// `block_in_place`, so the MQTT connection keeps being served.
///
/// With a `journal` (opened by [`Journal::open`], with the messages it
/// held), the shard first replays those messages, publishes again what the
/// last replayed minute produced, and journals every new message before it
/// handles it; the client should use manual acks so the broker redelivers
/// whatever was not journaled yet.
pub async fn drive_shard(
    shard: &mut Shard,
    scenario: &Arc<FleetScenario>,
    client: &MqttClient,
    rx: &mut UnboundedReceiver<Message>,
    opts: &DriveOptions,
    mut journal: Option<(&mut Journal, Vec<Message>)>,
) -> Result<DriveStats, DriveError> {
    let t0 = Instant::now();
    let who = format!("fleet shard {}", shard.shard_id());
    let mut stats = DriveStats::default();
    // Rotated at each minute only: remembers the current and previous minute.
    let mut dedup = Dedup::new(usize::MAX);
    // Real time: the next minute of the shard's clock, and since when it
    // has been waiting for its tick.
    let mut clock_since: Option<(u32, Instant)> = None;
    if let Some((_, held)) = journal.as_mut() {
        if !held.is_empty() {
            let held = std::mem::take(held);
            let again = tokio::task::block_in_place(|| replay(shard, &held, &mut dedup));
            stats.replayed = held.len() as u64;
            for m in again {
                client.publish(m).await?;
                stats.sent += 1;
            }
        }
    }
    loop {
        step_and_publish(shard, client, &mut dedup, &mut stats).await?;
        if shard.next_minute() >= scenario.duration_min {
            client.flush(opts.idle_timeout).await?;
            stats.wall_s = t0.elapsed().as_secs_f64();
            return Ok(stats);
        }
        let minute = shard.next_minute();
        let m = if let Some(period) = shard.realtime_minute() {
            // Real time: a tick overdue by half a minute is stepped on the
            // shard's own clock.
            let clock = shard.next_clock_minute();
            let since = *clock_since.get_or_insert((clock, Instant::now()));
            let since = if since.0 == clock {
                since.1
            } else {
                clock_since = Some((clock, Instant::now()));
                Instant::now()
            };
            let overdue = since + period.mul_f64(1.5);
            tokio::select! {
                got = rx.recv() => match got {
                    Some(m) => m,
                    None => return Err(DriveError::Closed { who: who.clone() }),
                },
                _ = tokio::time::sleep_until(overdue.into()) => {
                    shard.clock_tick();
                    // The next one is due a minute after this one was.
                    clock_since = Some((shard.next_clock_minute(), overdue - period.mul_f64(0.5)));
                    continue;
                }
            }
        } else {
            next(
                rx,
                opts,
                &who,
                || format!("minute {minute}, waiting for the server's tick and its messages"),
                "is the server running with the same FLEET.toml, --broker and --run-id? a message lost on the way also stops the lockstep",
            )
            .await?
        };
        let mut batch = vec![m];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for m in batch {
            stats.received += 1;
            if dedup.seen(&m) {
                stats.duplicates += 1;
                client.ack(&m).await?;
                continue;
            }
            if let Some((j, _)) = journal.as_mut() {
                j.append(&m)?;
            }
            if shard.handle(&m).is_err() {
                stats.bad += 1;
            }
            client.ack(&m).await?;
            // Step as soon as a minute is ready, before the batch's later
            // messages: in a real-time run they may belong to the next
            // minute already.
            if shard.is_ready() {
                step_and_publish(shard, client, &mut dedup, &mut stats).await?;
            }
        }
    }
}

/// Publishes what the shard has to send, stepping its minute if ready.
async fn step_and_publish(
    shard: &mut Shard,
    client: &MqttClient,
    dedup: &mut Dedup,
    stats: &mut DriveStats,
) -> Result<(), DriveError> {
    let before = shard.next_minute();
    let out: Vec<Message> = tokio::task::block_in_place(|| {
        let mut v = Vec::new();
        while let Some(m) = shard.poll_transmit() {
            v.push(m);
        }
        v
    });
    if shard.next_minute() != before {
        dedup.rotate();
    }
    for m in out {
        client.publish(m).await?;
        stats.sent += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_drops_exact_repeats_only() {
        let m = |t: &str, p: &[u8]| Message {
            topic: t.into(),
            payload: p.to_vec(),
            retain: false,
        };
        let mut d = Dedup::new(2);
        assert!(!d.seen(&m("a", b"1")));
        assert!(d.seen(&m("a", b"1")));
        assert!(!d.seen(&m("a", b"2")));
        assert!(!d.seen(&m("b", b"1")));
        // Rotated once: the first is still remembered in the old set.
        assert!(d.seen(&m("a", b"1")));
    }

    #[test]
    fn shard_dedup_forgets_after_two_minutes() {
        let m = Message {
            topic: "maslow/r/site/1/dispatch".into(),
            payload: vec![1, 2, 3],
            retain: false,
        };
        let mut d = Dedup::new(usize::MAX);
        assert!(!d.seen(&m));
        d.rotate(); // next minute: a late redelivery is still a repeat
        assert!(d.seen(&m));
        d.rotate();
        d.rotate(); // two minutes on: the same bytes again are a new message (a replay)
        assert!(!d.seen(&m));
    }
}
