//! SVG plots of a scenario's signals with `plotters` (SVG backend, no font
//! files: text is written as `<text>` elements the browser lays out).
//!
//! One plot per signal, decimated for display only (the CSV keeps every
//! sample): the time axis is cut into [`BUCKETS`] buckets and each keeps
//! its minimum and maximum, so spikes survive. An assertion's band (or
//! limit) is drawn over its window, green when it held and red when it did
//! not (with its first violation marked); events are dashed vertical lines
//! labelled on the time axis.

use plotters::prelude::*;

use crate::markup::escape;
use crate::measured::{Assertion, Bound, Event, Signal};

/// Display buckets per plot (two points each).
pub const BUCKETS: usize = 240;
const SIZE: (u32, u32) = (760, 220);

/// The scenario's plots as an HTML fragment: one `<figure class="plot">`
/// holding one `<svg>` per signal.
pub fn plots_html(signals: &[Signal], events: &[Event], assertions: &[Assertion]) -> String {
    let mut out = String::new();
    for s in signals {
        let own: Vec<&Assertion> = assertions.iter().filter(|a| a.signal == s.name).collect();
        out.push_str(&format!(
            "<figure class=\"plot\" data-signal=\"{}\">",
            escape(&s.name)
        ));
        match plot_svg(s, events, &own) {
            Ok(svg) => out.push_str(strip_xml_decl(&svg)),
            Err(e) => out.push_str(&format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"40\"><text x=\"4\" y=\"20\">cannot plot {}: {}</text></svg>",
                SIZE.0,
                escape(&s.name),
                escape(&e)
            )),
        }
        let notes: Vec<String> = own
            .iter()
            .map(|a| {
                format!(
                    "<li class=\"{}\">{} from {} to {}: {}</li>",
                    if a.held { "held" } else { "violated" },
                    escape(&a.bound.describe(&s.unit)),
                    clock(a.from_s),
                    clock(a.to_s),
                    match a.first_violation {
                        None => "held".to_string(),
                        Some((t, v)) =>
                            format!("first outside at {} ({v:.3} {})", clock(t), escape(&s.unit)),
                    }
                )
            })
            .collect();
        if !notes.is_empty() {
            out.push_str(&format!(
                "<figcaption><ul>{}</ul></figcaption>",
                notes.join("")
            ));
        }
        out.push_str("</figure>\n");
    }
    out
}

fn strip_xml_decl(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

pub use crate::clock::clock;

/// The time axis unit for a span: seconds, minutes or hours.
fn time_unit(span_s: f64) -> (f64, &'static str) {
    if span_s <= 600.0 {
        (1.0, "s")
    } else if span_s <= 3.0 * 3600.0 {
        (60.0, "min")
    } else {
        (3600.0, "h")
    }
}

/// A display bucket: its index, and the `(t, v)` of its minimum and maximum.
type Bucket = (usize, (f64, f64), (f64, f64));

/// Min/max decimation: runs of finite points (NaN breaks a run), each
/// at most `2 * buckets` points.
pub fn decimate(t_s: &[f64], values: &[f64], buckets: usize) -> Vec<Vec<(f64, f64)>> {
    let n = t_s.len().min(values.len());
    let (t0, t1) = match (t_s.first(), t_s.get(n.saturating_sub(1))) {
        (Some(a), Some(b)) if n > 0 => (*a, *b),
        _ => return Vec::new(),
    };
    let width = ((t1 - t0) / buckets.max(1) as f64).max(f64::MIN_POSITIVE);
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut bucket: Option<Bucket> = None;
    let flush = |run: &mut Vec<(f64, f64)>, b: Option<Bucket>| {
        if let Some((_, lo, hi)) = b {
            if lo.0 <= hi.0 {
                run.push(lo);
                if hi != lo {
                    run.push(hi);
                }
            } else {
                run.push(hi);
                run.push(lo);
            }
        }
    };
    for k in 0..n {
        let (t, v) = (t_s[k], values[k]);
        if !v.is_finite() || !t.is_finite() {
            flush(&mut run, bucket.take());
            if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
            continue;
        }
        let i = (((t - t0) / width) as usize).min(buckets.saturating_sub(1));
        match bucket.as_mut() {
            Some((bi, lo, hi)) if *bi == i => {
                if v < lo.1 {
                    *lo = (t, v);
                }
                if v > hi.1 {
                    *hi = (t, v);
                }
            }
            _ => {
                flush(&mut run, bucket.take());
                bucket = Some((i, (t, v), (t, v)));
            }
        }
    }
    flush(&mut run, bucket.take());
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

type DrawResult<T> = Result<T, String>;

fn plot_svg(s: &Signal, events: &[Event], assertions: &[&Assertion]) -> DrawResult<String> {
    let runs = decimate(&s.t_s, &s.values, BUCKETS);
    let t_first = s.t_s.first().copied().unwrap_or(0.0);
    let t_last = s.t_s.last().copied().unwrap_or(1.0);
    let (k, tu) = time_unit(t_last - t_first);
    let x0 = t_first / k;
    let x1 = (t_last / k).max(x0 + 1e-6);
    let mut y_lo = f64::INFINITY;
    let mut y_hi = f64::NEG_INFINITY;
    for (_, v) in runs.iter().flatten() {
        y_lo = y_lo.min(*v);
        y_hi = y_hi.max(*v);
    }
    for a in assertions {
        let (lo, hi) = match a.bound {
            Bound::Between { lo, hi } => (lo, hi),
            Bound::AtMost { limit } | Bound::AtLeast { limit } => (limit, limit),
        };
        y_lo = y_lo.min(lo);
        y_hi = y_hi.max(hi);
    }
    if !y_lo.is_finite() || !y_hi.is_finite() {
        (y_lo, y_hi) = (0.0, 1.0);
    }
    let pad = ((y_hi - y_lo) * 0.08).max(y_hi.abs().max(1.0) * 1e-3);
    let (y0, y1) = (y_lo - pad, y_hi + pad);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let title = if s.unit.is_empty() {
            s.name.clone()
        } else {
            format!("{} [{}]", s.name, s.unit)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(6)
            .margin_right(24)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(format!("time ({tu})"))
            .x_labels(10)
            .y_labels(5)
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|x| e(&x))?;
        for a in assertions {
            let colour = if a.held {
                RGBColor(30, 150, 60)
            } else {
                RGBColor(210, 40, 40)
            };
            let (fa, ta) = ((a.from_s / k).max(x0), (a.to_s / k).min(x1));
            match a.bound {
                Bound::Between { lo, hi } => {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(fa, lo), (ta, hi)],
                            colour.mix(0.15).filled(),
                        )))
                        .map_err(|x| e(&x))?;
                    for y in [lo, hi] {
                        chart
                            .draw_series(std::iter::once(PathElement::new(
                                vec![(fa, y), (ta, y)],
                                colour.stroke_width(1),
                            )))
                            .map_err(|x| e(&x))?;
                    }
                }
                Bound::AtMost { limit } | Bound::AtLeast { limit } => {
                    // Shade the allowed side, as a band is.
                    let far = if matches!(a.bound, Bound::AtMost { .. }) {
                        y0
                    } else {
                        y1
                    };
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(fa, limit), (ta, far)],
                            colour.mix(0.10).filled(),
                        )))
                        .map_err(|x| e(&x))?;
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(fa, limit), (ta, limit)],
                            colour.stroke_width(2),
                        )))
                        .map_err(|x| e(&x))?;
                }
            }
            if let Some((t, v)) = a.first_violation {
                chart
                    .draw_series(std::iter::once(Circle::new((t / k, v), 4, colour.filled())))
                    .map_err(|x| e(&x))?;
            }
        }
        let line = RGBColor(31, 90, 180);
        for run in &runs {
            let pts: Vec<(f64, f64)> = run.iter().map(|(t, v)| (t / k, *v)).collect();
            chart
                .draw_series(LineSeries::new(pts, line.stroke_width(1)))
                .map_err(|x| e(&x))?;
        }
        let mark = RGBColor(150, 80, 0);
        for (i, ev) in events.iter().enumerate() {
            let x = ev.at_s / k;
            if !(x0..=x1).contains(&x) {
                continue;
            }
            // Dashed: short segments.
            let step = (y1 - y0) / 24.0;
            let dashes = (0..12).map(|j| {
                let ya = y0 + step * (2 * j) as f64;
                PathElement::new(vec![(x, ya), (x, ya + step)], mark.stroke_width(1))
            });
            chart.draw_series(dashes).map_err(|x| e(&x))?;
            // Labels stagger down so neighbours do not overprint.
            let y = y1 - (y1 - y0) * (0.06 + 0.1 * (i % 4) as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    ev.label.clone(),
                    (x, y),
                    ("sans-serif", 10).into_font().color(&mark),
                )))
                .map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_breaks_on_gaps() {
        let t: Vec<f64> = (0..10_000).map(f64::from).collect();
        let mut v: Vec<f64> = t.iter().map(|x| (x / 100.0).sin()).collect();
        v[5000] = 50.0;
        v[7000] = f64::NAN;
        let runs = decimate(&t, &v, 100);
        assert_eq!(runs.len(), 2);
        let n: usize = runs.iter().map(Vec::len).sum();
        assert!(n <= 2 * 100 + 2, "{n} points");
        assert!(runs[0].contains(&(5000.0, 50.0)));
        assert!(decimate(&[], &[], 10).is_empty());
    }

    #[test]
    fn plots_are_svg_with_text_and_no_font_files() {
        let s = Signal {
            name: "bus_voltage_v".into(),
            unit: "V".into(),
            t_s: (0..3600).map(f64::from).collect(),
            values: (0..3600).map(|k| 48.0 + f64::from(k % 7)).collect(),
        };
        let a = Assertion::judge(&s, 600.0, 1200.0, Bound::Between { lo: 47.0, hi: 53.0 });
        let html = plots_html(
            &[s],
            &[Event {
                at_s: 900.0,
                label: "mains fail <now>".into(),
            }],
            &[a],
        );
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("<text"));
        assert!(html.contains("mains fail &lt;now&gt;"), "{html}");
        assert!(html.contains("class=\"violated\""));
        assert!(!html.contains("<?xml"));
    }

    #[test]
    fn clock_formats_days() {
        assert_eq!(clock(3661.0), "01:01:01");
        assert_eq!(clock(90000.0), "01:00:00 on day 2");
    }
}
