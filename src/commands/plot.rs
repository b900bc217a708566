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
use anyhow::{bail, Context, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Checks every path, then draws: runs split over `--jobs` Python processes, then sweeps.
pub fn run(args: &PlotArgs) -> Result<()> {
    // Every path is checked before Python starts, so a typo costs nothing.
    let targets = Inputs::of(&args.paths)?;
    for run in &targets.runs {
        check_epochs(&run.path, &args.epochs)?;
    }
    let plotter = Plotter::find_required(args.python.as_deref())?;
    let jobs = args.jobs.map_or_else(default_jobs, |j| j as usize);

    let mut figures = Vec::new();
    if !targets.runs.is_empty() {
        let runs: Vec<PathBuf> = targets.runs.iter().map(|r| r.path.clone()).collect();
        figures.extend(plotter.draw(&runs, jobs, &args.epochs)?);
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

/// With `--epochs`, a run that carries diagnostics must have a record during training in each
/// epoch named (a run without them draws no per-record views, so it passes).
fn check_epochs(path: &Path, epochs: &[u64]) -> Result<()> {
    #[derive(Deserialize)]
    struct Run {
        saturation: Option<IgnoredAny>,
        gradients: Vec<Record>,
    }
    #[derive(Deserialize)]
    struct Record {
        epoch: u64,
        layers: Vec<Layer>,
    }
    #[derive(Deserialize)]
    struct Layer {
        activations: Option<IgnoredAny>,
    }
    if epochs.is_empty() {
        return Ok(());
    }
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot read it"))?;
    let run: Run = serde_json::from_reader(BufReader::new(file))
        .with_context(|| format!("{shown}: not a run history"))?;
    if run.saturation.is_none() {
        return Ok(());
    }
    let recorded: Vec<u64> = run
        .gradients
        .iter()
        .filter(|r| r.layers.iter().all(|l| l.activations.is_some()))
        .map(|r| r.epoch)
        .collect();
    let (Some(first), Some(last)) = (recorded.iter().min(), recorded.iter().max()) else {
        return Ok(());
    };
    if let Some(missing) = epochs.iter().find(|e| !recorded.contains(e)) {
        bail!(
            "--epochs {missing}: {shown} has no record with diagnostics in that epoch (its \
             records cover epochs {first} to {last}); choose epochs it recorded"
        );
    }
    Ok(())
}
