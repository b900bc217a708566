//! The `gradtrace` binary: parse, run, and on failure print the whole error on one line.

use clap::Parser;
use gradtrace::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Die quietly when a reader such as `head` closes the pipe, as command-line tools do,
    // instead of panicking on the next print.
    // SAFETY: restoring the default action of one signal before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    match gradtrace::commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Folds clap's several-line usage error into one line (the error, the accepted values, a hint).
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect();
    format!("{}; see --help", parts.join(" "))
}
