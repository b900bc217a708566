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
    // Training copies a few hundred kilobytes to the host at every record and frees them again;
    // above glibc's default 128 KB each copy would be a fresh mmap, zeroed page by page by the
    // kernel. Keeping such blocks in the heap makes a record cost only its arithmetic.
    // SAFETY: malloc tuning before any allocation that depends on it, on one thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Plain `gradtrace`: the help, as it is, and a usage-error status.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{}", gradtrace::cli::one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    // Panics are reported as one-line errors (below, or per run by `train`), never as
    // backtraces; the default hook would print one before anyone could catch the panic.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| gradtrace::commands::dispatch(cli));
    let outcome = outcome.unwrap_or_else(|payload| {
        Err(anyhow::anyhow!(
            "internal error: {}",
            gradtrace::train::panic_message(&*payload)
        ))
    });
    // A stop request wins over whatever it caused (a figure script killed by the same Ctrl-C,
    // say) and over a result that finished anyway: the user asked to stop.
    let interrupted = gradtrace::interrupt::requested()
        || outcome
            .as_ref()
            .is_err_and(|e| e.is::<gradtrace::interrupt::Interrupted>());
    match outcome {
        _ if interrupted => {
            // A command whose results are all or nothing says so in a context of its own.
            match &outcome {
                Err(e) if e.is::<gradtrace::interrupt::Interrupted>() => eprintln!("{e}"),
                _ => eprintln!("{}", gradtrace::interrupt::Interrupted),
            }
            ExitCode::from(130)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
