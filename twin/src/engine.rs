//! The simulation engine: fixed-step, multi-rate stepping in simulated time,
//! events scheduled at times, and a registry of named signals with units.
//!
//! The engine never reads a clock. [`Engine::tick`] advances simulated time
//! by one base period; a caller runs ticks as fast as it can (virtual time,
//! deterministic) or paces them against the wall clock (the real-time mode
//! lives in `rigs::pacing`, at the IO edge). Either way the plant sees the
//! same sequence of `step(task, now, dt)` calls.
//!
//! Multi-rate: a plant declares tasks with periods (say, electrical 10 ms and
//! thermal 1 s). The shortest period is the base tick; every other period
//! must be a whole multiple of it. Within a tick, due events are applied
//! first, then due tasks run in the order they were declared.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use crate::time::SimTime;

/// Physical unit of a signal. Names also carry units (`pack_voltage_v`); the
/// unit here is what instruments and reports print on axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Volt,
    Ampere,
    Watt,
    WattHour,
    KilowattHour,
    Celsius,
    Hertz,
    Second,
    /// Dimensionless 0..1 (state of charge, state of health).
    Fraction,
    /// 0 or 1.
    Bool,
    /// Irradiance.
    WattPerSquareMetre,
    /// A count or an enumerated state.
    Count,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Volt => "V",
            Unit::Ampere => "A",
            Unit::Watt => "W",
            Unit::WattHour => "Wh",
            Unit::KilowattHour => "kWh",
            Unit::Celsius => "°C",
            Unit::Hertz => "Hz",
            Unit::Second => "s",
            Unit::Fraction => "1",
            Unit::Bool => "bool",
            Unit::WattPerSquareMetre => "W/m²",
            Unit::Count => "count",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Handle to a registered signal: an index, so publishing a value is a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalId(u32);

/// Problems building an engine or its registry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("signal `{0}` is registered twice")]
    DuplicateSignal(String),
    #[error("unknown signal `{name}`; known signals: {known}")]
    UnknownSignal { name: String, known: String },
    #[error("a plant must declare at least one task")]
    NoTasks,
    #[error("task `{0}` has a zero period")]
    ZeroPeriod(String),
    #[error("task `{task}` period {period_us} µs is not a whole multiple of the base period {base_us} µs")]
    NotMultipleOfBase {
        task: String,
        period_us: u64,
        base_us: u64,
    },
    #[error("sample period must be a positive whole multiple of the base period {base_us} µs, got {period_us} µs")]
    BadSamplePeriod { period_us: u64, base_us: u64 },
}

/// Named signals with units and their latest values. Plants publish into it
/// after each tick; instruments and recorders read from it by name. Steps
/// never reach past it into a model's fields.
#[derive(Debug, Clone, Default)]
pub struct SignalRegistry {
    names: Vec<String>,
    units: Vec<Unit>,
    values: Vec<f64>,
}

impl SignalRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a signal; its value starts as NaN ("not yet published").
    pub fn register(&mut self, name: &str, unit: Unit) -> Result<SignalId, EngineError> {
        if self.lookup(name).is_some() {
            return Err(EngineError::DuplicateSignal(name.to_owned()));
        }
        self.names.push(name.to_owned());
        self.units.push(unit);
        self.values.push(f64::NAN);
        Ok(SignalId(self.names.len() as u32 - 1))
    }

    pub fn lookup(&self, name: &str) -> Option<SignalId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| SignalId(i as u32))
    }

    /// Like [`lookup`](Self::lookup), with an error listing what exists.
    pub fn require(&self, name: &str) -> Result<SignalId, EngineError> {
        self.lookup(name).ok_or_else(|| EngineError::UnknownSignal {
            name: name.to_owned(),
            known: self.names.join(", "),
        })
    }

    #[inline]
    pub fn set(&mut self, id: SignalId, value: f64) {
        self.values[id.0 as usize] = value;
    }

    /// Copies every value of `other` (a registry with the same signals,
    /// e.g. a clone of this one) into this one, without reallocating.
    /// Extra signals on either side are left alone.
    pub fn copy_values_from(&mut self, other: &SignalRegistry) {
        let n = self.values.len().min(other.values.len());
        self.values[..n].copy_from_slice(&other.values[..n]);
    }

    #[inline]
    pub fn get(&self, id: SignalId) -> f64 {
        self.values[id.0 as usize]
    }

    pub fn name(&self, id: SignalId) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn unit(&self, id: SignalId) -> Unit {
        self.units[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All signals in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (SignalId, &str, Unit, f64)> + '_ {
        (0..self.names.len()).map(move |i| {
            (
                SignalId(i as u32),
                self.names[i].as_str(),
                self.units[i],
                self.values[i],
            )
        })
    }
}

/// One periodic task of a plant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub name: &'static str,
    pub period_us: u64,
}

/// Index of a task in the order the plant declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskId(pub usize);

/// What the engine drives. Everything a plant knows about time arrives as
/// arguments.
pub trait Plant {
    /// Things that happen at scheduled times (an outage, a cloud, a device
    /// plugged in).
    type Event;
    /// Periodic tasks, fastest first or in any order; see [`Engine::new`].
    fn tasks(&self) -> Vec<TaskSpec>;
    /// Registers the plant's signals; called once by [`Engine::new`].
    fn register_signals(&mut self, signals: &mut SignalRegistry) -> Result<(), EngineError>;
    /// Applies an event that fell due at `now`.
    fn apply_event(&mut self, now: SimTime, event: Self::Event);
    /// Runs task `task` over `[now, now + dt_s)`.
    fn step(&mut self, task: TaskId, now: SimTime, dt_s: f64);
    /// Writes the latest values of the plant's signals.
    fn publish(&self, signals: &mut SignalRegistry);
}

/// Events ordered by due time, then by the order they were scheduled, so that
/// two events at the same instant always apply in the same order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(SimTime, u64, Slot<E>)>>,
    next_seq: u64,
}

/// Wrapper so that `E` need not be `Ord`: ordering is by (time, seq) only.
#[derive(Debug)]
struct Slot<E>(E);
impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn schedule(&mut self, at: SimTime, event: E) {
        self.heap.push(Reverse((at, self.next_seq, Slot(event))));
        self.next_seq += 1;
    }
    /// The next event due at or before `now`, if any.
    pub fn pop_due(&mut self, now: SimTime) -> Option<(SimTime, E)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((at, _, Slot(e))) = self.heap.pop()?;
                Some((at, e))
            }
            _ => None,
        }
    }
    pub fn next_due(&self) -> Option<SimTime> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Fixed-step, multi-rate engine in simulated time.
#[derive(Debug)]
pub struct Engine<E> {
    tasks: Vec<TaskSpec>,
    /// Task period in base ticks.
    task_every: Vec<u64>,
    base_us: u64,
    tick: u64,
    events: EventQueue<E>,
    signals: SignalRegistry,
}

impl<E> Engine<E> {
    /// Builds an engine for `plant`: checks its task periods and registers
    /// its signals (plus `time_s`).
    pub fn new<P: Plant<Event = E>>(plant: &mut P) -> Result<Self, EngineError> {
        let tasks = plant.tasks();
        let base_us = tasks
            .iter()
            .map(|t| t.period_us)
            .min()
            .ok_or(EngineError::NoTasks)?;
        if let Some(t) = tasks.iter().find(|t| t.period_us == 0) {
            return Err(EngineError::ZeroPeriod(t.name.to_owned()));
        }
        let mut task_every = Vec::with_capacity(tasks.len());
        for t in &tasks {
            if t.period_us % base_us != 0 {
                return Err(EngineError::NotMultipleOfBase {
                    task: t.name.to_owned(),
                    period_us: t.period_us,
                    base_us,
                });
            }
            task_every.push(t.period_us / base_us);
        }
        let mut signals = SignalRegistry::new();
        signals.register("time_s", Unit::Second)?;
        plant.register_signals(&mut signals)?;
        let mut engine = Self {
            tasks,
            task_every,
            base_us,
            tick: 0,
            events: EventQueue::new(),
            signals,
        };
        engine.publish(plant);
        Ok(engine)
    }

    /// Simulated time now (the start of the next tick).
    pub fn now(&self) -> SimTime {
        SimTime(self.tick * self.base_us)
    }
    pub fn base_period_us(&self) -> u64 {
        self.base_us
    }
    pub fn ticks(&self) -> u64 {
        self.tick
    }
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }
    pub fn signals(&self) -> &SignalRegistry {
        &self.signals
    }
    pub fn schedule(&mut self, at: SimTime, event: E) {
        self.events.schedule(at, event);
    }
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    fn publish<P: Plant<Event = E>>(&mut self, plant: &P) {
        self.signals.set(SignalId(0), self.now().as_secs_f64());
        plant.publish(&mut self.signals);
    }

    /// Advances one base tick: applies events due at the tick's start, runs
    /// the tasks due at this tick, then publishes signals at the tick's end.
    pub fn tick<P: Plant<Event = E>>(&mut self, plant: &mut P) {
        let now = self.now();
        while let Some((_, event)) = self.events.pop_due(now) {
            plant.apply_event(now, event);
        }
        for (i, every) in self.task_every.iter().enumerate() {
            if self.tick.is_multiple_of(*every) {
                let dt_s = (every * self.base_us) as f64 * 1e-6;
                plant.step(TaskId(i), now, dt_s);
            }
        }
        self.tick += 1;
        self.publish(plant);
    }

    /// Runs ticks until simulated time reaches `end` (no tick starts at or
    /// after `end`). `after_tick` sees the registry after every tick (for
    /// recorders) and may stop the run early by returning `false`.
    pub fn run_until<P: Plant<Event = E>>(
        &mut self,
        plant: &mut P,
        end: SimTime,
        mut after_tick: impl FnMut(SimTime, &SignalRegistry) -> bool,
    ) {
        while self.now() < end {
            self.tick(plant);
            if !after_tick(self.now(), &self.signals) {
                break;
            }
        }
    }
}

/// Samples chosen signals at a fixed period into columns: what `maslow twin
/// house` writes out and what later instruments build on.
#[derive(Debug, Clone)]
pub struct Recorder {
    ids: Vec<SignalId>,
    columns: Vec<(String, Unit)>,
    every_ticks: u64,
    time_s: Vec<f64>,
    values: Vec<Vec<f64>>,
}

impl Recorder {
    /// `names` must exist in `signals`; `period_us` must be a whole multiple
    /// of the engine's base period.
    pub fn new(
        signals: &SignalRegistry,
        names: &[&str],
        period_us: u64,
        base_us: u64,
    ) -> Result<Self, EngineError> {
        if period_us == 0 || base_us == 0 || !period_us.is_multiple_of(base_us) {
            return Err(EngineError::BadSamplePeriod { period_us, base_us });
        }
        let mut ids = Vec::with_capacity(names.len());
        let mut columns = Vec::with_capacity(names.len());
        for n in names {
            let id = signals.require(n)?;
            ids.push(id);
            columns.push((signals.name(id).to_owned(), signals.unit(id)));
        }
        Ok(Self {
            ids,
            columns,
            every_ticks: period_us / base_us,
            time_s: Vec::new(),
            values: vec![Vec::new(); names.len()],
        })
    }

    /// Records a row if `ticks` (the engine's tick count after the tick just
    /// run, or 0 for the initial state) falls on the sample period.
    pub fn observe(&mut self, ticks: u64, now: SimTime, signals: &SignalRegistry) {
        if ticks.is_multiple_of(self.every_ticks) {
            self.time_s.push(now.as_secs_f64());
            for (col, id) in self.values.iter_mut().zip(&self.ids) {
                col.push(signals.get(*id));
            }
        }
    }

    pub fn columns(&self) -> &[(String, Unit)] {
        &self.columns
    }
    pub fn time_s(&self) -> &[f64] {
        &self.time_s
    }
    pub fn values(&self) -> &[Vec<f64>] {
        &self.values
    }
    pub fn rows(&self) -> usize {
        self.time_s.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tank that fills at 1 unit/s (fast task) and a slow task counting its
    /// own invocations; an event empties the tank.
    #[derive(Default)]
    struct Tank {
        level: f64,
        slow_runs: u32,
        slow_dt_s: f64,
        log: Vec<(u64, &'static str)>,
        id_level: Option<SignalId>,
    }

    enum TankEvent {
        Empty,
        Mark(&'static str),
    }

    impl Plant for Tank {
        type Event = TankEvent;
        fn tasks(&self) -> Vec<TaskSpec> {
            vec![
                TaskSpec {
                    name: "fast",
                    period_us: 10_000,
                },
                TaskSpec {
                    name: "slow",
                    period_us: 1_000_000,
                },
            ]
        }
        fn register_signals(&mut self, s: &mut SignalRegistry) -> Result<(), EngineError> {
            self.id_level = Some(s.register("tank_level", Unit::Count)?);
            Ok(())
        }
        fn apply_event(&mut self, now: SimTime, e: TankEvent) {
            match e {
                TankEvent::Empty => self.level = 0.0,
                TankEvent::Mark(m) => self.log.push((now.as_micros(), m)),
            }
        }
        fn step(&mut self, task: TaskId, _now: SimTime, dt_s: f64) {
            match task.0 {
                0 => self.level += dt_s,
                _ => {
                    self.slow_runs += 1;
                    self.slow_dt_s = dt_s;
                }
            }
        }
        fn publish(&self, s: &mut SignalRegistry) {
            if let Some(id) = self.id_level {
                s.set(id, self.level);
            }
        }
    }

    #[test]
    fn multi_rate_tasks_run_at_their_periods() {
        let mut tank = Tank::default();
        let mut engine = Engine::new(&mut tank).unwrap();
        engine.run_until(&mut tank, SimTime::from_secs(10), |_, _| true);
        assert_eq!(engine.ticks(), 1000);
        assert_eq!(tank.slow_runs, 10);
        assert!((tank.slow_dt_s - 1.0).abs() < 1e-12);
        assert!((tank.level - 10.0).abs() < 1e-9);
        let id = engine.signals().require("tank_level").unwrap();
        assert!((engine.signals().get(id) - 10.0).abs() < 1e-9);
        assert!((engine.signals().get(SignalId(0)) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn events_apply_at_their_tick_in_scheduling_order() {
        let mut tank = Tank::default();
        let mut engine = Engine::new(&mut tank).unwrap();
        engine.schedule(SimTime::from_millis(55), TankEvent::Mark("b"));
        engine.schedule(SimTime::from_millis(50), TankEvent::Mark("a"));
        engine.schedule(SimTime::from_millis(55), TankEvent::Mark("c"));
        engine.schedule(SimTime::from_secs(5), TankEvent::Empty);
        engine.run_until(&mut tank, SimTime::from_secs(6), |_, _| true);
        // An event applies at the first tick whose start is at or after its
        // time: 55 ms lands on the tick that starts at 60 ms.
        assert_eq!(tank.log, vec![(50_000, "a"), (60_000, "b"), (60_000, "c")]);
        assert!((tank.level - 1.0).abs() < 1e-9, "{}", tank.level);
        assert_eq!(engine.pending_events(), 0);
    }

    #[test]
    fn bad_task_periods_are_rejected() {
        struct Bad(u64);
        impl Plant for Bad {
            type Event = ();
            fn tasks(&self) -> Vec<TaskSpec> {
                vec![
                    TaskSpec {
                        name: "a",
                        period_us: 10_000,
                    },
                    TaskSpec {
                        name: "b",
                        period_us: self.0,
                    },
                ]
            }
            fn register_signals(&mut self, _: &mut SignalRegistry) -> Result<(), EngineError> {
                Ok(())
            }
            fn apply_event(&mut self, _: SimTime, _: ()) {}
            fn step(&mut self, _: TaskId, _: SimTime, _: f64) {}
            fn publish(&self, _: &mut SignalRegistry) {}
        }
        let e = Engine::new(&mut Bad(15_000)).unwrap_err();
        assert!(matches!(e, EngineError::NotMultipleOfBase { .. }), "{e}");
        let e = Engine::new(&mut Bad(0)).unwrap_err();
        assert!(matches!(e, EngineError::ZeroPeriod(_)), "{e}");
    }

    #[test]
    fn registry_rejects_duplicates_and_names_unknowns() {
        let mut r = SignalRegistry::new();
        r.register("bus_voltage_v", Unit::Volt).unwrap();
        assert!(r.register("bus_voltage_v", Unit::Volt).is_err());
        let e = r.require("bus_volts").unwrap_err().to_string();
        assert!(
            e.contains("bus_volts") && e.contains("bus_voltage_v"),
            "{e}"
        );
    }

    #[test]
    fn recorder_samples_on_its_period() {
        let mut tank = Tank::default();
        let mut engine = Engine::new(&mut tank).unwrap();
        let mut rec = Recorder::new(
            engine.signals(),
            &["tank_level"],
            500_000,
            engine.base_period_us(),
        )
        .unwrap();
        rec.observe(0, SimTime::ZERO, engine.signals());
        let mut ticks = 0;
        engine.run_until(&mut tank, SimTime::from_secs(2), |now, s| {
            ticks += 1;
            rec.observe(ticks, now, s);
            true
        });
        assert_eq!(rec.time_s(), &[0.0, 0.5, 1.0, 1.5, 2.0]);
        assert!((rec.values()[0][4] - 2.0).abs() < 1e-9);
        assert!(Recorder::new(engine.signals(), &["tank_level"], 15_000, 10_000).is_err());
        assert!(Recorder::new(engine.signals(), &["nope"], 10_000, 10_000).is_err());
    }
}
