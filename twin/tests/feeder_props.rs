//! Invariants of twin::feeder: the DSS parser is insensitive to case,
//! spacing, comments and continuation lines and never panics on garbage;
//! with no load every bus sits at the source voltage; power balances
//! (transformer HV power = loads + line losses + transformer losses).

use std::path::Path;

use proptest::prelude::*;
use twin::feeder::{parse_str, DssModel, FeederError, LoadSnapshot, Network};

fn parse(text: &str) -> Result<DssModel, FeederError> {
    let mut none =
        |p: &Path| -> Result<String, String> { Err(format!("{}: not here", p.display())) };
    parse_str(text, Path::new("prop.dss"), &mut none)
}

/// A random radial feeder as an OpenDSS script (up to 30 buses, lines up to
/// 100 m, up to 30 houses of up to 4 kW: loaded, but within what a feeder
/// carries).
#[derive(Debug, Clone)]
struct Feeder {
    delta: bool,
    parents: Vec<usize>,
    lengths_km: Vec<f64>,
    code: (f64, f64, f64, f64, f64, f64),
    loads: Vec<(usize, u8, f64, f64)>,
    source_z_ohm: f64,
}

impl Feeder {
    /// One command per element, properties as (key, value) pairs.
    fn commands(&self) -> Vec<(String, Vec<(String, String)>)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        let (r1, x1, r0, x0, c1, c0) = self.code;
        let mut out = vec![
            ("Clear".to_string(), vec![]),
            (
                "New Circuit.prop".to_string(),
                vec![
                    kv("basekv", "11".into()),
                    kv("pu", "1.02".into()),
                    kv("r1", format!("{}", self.source_z_ohm * 0.1)),
                    kv("x1", format!("{}", self.source_z_ohm)),
                    kv("r0", format!("{}", self.source_z_ohm * 0.1)),
                    kv("x0", format!("{}", self.source_z_ohm)),
                ],
            ),
            (
                "New Transformer.tr".to_string(),
                vec![
                    kv("buses", "[sourcebus b0]".into()),
                    kv(
                        "conns",
                        if self.delta {
                            "[delta wye]"
                        } else {
                            "[wye wye]"
                        }
                        .into(),
                    ),
                    kv("kvs", "[11 0.416]".into()),
                    kv("kvas", "[400 400]".into()),
                    kv("%rs", "[0.5 0.5]".into()),
                    kv("xhl", "4".into()),
                ],
            ),
            (
                "New LineCode.lc".to_string(),
                vec![
                    kv("nphases", "3".into()),
                    kv("r1", format!("{r1}")),
                    kv("x1", format!("{x1}")),
                    kv("r0", format!("{r0}")),
                    kv("x0", format!("{x0}")),
                    kv("c1", format!("{c1}")),
                    kv("c0", format!("{c0}")),
                    kv("units", "km".into()),
                ],
            ),
        ];
        for (k, (p, len)) in self.parents.iter().zip(&self.lengths_km).enumerate() {
            out.push((
                format!("New Line.l{}", k + 1),
                vec![
                    kv("bus1", format!("b{p}.1.2.3")),
                    kv("bus2", format!("b{}", k + 1)),
                    kv("linecode", "lc".into()),
                    kv("length", format!("{}", len * 1000.0)),
                    kv("units", "m".into()),
                ],
            ));
        }
        for (k, (bus, ph, kw, kvar)) in self.loads.iter().enumerate() {
            let bus = bus % (self.parents.len() + 1);
            let (phases, node) = if *ph == 0 {
                ("3", String::new())
            } else {
                ("1", format!(".{ph}"))
            };
            let kv_ = if *ph == 0 { "0.416" } else { "0.24" };
            out.push((
                format!("New Load.h{k}"),
                vec![
                    kv("bus1", format!("b{bus}{node}")),
                    kv("phases", phases.into()),
                    kv("kv", kv_.into()),
                    kv("kw", format!("{kw}")),
                    kv("kvar", format!("{kvar}")),
                    kv("model", "1".into()),
                    kv("vminpu", "0.5".into()),
                    kv("vmaxpu", "1.5".into()),
                ],
            ));
        }
        out.push((
            "Set".to_string(),
            vec![kv("voltagebases", "[11 0.416]".into())],
        ));
        out.push(("CalcVoltageBases".to_string(), vec![]));
        out
    }

    fn script(&self) -> String {
        let mut s = String::new();
        for (head, props) in self.commands() {
            s.push_str(&head);
            for (k, v) in props {
                s.push(' ');
                s.push_str(&k);
                s.push('=');
                s.push_str(&v);
            }
            s.push('\n');
        }
        s
    }

    /// The same script, reformatted by `noise`: case, spacing, comments,
    /// blank lines and `~` continuation lines.
    fn noisy_script(&self, noise: &[u8]) -> String {
        let mut n = noise.iter().cycle().copied();
        let mut next = || n.next().unwrap_or(0);
        let case = |s: &str, next: &mut dyn FnMut() -> u8| -> String {
            s.chars()
                .map(|c| {
                    if next().is_multiple_of(2) {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        };
        let spaces = |k: u8| " ".repeat(1 + (k % 3) as usize);
        let mut s = String::new();
        for (head, props) in self.commands() {
            if next() % 4 == 0 {
                s.push_str("! a comment line\n\n");
            }
            s.push_str(&spaces(next()));
            s.push_str(&case(&head, &mut next));
            for (k, v) in props {
                match next() % 4 {
                    0 => s.push_str("\n~ "),
                    1 => s.push_str(" // trailing comment\n~"),
                    _ => s.push_str(&spaces(next())),
                }
                s.push_str(&case(&k, &mut next));
                s.push_str(&" ".repeat((next() % 2) as usize));
                s.push('=');
                s.push_str(&" ".repeat((next() % 2) as usize));
                s.push_str(&case(&v, &mut next));
            }
            if next() % 3 == 0 {
                s.push_str("\t! trailing comment");
            }
            s.push('\n');
        }
        s
    }
}

fn strip_origins(mut m: DssModel) -> DssModel {
    m.notes.clear();
    if let Some(s) = &mut m.source {
        s.origin.line = 0;
    }
    m.transformers.iter_mut().for_each(|t| t.origin.line = 0);
    m.lines.iter_mut().for_each(|t| t.origin.line = 0);
    m.loads.iter_mut().for_each(|t| t.origin.line = 0);
    m
}

fn feeder(with_c: bool) -> impl Strategy<Value = Feeder> {
    (1usize..30).prop_flat_map(move |n| {
        (
            any::<bool>(),
            (0..n).map(|k| 0..=k).collect::<Vec<_>>(),
            prop::collection::vec(0.005f64..0.1, n),
            (
                0.05f64..1.5,
                0.02f64..0.3,
                1.0f64..4.0,
                1.0f64..4.0,
                0.0f64..300.0,
                0.0f64..200.0,
            ),
            prop::collection::vec((0usize..64, 0u8..4, 0.0f64..4.0, -1.0f64..1.5), 0..30),
            0.0f64..1.0,
        )
            .prop_map(
                move |(delta, parents, lengths_km, (r1, x1, fr0, fx0, c1, c0), loads, z)| Feeder {
                    delta,
                    parents,
                    lengths_km,
                    code: (
                        r1,
                        x1,
                        r1 * fr0,
                        x1 * fx0,
                        if with_c { c1 } else { 0.0 },
                        if with_c { c0 } else { 0.0 },
                    ),
                    loads,
                    source_z_ohm: z,
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn case_spacing_comments_and_continuations_parse_the_same(
        f in feeder(true),
        noise in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let a = strip_origins(parse(&f.script()).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let noisy = f.noisy_script(&noise);
        let b = strip_origins(parse(&noisy).map_err(|e| TestCaseError::fail(format!("{e}\n{noisy}")))?);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn garbage_never_panics(text in "\\PC{0,400}") {
        if let Ok(m) = parse(&text) {
            if let Ok(net) = Network::from_dss(&m) {
                let _ = net.solve(&net.base_snapshot());
            }
        }
    }

    #[test]
    fn dss_shaped_garbage_never_panics(
        words in prop::collection::vec(
            prop::sample::select(vec![
                "New", "Circuit.c", "Line.l", "Load.x", "Transformer.t", "LineCode.lc", "bus1=", "bus2=b",
                "=", "[", "]", "(", ")", "\"", "'", "~", "!", "//", "\n", "redirect", "set", "voltagebases=[0.4]",
                "kw=1e308", "kv=-1", "phases=1", "b.1.2.3", "b.9", "nphases=4", "rmatrix=[1|2 3]", "kron=y",
                "units=km", "length=nan", "calcv", "Clear", "Edit", "Vsource.source", "pu=0", "x1=1", "r1=0",
                "r0=0", "x0=1", "c1=0", "c0=0", "linecode=lc", "buses=[sourcebus b]", "conns=[d y]", "1.5", " ",
            ]),
            0..80,
        )
    ) {
        let text: String = words.join(" ");
        if let Ok(m) = parse(&text) {
            if let Ok(net) = Network::from_dss(&m) {
                let _ = net.solve(&net.base_snapshot());
            }
        }
    }

    #[test]
    fn with_no_load_every_bus_sits_at_the_source_voltage(f in feeder(false)) {
        let m = parse(&f.script()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let net = Network::from_dss(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let n_loads = net.load_names().count();
        let sol = net.solve(&LoadSnapshot::zeros(n_loads)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (b, vm) in sol.vm_pu.iter().enumerate() {
            for (p, v) in vm.iter().enumerate() {
                prop_assert!((v - 1.02).abs() < 1e-12, "bus {} phase {}: {} p.u.", net.bus_names()[b], p + 1, v);
            }
        }
        let tr = sol.transformer.as_ref().expect("transformer");
        prop_assert!(tr.s_hv_kva.norm() < 1e-9);
    }

    #[test]
    fn power_balances(f in feeder(true)) {
        let m = parse(&f.script()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let net = Network::from_dss(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sol = net.solve(&net.base_snapshot()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tr = sol.transformer.as_ref().expect("transformer");
        let demand: f64 = net.base_snapshot().kw.iter().sum();
        // Constant P and Q within the voltage band (0.5..1.5 p.u.): the loads
        // draw what was asked; outside it they are constant impedances.
        let in_band = sol.vm_pu.iter().flatten().all(|v| (0.5..=1.5).contains(v));
        if in_band {
            prop_assert!((sol.load_kva.re - demand).abs() < 1e-6 * (1.0 + demand), "loads {} kW, asked {demand} kW", sol.load_kva.re);
        }
        let lhs = tr.s_hv_kva.re;
        let rhs = sol.load_kva.re + sol.line_losses_kw + tr.losses_kw;
        prop_assert!((lhs - rhs).abs() < 1e-6 * (1.0 + lhs.abs()), "HV {lhs} kW vs loads + losses {rhs} kW");
        let lv: f64 = tr.s_lv_kva.iter().map(|s| s.re).sum();
        prop_assert!((lv - sol.load_kva.re - sol.line_losses_kw).abs() < 1e-6 * (1.0 + lv.abs()));
        prop_assert!(sol.line_losses_kw >= -1e-12 && tr.losses_kw >= -1e-12);
        // The ideal source also covers its own impedance's (non-negative) losses.
        prop_assert!(sol.source_kva.re >= lhs - 1e-6 * (1.0 + lhs.abs()));
    }
}
