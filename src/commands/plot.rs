//! `gradtrace plot`: the figures of runs and sweeps already on disk, drawn from their JSON.
//!
//! A run JSON gets its figures beside it (`scripts/plot.py`: weights, gradients and, where the
//! run recorded them, the diagnostics), a folder is plotted run by run, and a sweep folder (one
//! holding `sweep.json` or an index) gets the sweep's own figures (`scripts/plot_sweep.py`)
//! in it. A sweep's runs are not drawn one by one unless asked for with its `runs/` folder: a
//! sweep can hold thousands.

use crate::cli::PlotArgs;
use crate::commands::inputs::Inputs;
use crate::figures::Plotter;
use crate::pool::default_jobs;
use anyhow::Result;
use std::path::PathBuf;

/// Checks every path, then draws: runs split over `--jobs` Python processes, then sweeps.
pub fn run(args: &PlotArgs) -> Result<()> {
    // Every path is checked before Python starts, so a typo costs nothing.
    let targets = Inputs::of(&args.paths)?;
    let plotter = Plotter::find_required(args.python.as_deref())?;
    let jobs = args.jobs.map_or_else(default_jobs, |j| j as usize);

    let mut figures = Vec::new();
    if !targets.runs.is_empty() {
        let runs: Vec<PathBuf> = targets.runs.iter().map(|r| r.path.clone()).collect();
        figures.extend(plotter.draw(&runs, jobs)?);
    }
    if !targets.sweeps.is_empty() {
        figures.extend(plotter.draw_sweeps(&targets.sweeps, jobs)?);
    }
    for figure in &figures {
        println!("{}", figure.display());
    }
    eprintln!(
        "plot: {} figures for {} run(s) and {} sweep(s)",
        figures.len(),
        targets.runs.len(),
        targets.sweeps.len()
    );
    Ok(())
}
