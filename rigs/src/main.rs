//! `maslow`: the command line. Parses arguments, calls into the library,
//! prints one clear line per error. Exit codes: 0 success, 1 the run failed
//! for a reason outside the user's input (e.g. a full disk), 2 bad input
//! (a missing or malformed file, a bad argument).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rigs::cli::Cli::parse();
    match rigs::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(rigs::cli::exit_code(&e))
        }
    }
}
