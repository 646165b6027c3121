//! Scans the demo driver and prints a short capture (a smoke check by hand).
fn main() -> Result<(), sigrok::SigrokError> {
    let ctx = sigrok::Context::load()?;
    let devs = ctx.scan("demo", None)?;
    let d = &devs[0];
    d.set_pattern("Logic", "walking-one")?;
    let cap = d.capture(&["D3", "A0", "D0"], 10_000, 40)?;
    for c in &cap.channels {
        println!(
            "{} [{}] n={} {:?}",
            c.name,
            c.unit,
            c.samples.len(),
            &c.samples[..c.samples.len().min(24)]
        );
    }
    Ok(())
}
