//! Scans the demo driver and prints a short capture (a smoke check by hand).
fn main() -> Result<(), sigrok::SigrokError> {
    let ctx = sigrok::Context::load()?;
    let devs = ctx.scan("demo", None)?;
    for d in &devs {
        println!("{d:?} groups={:?}", d.channel_groups());
        for c in d.channels() {
            println!("  {c:?}");
        }
    }
    let d = &devs[0];
    d.set_pattern("Logic", "incremental")?;
    let cap = d.capture(&["A0", "D0", "D1", "D7", "A1"], 1000, 40)?;
    for c in &cap.channels {
        println!("{} [{}] n={} {:?}", c.name, c.unit, c.samples.len(), &c.samples[..c.samples.len().min(24)]);
    }
    Ok(())
}
