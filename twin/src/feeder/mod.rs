//! # feeder — LV distribution networks and their unbalanced power flow
//!
//! Radial low-voltage feeders: a source behind one distribution transformer,
//! three-phase lines with 3×3 phase impedance matrices, buses, and houses
//! connected to one phase (or three). [`Network::solve`] runs a three-phase
//! unbalanced power flow by backward/forward sweep for one [`LoadSnapshot`].
//!
//! ## The model
//! - **Source**: an ideal, balanced three-phase voltage (`basekv`, `pu`,
//!   `angle`) behind sequence impedances Z1 (= Z2) and Z0, grounded wye.
//! - **Transformer** (at most one, at the source bus): two windings,
//!   three-phase, `Dyn`/`Yyn` (HV `delta` or `wye`, LV grounded `wye`).
//!   Series impedance `(%r1 + %r2) + j·xhl` on winding 1's kVA and winding
//!   2's kV, equal in all sequences; no magnetising branch. A delta–wye
//!   transformer shifts the LV side by −30° (OpenDSS's convention, and
//!   pandapower's `Dyn` with `shift_degree=30`); its delta winding blocks
//!   zero-sequence current, so the LV side sees the source's Z0 only
//!   through a `Yyn` transformer. Source and transformer are folded into a
//!   Thévenin equivalent at the LV busbar, in sequence components, and the
//!   HV bus voltage is recovered after the sweep.
//! - **Lines**: 3×3 series phase impedance matrices (from sequence values
//!   `r1 x1 r0 x0`: self (Z0+2Z1)/3, mutual (Z0−Z1)/3; or from
//!   `rmatrix/xmatrix`, with a 4-wire matrix Kron-reduced onto the phases:
//!   the neutral is assumed grounded everywhere) and a π shunt capacitance.
//! - **Loads**: wye, phase to ground, OpenDSS `model=1`: constant P and Q
//!   while the voltage is within `vminpu..vmaxpu` of the load's `kv`, a
//!   constant impedance outside. A three-phase load takes a third on each
//!   phase.
//! - **Solver**: backward/forward sweep over the tree (ordered once when the
//!   network is built, so a time series only re-sweeps), flat start every
//!   snapshot (deterministic), converged when no phase voltage moves more
//!   than [`SolveOptions::tolerance_pu`] in an iteration, error
//!   [`FeederError::NoConvergence`] after [`SolveOptions::max_iterations`].
//!
//! ## The OpenDSS subset ([`dss`])
//! `Clear`; `New Circuit.<name>` (the `Vsource.source`: `bus1 basekv pu
//! angle phases=3 mvasc3 mvasc1 isc3 isc1 x1r1 x0r0 r1 x1 r0 x0`) and
//! `Edit Vsource.source`; `New Transformer.` (`phases=3 windings=2 buses
//! conns kvs kvas %rs %r %loadloss xhl taps`, or per winding `wdg= bus conn
//! kv kva %r tap`; `%noloadloss`/`%imag` only 0; `sub` ignored); `New
//! LineCode.` (`nphases` 3, or 4 with `kron=yes`; `r1 x1 r0 x0 c1 c0 b1 b0`
//! or `rmatrix xmatrix cmatrix` in lower-triangle or full form; `units`
//! none/mi/kft/km/m/ft/in/cm/mm; `basefreq`; ratings ignored); `New Line.`
//! (`bus1 bus2 linecode length units phases=3`, or the impedance properties
//! inline); `New Load.` (`bus1 phases kv kw kvar pf model=1 conn=wye vminpu
//! vmaxpu`; `yearly/daily/duty` ignored); `set voltagebases=[...]` and
//! `set defaultbasefrequency=`; `calcvoltagebases`; `redirect`/`compile`
//! (paths relative to the file that names them); `Buscoords` and `solve`
//! ignored with a note, and so are `New Loadshape.`, `New Monitor.` and
//! `New EnergyMeter.` (time series and metering do not change a snapshot). Comments `!` and `//`; `~` and `more` continuation
//! lines; keys, classes, names and buses case-insensitive; `bus.1.2.3`
//! node notation (a one-phase load on `bus.2` or `bus.2.0`). OpenDSS's
//! built-in default impedances and capacitances are *not* applied: a line
//! code must give them. Anything else is a [`FeederError::Dss`] naming the
//! file, the line and the unsupported thing.

pub mod dss;
mod network;

pub use dss::{parse_file, parse_str, DssModel, C64};
pub use network::{LoadSnapshot, Network, Solution, SolveOptions, TransformerFlow};

/// Errors of the feeder model: parse errors name file and line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeederError {
    /// A script line the subset does not understand, or an invalid value.
    #[error("{file}:{line}: {message}")]
    Dss {
        /// File the command is in.
        file: String,
        /// 1-based line of the command.
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// A file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's message.
        message: String,
    },
    /// The parsed elements do not form a network this model can solve.
    #[error("invalid network: {0}")]
    Network(String),
    /// A load snapshot does not fit the network.
    #[error("load snapshot: {0}")]
    Snapshot(String),
    /// The sweep did not converge.
    #[error("power flow did not converge in {iterations} iterations: the largest voltage change in the last one was {mismatch_pu:.3e} p.u. (tolerance {tolerance_pu:.1e}); the loads may be beyond what the feeder can carry")]
    NoConvergence {
        /// Iterations run.
        iterations: usize,
        /// Largest phase-voltage change in the last iteration, p.u.
        mismatch_pu: f64,
        /// The tolerance asked for, p.u.
        tolerance_pu: f64,
    },
}
