//! The pack-statistics fold: what a pack reports about its cells after a
//! step ([`PackOutput`]: pack voltage, SOC/temperature/SOH means and
//! extremes, the lowest and highest series position, total heat, the OR of
//! the limit flags, the energy counters), gathered cell by cell and series
//! position by series position.
//!
//! Shared by the ECM pack (its scalar engine folds cell by cell; its
//! structure-of-arrays engine reduces lane-wise partial sums and hands them
//! over) and the SPMe pack. Plain arithmetic on the numbers each pack
//! passes in: it may use the battery's output types, never a cell model.
//! The order of the additions is part of the outputs: a pack folds its
//! cells in index order, series position major.

use super::cell::{CellOutput, CellState, LimitFlags};

/// What a pack reports after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackOutput {
    pub voltage_v: f64,
    /// Pack current (A, positive = discharge).
    pub current_a: f64,
    /// Terminal power (W, positive = discharge).
    pub power_w: f64,
    pub soc_mean: f64,
    pub soc_min: f64,
    pub soc_max: f64,
    /// Lowest and highest series-position voltage, and their positions (0-based).
    pub cell_voltage_min_v: f64,
    pub cell_voltage_min_index: usize,
    pub cell_voltage_max_v: f64,
    pub cell_voltage_max_index: usize,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
    pub temperature_mean_c: f64,
    /// Mean and lowest capacity state of health over the cells (1 = new).
    pub soh: f64,
    pub soh_min: f64,
    /// Total heat generated in the cells (W, mean over the step).
    pub heat_w: f64,
    /// Energy out of (discharge) and into (charge) the terminals since the
    /// start (Wh, both ≥ 0); throughput is their sum.
    pub energy_discharged_wh: f64,
    pub energy_charged_wh: f64,
    /// Flags of all cells OR-ed together.
    pub limits: LimitFlags,
}

impl PackOutput {
    pub fn energy_throughput_wh(&self) -> f64 {
        self.energy_discharged_wh + self.energy_charged_wh
    }
}

/// What the fold takes from one cell after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CellSample {
    pub voltage_v: f64,
    pub soc: f64,
    pub temperature_c: f64,
    /// Capacity state of health (1 = new).
    pub soh: f64,
    pub heat_w: f64,
    pub limits: LimitFlags,
}

impl From<&CellState> for CellSample {
    #[inline(always)]
    fn from(c: &CellState) -> Self {
        CellSample {
            voltage_v: c.voltage_v,
            soc: c.soc,
            temperature_c: c.t_cell_c,
            soh: 1.0 - c.ageing.capacity_fade(),
            heat_w: c.heat_w,
            limits: c.limits,
        }
    }
}

impl From<&CellOutput> for CellSample {
    fn from(o: &CellOutput) -> Self {
        CellSample {
            voltage_v: o.voltage_v,
            soc: o.soc,
            temperature_c: o.temperature_c,
            soh: o.soh,
            heat_w: o.heat_w,
            limits: o.limits,
        }
    }
}

/// How the SOC, temperature and SOH means are summed. The two round
/// differently; the ECM pack has always used the first and the SPMe pack
/// the second, and each keeps its own so that its outputs stay the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MeanSum {
    /// Add the cells' values, divide the sum by the cell count.
    OfValues,
    /// Add each cell's value divided by the cell count.
    OfShares { cells: f64 },
}

/// Running pack statistics of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PackStats {
    /// Sum of the series positions' voltages (V).
    pub voltage_v: f64,
    pub soc_sum: f64,
    pub soc_min: f64,
    pub soc_max: f64,
    pub temperature_sum_c: f64,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
    pub soh_sum: f64,
    pub soh_min: f64,
    pub heat_w: f64,
    pub limits: LimitFlags,
    /// Lowest and highest series-position voltage and their positions
    /// (the first one wins a tie).
    pub cell_voltage_min_v: f64,
    pub cell_voltage_min_index: usize,
    pub cell_voltage_max_v: f64,
    pub cell_voltage_max_index: usize,
    means: MeanSum,
}

impl PackStats {
    /// Nothing gathered yet: sums 0, extremes at ±∞.
    #[inline(always)]
    pub fn new(means: MeanSum) -> Self {
        PackStats {
            voltage_v: 0.0,
            soc_sum: 0.0,
            soc_min: f64::INFINITY,
            soc_max: f64::NEG_INFINITY,
            temperature_sum_c: 0.0,
            temperature_min_c: f64::INFINITY,
            temperature_max_c: f64::NEG_INFINITY,
            soh_sum: 0.0,
            soh_min: f64::INFINITY,
            heat_w: 0.0,
            limits: LimitFlags::NONE,
            cell_voltage_min_v: f64::INFINITY,
            cell_voltage_min_index: 0,
            cell_voltage_max_v: f64::NEG_INFINITY,
            cell_voltage_max_index: 0,
            means,
        }
    }

    /// The statistics of `series × parallel` cells (index `s * parallel +
    /// p`); a series position's voltage is the mean of its cells'.
    pub fn gather<C>(
        cells: &[C],
        series: usize,
        parallel: usize,
        means: MeanSum,
        sample: impl Fn(&C) -> CellSample,
    ) -> Self {
        let mut stats = PackStats::new(means);
        for s in 0..series {
            let mut voltage_sum_v = 0.0;
            for c in &cells[s * parallel..(s + 1) * parallel] {
                let c = sample(c);
                stats.add_cell(&c);
                voltage_sum_v += c.voltage_v;
            }
            stats.add_series_position(s, voltage_sum_v / parallel as f64);
        }
        stats
    }

    /// Adds one cell (extremes by `f64::min`/`max`: NaN never wins).
    #[inline(always)]
    pub fn add_cell(&mut self, c: &CellSample) {
        self.soc_sum += self.term(c.soc);
        self.soc_min = self.soc_min.min(c.soc);
        self.soc_max = self.soc_max.max(c.soc);
        self.temperature_sum_c += self.term(c.temperature_c);
        self.temperature_min_c = self.temperature_min_c.min(c.temperature_c);
        self.temperature_max_c = self.temperature_max_c.max(c.temperature_c);
        self.soh_sum += self.term(c.soh);
        self.soh_min = self.soh_min.min(c.soh);
        self.heat_w += c.heat_w;
        self.limits |= c.limits;
    }

    /// Adds series position `index` at `voltage_v` (its cells' mean).
    #[inline(always)]
    pub fn add_series_position(&mut self, index: usize, voltage_v: f64) {
        self.voltage_v += voltage_v;
        if voltage_v < self.cell_voltage_min_v {
            self.cell_voltage_min_v = voltage_v;
            self.cell_voltage_min_index = index;
        }
        if voltage_v > self.cell_voltage_max_v {
            self.cell_voltage_max_v = voltage_v;
            self.cell_voltage_max_index = index;
        }
    }

    /// What a cell adds to the sums of the means.
    #[inline(always)]
    fn term(&self, x: f64) -> f64 {
        match self.means {
            MeanSum::OfValues => x,
            MeanSum::OfShares { cells } => x / cells,
        }
    }

    /// The mean of `cells` cells from the sum of their terms.
    #[inline(always)]
    fn mean(&self, sum: f64, cells: f64) -> f64 {
        match self.means {
            MeanSum::OfValues => sum / cells,
            MeanSum::OfShares { .. } => sum,
        }
    }

    /// The pack's output for these statistics of `cells` cells at pack
    /// current `current_a`, with `extra` limit flags (the energy counters
    /// are 0: see [`EnergyCounter::record`]). Means are clamped into
    /// [min, max] against rounding.
    pub fn output(&self, cells: usize, current_a: f64, extra: LimitFlags) -> PackOutput {
        let n = cells as f64;
        PackOutput {
            voltage_v: self.voltage_v,
            current_a,
            power_w: self.voltage_v * current_a,
            soc_mean: self.mean(self.soc_sum, n).clamp(self.soc_min, self.soc_max),
            soc_min: self.soc_min,
            soc_max: self.soc_max,
            cell_voltage_min_v: self.cell_voltage_min_v,
            cell_voltage_min_index: self.cell_voltage_min_index,
            cell_voltage_max_v: self.cell_voltage_max_v,
            cell_voltage_max_index: self.cell_voltage_max_index,
            temperature_min_c: self.temperature_min_c,
            temperature_max_c: self.temperature_max_c,
            temperature_mean_c: self
                .mean(self.temperature_sum_c, n)
                .clamp(self.temperature_min_c, self.temperature_max_c),
            soh: self.mean(self.soh_sum, n).clamp(self.soh_min, 1.0),
            soh_min: self.soh_min,
            heat_w: self.heat_w,
            energy_discharged_wh: 0.0,
            energy_charged_wh: 0.0,
            limits: self.limits | extra,
        }
    }
}

/// Energy out of (discharge) and into (charge) a pack's terminals since it
/// was built (Wh, both ≥ 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct EnergyCounter {
    discharged_wh: f64,
    charged_wh: f64,
}

impl EnergyCounter {
    /// Counts a step of `dt_s` at `out.power_w` and writes the totals into
    /// `out`.
    pub fn record(&mut self, out: &mut PackOutput, dt_s: f64) {
        let e_wh = out.power_w * dt_s / 3600.0;
        if e_wh > 0.0 {
            self.discharged_wh += e_wh;
        } else {
            self.charged_wh -= e_wh;
        }
        out.energy_discharged_wh = self.discharged_wh;
        out.energy_charged_wh = self.charged_wh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(voltage_v: f64, soc: f64, temperature_c: f64, soh: f64) -> CellSample {
        CellSample {
            voltage_v,
            soc,
            temperature_c,
            soh,
            heat_w: 0.5,
            limits: LimitFlags::NONE,
        }
    }

    /// Two series positions of two cells.
    fn cells() -> Vec<CellSample> {
        vec![
            cell(3.3, 0.5, 25.0, 0.99),
            cell(3.1, 0.3, 27.0, 0.97),
            cell(3.2, 0.4, 26.0, 1.0),
            CellSample {
                limits: LimitFlags::UNDER_TEMPERATURE,
                ..cell(3.0, 0.2, 20.0, 0.98)
            },
        ]
    }

    #[test]
    fn gathers_extremes_means_and_series_positions() {
        let stats = PackStats::gather(&cells(), 2, 2, MeanSum::OfValues, |c| *c);
        let o = stats.output(4, 10.0, LimitFlags::CURRENT_CLAMPED);
        assert!((o.voltage_v - 6.3).abs() < 1e-12);
        assert_eq!(o.power_w, o.voltage_v * 10.0);
        assert_eq!((o.cell_voltage_min_index, o.cell_voltage_max_index), (1, 0));
        assert!((o.cell_voltage_min_v - 3.1).abs() < 1e-12);
        assert_eq!((o.soc_min, o.soc_max), (0.2, 0.5));
        assert!((o.soc_mean - 0.35).abs() < 1e-12);
        assert_eq!((o.temperature_min_c, o.temperature_max_c), (20.0, 27.0));
        assert_eq!((o.soh_min, o.heat_w), (0.97, 2.0));
        assert!(o.limits.contains(LimitFlags::UNDER_TEMPERATURE));
        assert!(o.limits.contains(LimitFlags::CURRENT_CLAMPED));
        assert_eq!((o.energy_discharged_wh, o.energy_charged_wh), (0.0, 0.0));
    }

    #[test]
    fn the_two_mean_sums_round_as_their_packs_always_did() {
        let socs = [0.13, 0.85, 0.76];
        let sum_then_divide = (socs[0] + socs[1] + socs[2]) / 3.0;
        let sum_of_shares = socs[0] / 3.0 + socs[1] / 3.0 + socs[2] / 3.0;
        assert_ne!(sum_then_divide, sum_of_shares);
        let samples: Vec<CellSample> = socs.iter().map(|&s| cell(3.0, s, 25.0, 1.0)).collect();
        for (means, expected) in [
            (MeanSum::OfValues, sum_then_divide),
            (MeanSum::OfShares { cells: 3.0 }, sum_of_shares),
        ] {
            let o =
                PackStats::gather(&samples, 3, 1, means, |c| *c).output(3, 0.0, LimitFlags::NONE);
            assert_eq!(o.soc_mean, expected, "{means:?}");
        }
    }

    #[test]
    fn means_stay_within_the_extremes_and_ties_keep_the_first_position() {
        let same = vec![cell(3.0, 0.1, 25.0, 1.0); 3];
        let o = PackStats::gather(&same, 3, 1, MeanSum::OfValues, |c| *c).output(
            3,
            0.0,
            LimitFlags::NONE,
        );
        assert_eq!((o.soc_mean, o.soc_min, o.soc_max), (0.1, 0.1, 0.1));
        assert_eq!((o.cell_voltage_min_index, o.cell_voltage_max_index), (0, 0));
        assert_eq!(o.soh, 1.0);
    }

    #[test]
    fn energy_counts_each_direction_positive() {
        let mut counter = EnergyCounter::default();
        let mut o = PackStats::gather(&cells(), 2, 2, MeanSum::OfValues, |c| *c).output(
            4,
            0.0,
            LimitFlags::NONE,
        );
        for (power_w, dt_s) in [(3600.0, 2.0), (-1800.0, 4.0), (0.0, 10.0), (-0.0, 1.0)] {
            o.power_w = power_w;
            counter.record(&mut o, dt_s);
        }
        assert_eq!((o.energy_discharged_wh, o.energy_charged_wh), (2.0, 2.0));
    }
}
