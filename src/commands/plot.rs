//! `gradtrace plot`: the figures of runs and sweeps already on disk, drawn from their JSON.
//!
//! A run JSON gets its figures beside it (`scripts/plot.py`: weights, gradients and, where the
//! run recorded them, the diagnostics), a folder is plotted run by run, and a sweep folder (one
//! holding `sweep.json` or an index) gets the sweep's own figures (`scripts/plot_sweep.py`)
//! in it. A sweep's runs are not drawn one by one unless asked for with its `runs/` folder: a
//! sweep can hold thousands.

use crate::cli::PlotArgs;
use crate::commands::sweep::index_files;
use crate::figures::Plotter;
use crate::pool::default_jobs;
use crate::record::FORMAT;
use crate::sweep::index;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// What to draw, sorted out of the paths given.
#[derive(Default)]
struct Targets {
    /// Run JSON files, each once, in the order given.
    runs: Vec<PathBuf>,
    /// Sweep folders, each once.
    sweeps: Vec<PathBuf>,
}

/// Checks every path, then draws: runs split over `--jobs` Python processes, then sweeps.
pub fn run(args: &PlotArgs) -> Result<()> {
    // Every path is checked before Python starts, so a typo costs nothing.
    let mut targets = Targets::default();
    for path in &args.paths {
        targets.add(path)?;
    }
    let plotter = Plotter::find_required(args.python.as_deref())?;
    let jobs = args.jobs.map_or_else(default_jobs, |j| j as usize);

    let mut figures = Vec::new();
    if !targets.runs.is_empty() {
        figures.extend(plotter.draw(&targets.runs, jobs)?);
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

impl Targets {
    /// Sorts one path into runs or sweeps, or says why it cannot be plotted.
    fn add(&mut self, path: &Path) -> Result<()> {
        let shown = path.display();
        if !path.exists() {
            bail!("{shown}: no such file or folder; give a run JSON, a folder of them, or a sweep folder");
        }
        if path.is_file() {
            if !is_run(path) {
                bail!(
                    "{shown}: not a gradtrace run JSON (no \"format\": \"{FORMAT}\"); give a file \
                     written by gradtrace run, tutorial or sweep, or a sweep's folder"
                );
            }
            push_once(&mut self.runs, path);
            return Ok(());
        }
        if is_sweep(path)? {
            if !has_finished_runs(path)? {
                bail!(
                    "{shown}: a sweep with no finished runs; run `gradtrace sweep` into it \
                     first, or wait until some of its runs have finished"
                );
            }
            push_once(&mut self.sweeps, path);
            return Ok(());
        }
        let mut found = 0;
        for file in json_files(path)? {
            if is_run(&file) {
                push_once(&mut self.runs, &file);
                found += 1;
            }
        }
        if found == 0 {
            bail!(
                "{shown}: no gradtrace run JSON in this folder; give run files, a folder of \
                 them, or a sweep folder"
            );
        }
        Ok(())
    }
}

fn push_once(list: &mut Vec<PathBuf>, path: &Path) {
    if !list.iter().any(|p| p == path) {
        list.push(path.to_path_buf());
    }
}

/// True when the file is JSON whose `format` is a run's. The whole file is read (a truncated
/// one is refused here rather than half-drawn), but only that key is kept.
fn is_run(path: &Path) -> bool {
    #[derive(Deserialize)]
    struct Head {
        format: Option<String>,
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    serde_json::from_reader::<_, Head>(BufReader::new(file))
        .is_ok_and(|head| head.format.as_deref() == Some(FORMAT))
}

/// A sweep folder holds `sweep.json` or an index.
fn is_sweep(folder: &Path) -> Result<bool> {
    Ok(folder.join("sweep.json").is_file() || !index_files(folder)?.is_empty())
}

/// True when some shard's index has a run completed or diverged whose JSON is in `runs/`.
fn has_finished_runs(folder: &Path) -> Result<bool> {
    for file in index_files(folder)? {
        let finished = index::read(&file)?.iter().any(|e| {
            e.status != "failed" && folder.join("runs").join(format!("{}.json", e.id)).is_file()
        });
        if finished {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `*.json` files directly in a folder, sorted by name.
fn json_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| anyhow::anyhow!("{}: cannot list the folder ({e})", folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
