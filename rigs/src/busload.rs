//! CAN bus load: what the contract can cost at worst, and what a run used.
//!
//! - [`contract_worst_case`]: the static worst-case load of the cyclic
//!   messages in `firmware::wire::can::MESSAGES` (generated from
//!   `firmware/can/maslow.dbc`): each message's frames per second (its
//!   cycle time; once per circuit for `CircuitStatus`, once per socket for
//!   `SocketStatus` and `SocketCapCmd`; the event-triggered `TimeSync` once
//!   per lockstep step if a step is given) times the longest its frame can
//!   be on the wire — the worst-case stuffed length of a standard frame of
//!   its DLC, from SOF through the 3-bit intermission (135 bits for 8
//!   bytes) — over the bitrate.
//! - [`BusLoadMeter`]: fed every frame seen on a run with its time, reports
//!   the bits actually sent (stuff bits included) per second and as a
//!   share of the bitrate, on average and in the busiest 1-s window.

use std::collections::VecDeque;

use firmware::wire::can::{MessageSpec, MESSAGES};
use twin::time::SimTime;

use links::{bit_length, CanFrame, CanId};

/// The contract's bitrate (DBC `Baudrate`), bit/s.
pub const CONTRACT_BITRATE_BPS: u32 = 500_000;

/// The sliding window of [`BusLoadMeter`]'s worst-case figure, µs.
pub const WINDOW_US: u64 = 1_000_000;

/// What the worst-case estimate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLoadParams {
    /// DC circuits: one `CircuitStatus` each (at most 16).
    pub circuits: u32,
    /// USB-PD sockets: one `SocketStatus` and one `SocketCapCmd` each.
    pub sockets: u32,
    /// Lockstep plant step, ms: one `TimeSync` per step. `None`: real-time
    /// rigs and benches, where it is not sent.
    pub lockstep_step_ms: Option<u32>,
    pub bitrate_bps: u32,
}

impl Default for ContractLoadParams {
    /// The contract's maximum assembly: 16 circuits, 16 sockets, no
    /// lockstep, 500 kbit/s.
    fn default() -> Self {
        ContractLoadParams {
            circuits: 16,
            sockets: 16,
            lockstep_step_ms: None,
            bitrate_bps: CONTRACT_BITRATE_BPS,
        }
    }
}

/// One message's share of the worst case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageLoad {
    pub name: &'static str,
    pub id: u16,
    /// Frames of this message per second, all instances together.
    pub frames_per_s: f64,
    /// Longest frame on the wire, bits (stuffing and intermission included).
    pub worst_case_bits: u32,
    pub bits_per_s: f64,
}

/// The contract's worst-case load.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractLoad {
    pub params: ContractLoadParams,
    /// Per message, in DBC order (messages not sent are left out).
    pub messages: Vec<MessageLoad>,
    pub frames_per_s: f64,
    pub bits_per_s: f64,
    /// `bits_per_s / bitrate`, 0..=1 (may exceed 1 if the bus is overloaded).
    pub load: f64,
}

impl ContractLoad {
    pub fn load_percent(&self) -> f64 {
        self.load * 100.0
    }
}

/// Instances of a message per cycle: one per circuit or socket for the
/// indexed messages.
fn instances(spec: &MessageSpec, p: &ContractLoadParams) -> u32 {
    match spec.name {
        "CircuitStatus" => p.circuits,
        "SocketStatus" | "SocketCapCmd" => p.sockets,
        _ => 1,
    }
}

/// Longest standard frame of `dlc` bytes on the wire, bits.
pub fn worst_case_frame_bits(dlc: u8) -> u32 {
    let n = usize::from(dlc.min(8));
    // All-zero data of the right length: the worst case depends only on
    // format and DLC. At most 8 bytes: `new` cannot fail.
    CanFrame::new(CanId::Standard(0), &[0u8; 8][..n])
        .map(|f| bit_length(&f).worst_case())
        .unwrap_or(0)
}

/// The contract's static worst-case bus load. See the module docs.
pub fn contract_worst_case(params: ContractLoadParams) -> ContractLoad {
    let mut messages = Vec::new();
    for spec in MESSAGES {
        let per_s = if spec.cycle_ms > 0 {
            1000.0 / f64::from(spec.cycle_ms)
        } else {
            match (spec.name, params.lockstep_step_ms) {
                ("TimeSync", Some(step)) if step > 0 => 1000.0 / f64::from(step),
                _ => 0.0,
            }
        };
        let frames_per_s = per_s * f64::from(instances(spec, &params));
        if frames_per_s == 0.0 {
            continue;
        }
        let worst_case_bits = worst_case_frame_bits(spec.dlc);
        messages.push(MessageLoad {
            name: spec.name,
            id: spec.id,
            frames_per_s,
            worst_case_bits,
            bits_per_s: frames_per_s * f64::from(worst_case_bits),
        });
    }
    let frames_per_s = messages.iter().map(|m| m.frames_per_s).sum();
    let bits_per_s: f64 = messages.iter().map(|m| m.bits_per_s).sum();
    ContractLoad {
        params,
        messages,
        frames_per_s,
        bits_per_s,
        load: bits_per_s / f64::from(params.bitrate_bps.max(1)),
    }
}

/// What a run put on the bus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusLoadReport {
    pub frames: u64,
    /// Bits on the wire, stuff bits included.
    pub bits: u64,
    /// From the first frame to the report's end, s (at least the window).
    pub duration_s: f64,
    pub average_bits_per_s: f64,
    /// `average_bits_per_s / bitrate`, percent.
    pub average_load_percent: f64,
    /// Bits in the busiest window `(t - 1 s, t]` ending at a frame.
    pub worst_window_bits: u64,
    pub worst_window_load_percent: f64,
    /// Where the busiest window ends.
    pub worst_window_end: SimTime,
    /// Frames recorded with a time before an earlier frame's (counted at
    /// the later time).
    pub out_of_order: u64,
}

/// Per-run bus load meter. Feed it every frame in time order.
#[derive(Debug, Clone)]
pub struct BusLoadMeter {
    bitrate_bps: u32,
    first_us: Option<u64>,
    last_us: u64,
    frames: u64,
    bits: u64,
    window: VecDeque<(u64, u32)>,
    window_bits: u64,
    worst_window_bits: u64,
    worst_window_end_us: u64,
    out_of_order: u64,
}

impl BusLoadMeter {
    pub fn new(bitrate_bps: u32) -> Self {
        BusLoadMeter {
            bitrate_bps: bitrate_bps.max(1),
            first_us: None,
            last_us: 0,
            frames: 0,
            bits: 0,
            window: VecDeque::new(),
            window_bits: 0,
            worst_window_bits: 0,
            worst_window_end_us: 0,
            out_of_order: 0,
        }
    }

    /// A frame seen on the bus at `at`.
    pub fn record(&mut self, at: SimTime, frame: &CanFrame) {
        let mut t = at.as_micros();
        if self.first_us.is_some() && t < self.last_us {
            self.out_of_order += 1;
            t = self.last_us;
        }
        self.first_us.get_or_insert(t);
        self.last_us = t;
        let bits = bit_length(frame).actual();
        self.frames += 1;
        self.bits += u64::from(bits);
        self.window.push_back((t, bits));
        self.window_bits += u64::from(bits);
        while let Some(&(t0, b)) = self.window.front() {
            if t0 + WINDOW_US <= t {
                self.window.pop_front();
                self.window_bits -= u64::from(b);
            } else {
                break;
            }
        }
        if self.window_bits > self.worst_window_bits {
            self.worst_window_bits = self.window_bits;
            self.worst_window_end_us = t;
        }
    }

    /// The figures for the run up to `end`.
    pub fn report(&self, end: SimTime) -> BusLoadReport {
        let first = self.first_us.unwrap_or(0);
        let span_us = end.as_micros().max(self.last_us).saturating_sub(first);
        let duration_s = span_us.max(WINDOW_US) as f64 * 1e-6;
        let rate = f64::from(self.bitrate_bps);
        let average_bits_per_s = self.bits as f64 / duration_s;
        let window_s = WINDOW_US as f64 * 1e-6;
        BusLoadReport {
            frames: self.frames,
            bits: self.bits,
            duration_s,
            average_bits_per_s,
            average_load_percent: 100.0 * average_bits_per_s / rate,
            worst_window_bits: self.worst_window_bits,
            worst_window_load_percent: 100.0 * self.worst_window_bits as f64 / window_s / rate,
            worst_window_end: SimTime::from_micros(self.worst_window_end_us),
            out_of_order: self.out_of_order,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eight_byte_standard_frame_is_at_most_135_bits() {
        assert_eq!(worst_case_frame_bits(8), 135);
        assert_eq!(worst_case_frame_bits(0), 47 + 8);
    }

    #[test]
    fn the_shipped_contract_stays_under_30_percent_with_16_circuits_and_sockets() {
        let load = contract_worst_case(ContractLoadParams::default());
        for m in &load.messages {
            println!(
                "{:>15} {:#05x} {:7.1} frames/s × {} bits = {:8.0} bit/s",
                m.name, m.id, m.frames_per_s, m.worst_case_bits, m.bits_per_s
            );
        }
        println!(
            "worst case: {:.0} frames/s, {:.0} bit/s = {:.2} % of 500 kbit/s",
            load.frames_per_s,
            load.bits_per_s,
            load.load_percent()
        );
        // 10 messages at 100 ms, 16 circuits at 500 ms, 16 + 16 socket
        // frames and PV at 1 s: 165 frames/s of 135 bits.
        assert_eq!(load.frames_per_s, 165.0);
        assert!((load.bits_per_s - 165.0 * 135.0).abs() < 1e-9);
        assert!(load.load_percent() < 30.0, "{:.2} %", load.load_percent());
        assert!(!load.messages.iter().any(|m| m.name == "TimeSync"));
        // A 10-ms lockstep adds 100 TimeSync frames a second.
        let lockstep = contract_worst_case(ContractLoadParams {
            lockstep_step_ms: Some(10),
            ..Default::default()
        });
        println!("with a 10-ms lockstep: {:.2} %", lockstep.load_percent());
        assert_eq!(lockstep.frames_per_s, 265.0);
        assert!(lockstep.load_percent() < 30.0);
        // The indexed messages scale with the assembly.
        let small = contract_worst_case(ContractLoadParams {
            circuits: 4,
            sockets: 4,
            ..Default::default()
        });
        assert_eq!(small.frames_per_s, 165.0 - 12.0 * 2.0 - 12.0 - 12.0);
    }

    #[test]
    fn the_meter_reports_average_and_busiest_second() {
        let mut m = BusLoadMeter::new(500_000);
        let f = CanFrame::new(CanId::Standard(0x100), &[0x55; 8]).unwrap();
        let bits = u64::from(bit_length(&f).actual());
        // 10 frames a second for 10 s and a burst of 50 frames in 10 ms
        // at 5 s, in time order.
        let mut times: Vec<u64> = (0..100u64).map(|k| k * 100_000).collect();
        times.extend((0..50u64).map(|k| 5_000_000 + k * 200));
        times.sort();
        for t in times {
            m.record(SimTime::from_micros(t), &f);
        }
        let r = m.report(SimTime::from_secs(10));
        assert_eq!(r.frames, 150);
        assert_eq!(r.bits, 150 * bits);
        assert_eq!(r.duration_s, 10.0);
        assert!((r.average_bits_per_s - 15.0 * bits as f64).abs() < 1e-9);
        assert_eq!(r.worst_window_bits, 60 * bits);
        assert!(
            (r.worst_window_load_percent - 100.0 * 60.0 * bits as f64 / 500_000.0).abs() < 1e-9
        );
        assert!((5.0..6.0).contains(&r.worst_window_end.as_secs_f64()));
        // Out-of-order frames are counted at the later time.
        m.record(SimTime::from_secs(1), &f);
        assert_eq!(m.report(SimTime::from_secs(10)).out_of_order, 1);
        // An empty run is no load.
        let r = BusLoadMeter::new(500_000).report(SimTime::from_secs(3));
        assert_eq!((r.frames, r.average_load_percent), (0, 0.0));
    }
}
