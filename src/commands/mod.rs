//! One module per subcommand; `dispatch` is what `main` calls.

mod inputs;
pub mod paper;
pub mod plot;
pub mod run;
pub mod summary;
pub mod sweep;
pub mod tensorboard;
pub mod tutorial;

use crate::cli::{Cli, Command};
use anyhow::Result;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    // These networks are far too small to gain from intra-op threads; one thread per training
    // also lets parallel runs share the cores without contention.
    tch::set_num_threads(1);
    crate::interrupt::install();
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Tutorial(args) => tutorial::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Summary(args) => summary::run(&args),
        Command::Paper(args) => paper::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Tensorboard(args) => tensorboard::run(&args),
    }
}

/// `1 run`, `2 runs`: a count in a summary line.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
