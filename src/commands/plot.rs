//! `gradtrace plot`: the figures of runs and sweeps already on disk, drawn from their JSON.
//!
//! A run JSON gets its figures beside it (`scripts/plot.py`: weights, gradients and, where the
//! run recorded them, the diagnostics), a folder is plotted run by run, and a sweep folder (one
//! holding `sweep.json` or an index) gets the sweep's own figures (`scripts/plot_sweep.py`)
//! in it. A sweep's runs are not drawn one by one unless asked for with its `runs/` folder: a
//! sweep can hold thousands.

use crate::cli::PlotArgs;
use crate::commands::count;
use crate::commands::inputs::Inputs;
use crate::figures::Plotter;
use crate::pool::default_jobs;
use anyhow::{anyhow, bail, Context, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Checks every path, then draws: runs split over `--jobs` Python processes, then sweeps.
pub fn run(args: &PlotArgs) -> Result<()> {
    // Every path and every run's layout is checked before Python starts, so a typo or a
    // damaged file costs nothing and leaves no figure of the others half-redrawn.
    let targets = Inputs::of(&args.paths)?;
    check_epoch_list(&args.epochs, targets.runs.is_empty())?;
    for run in &targets.runs {
        check_run(&run.path, &args.epochs)?;
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
        "plot: {} for {} and {}",
        count(figures.len(), "figure"),
        count(targets.runs.len(), "run"),
        count(targets.sweeps.len(), "sweep")
    );
    Ok(())
}

/// `--epochs` names each epoch once, and only where run figures are drawn (a sweep's figures
/// have no per-record views).
fn check_epoch_list(epochs: &[u64], no_runs: bool) -> Result<()> {
    if epochs.is_empty() {
        return Ok(());
    }
    if no_runs {
        bail!(
            "--epochs: picks the records of run figures, and only sweep folders were given; drop \
             it, or give run files (a sweep's runs/ folder, say)"
        );
    }
    let repeated = (1..epochs.len()).find(|&i| epochs[..i].contains(&epochs[i]));
    if let Some(i) = repeated {
        bail!("--epochs {}: named twice; give each epoch once", epochs[i]);
    }
    Ok(())
}

/// A run's layout as the figures read it: the keys `scripts/plot.py` uses, each record and
/// snapshot with one entry per layer; with `--epochs`, a run that carries diagnostics must have
/// a record during training in each epoch named (one without them draws no per-record views).
fn check_run(path: &Path, epochs: &[u64]) -> Result<()> {
    // Fields are parsed to check that they are there, most never read.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Run {
        config: Config,
        data: Data,
        layers: Vec<Layer>,
        weights: Vec<Row>,
        gradients: Vec<Record>,
        saturation: Option<IgnoredAny>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Config {
        name: String,
        hidden: Vec<u64>,
        batch_size: u64,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Data {
        samples: u64,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Layer {
        name: String,
    }
    #[derive(Deserialize)]
    struct Row {
        layers: Vec<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Record {
        epoch: u64,
        layers: Vec<RecordLayer>,
    }
    #[derive(Deserialize)]
    struct RecordLayer {
        activations: Option<IgnoredAny>,
    }

    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot read it"))?;
    let run: Run = serde_json::from_reader(BufReader::new(file)).map_err(|e| {
        anyhow!("{shown}: not a complete run history ({e}); give a run JSON gradtrace wrote")
    })?;
    let layers = run.layers.len();
    let rows = run.weights.iter().map(|w| w.layers.len());
    let records = run.gradients.iter().map(|r| r.layers.len());
    if let Some(n) = rows.chain(records).find(|&n| n != layers) {
        bail!(
            "{shown}: a record with {n} layers in a run of {layers}; give a run JSON gradtrace \
             wrote"
        );
    }

    if epochs.is_empty() || run.saturation.is_none() {
        return Ok(());
    }
    let mut recorded: Vec<u64> = run
        .gradients
        .iter()
        .filter(|r| r.layers.iter().all(|l| l.activations.is_some()))
        .map(|r| r.epoch)
        .collect();
    recorded.dedup();
    if recorded.is_empty() {
        return Ok(());
    }
    if let Some(missing) = epochs.iter().find(|e| !recorded.contains(e)) {
        bail!(
            "--epochs {missing}: {shown} has no record with diagnostics in that epoch (it \
             recorded epochs {}); choose epochs it recorded",
            recorded_epochs(&recorded)
        );
    }
    Ok(())
}

/// `1 to 100` when every epoch between was recorded, else the list (`1, 4, 7, 10`), shortened
/// past twelve.
fn recorded_epochs(epochs: &[u64]) -> String {
    let (first, last) = (epochs[0], epochs[epochs.len() - 1]);
    if first == last {
        return first.to_string();
    }
    if epochs.len() as u64 == last - first + 1 {
        return format!("{first} to {last}");
    }
    let shown: Vec<String> = epochs.iter().take(12).map(u64::to_string).collect();
    let more = if epochs.len() > 12 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}
