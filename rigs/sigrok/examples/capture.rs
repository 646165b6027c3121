//! Lists a driver's first device and prints a short capture.
//!
//! ```text
//! cargo run -p sigrok --example capture -- [driver] [channels] [samplerate_hz] [samples]
//! cargo run -p sigrok --example capture -- demo A0,D0,D1 1000 20
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let driver = args.first().map_or("demo", String::as_str);
    let channels: Vec<&str> = args
        .get(1)
        .map_or("A0,D0", String::as_str)
        .split(',')
        .collect();
    let parse = |i: usize, default: u64| -> Result<u64, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse().map_err(|e| format!("argument {a:?}: {e}"))
        })
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let samplerate = parse(2, 1_000)?;
        let samples = parse(3, 20)?;
        let ctx = sigrok::Context::load()?;
        let dev = ctx.first_device(driver, None)?;
        println!("{dev:?}");
        for c in dev.channels() {
            println!("  {} ({:?}, index {})", c.name, c.kind, c.index);
        }
        let cap = dev.capture(&channels, samplerate, samples)?;
        for c in &cap.channels {
            println!("{} [{}]: {:?}", c.name, c.unit, c.samples);
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
