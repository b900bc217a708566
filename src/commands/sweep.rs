//! `gradtrace sweep`: every point of a grid (or this shard's slice of it), in parallel, into one
//! folder that survives interruptions:
//!
//! ```text
//! <folder>/sweep.json                  the grid(s) this folder holds
//! <folder>/runs/<id>.json              one complete run history per grid point
//! <folder>/index.jsonl                 one summary line per finished run
//! <folder>/index-shard-I-of-N.jsonl    the same, per shard, when sharded
//! <folder>/sweep.*.png                 the sweep's figures, when `gradtrace plot` drew them
//! ```
//!
//! A run's JSON appears only when complete (rename), so its presence marks the run done; a
//! second invocation skips those and repairs any index line a kill left out.

use crate::cli::SweepArgs;
use crate::data::Dataset;
use crate::interrupt::Interrupted;
use crate::output::{is_temp_file, progress_bar, remove_stale_temp_files, PendingFile};
use crate::pool::default_jobs;
use crate::schedule::{plan, train_tasks, Progress};
use crate::sweep::grid::{expand_ranges, Grid, Point};
use crate::sweep::index::{self, IndexEntry};
use crate::sweep::shard::Shard;
use crate::train::device_name;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tch::Device;

/// `sweep.json`: which grids a folder holds, so a different sweep cannot land in it by mistake.
#[derive(Debug, Serialize, Deserialize)]
struct SweepFile {
    format: String,
    version: u32,
    /// Each grid run into this folder (more than one only with `--extend`).
    grids: Vec<GridRecord>,
}

/// A grid, identified by the runs it makes rather than by how its values were written.
#[derive(Debug, Serialize, Deserialize)]
struct GridRecord {
    /// Number of runs in the whole grid (all shards).
    runs: usize,
    /// SHA-256 of the grid's sorted run ids, one per line.
    runs_sha256: String,
}

/// What became of one grid point in this invocation.
enum Outcome {
    Done { diverged: bool },
    Failed,
    Interrupted,
}

/// Runs the sweep.
pub fn run(args: &SweepArgs) -> Result<()> {
    // Everything that can be wrong is found before anything is written.
    crate::config::check_plain_name(&args.name)?;
    let grid = build_grid(args)?;
    let points = grid.expand()?;
    let shard = Shard::resolve(args.shard.as_deref(), args.shards, |v| {
        std::env::var(v).ok()
    })?;
    let device = args.device.resolve("--device")?;
    let folder = args
        .out_dir
        .clone()
        .unwrap_or_else(|| Path::new("outputs").join(&args.name));
    let mine: Vec<&Point> = points
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.owns(*k))
        .map(|(_, p)| p)
        .collect();
    let datasets = load_data(&mine)?;

    // Claim the folder: only sweep files in it, no other process on this shard, and the same
    // grid (or --extend).
    prepare_folder(&folder)?;
    let _lock = lock_shard(&folder, shard)?;
    claim_folder(&folder, &points, args.extend)?;
    let runs = folder.join("runs");
    remove_stale_temp_files(&folder);
    remove_stale_temp_files(&runs);
    let index_path = if shard == Shard::ALL {
        folder.join("index.jsonl")
    } else {
        folder.join(format!("index-{}.jsonl", shard.label()))
    };

    // Resume: a run whose JSON exists is done; make sure each has its index line.
    let indexed = indexed_ids(&folder)?;
    let mut todo = Vec::new();
    for point in &mine {
        let path = runs.join(format!("{}.json", point.id));
        if !path.exists() {
            todo.push(*point);
        } else if !indexed.contains(&point.id) {
            let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
                .with_context(|| {
                    format!("{}: not a run history; delete it to rerun", path.display())
                })?;
            index::append(&index_path, &IndexEntry::of_json(&point.id, &json)?)?;
        }
    }

    let cores = if device == Device::Cpu {
        default_jobs()
    } else {
        1
    };
    let jobs = args.jobs.map_or(cores, |j| j as usize);
    if !args.quiet {
        eprintln!(
            "sweep: {} runs in the grid, {} in shard {}/{}, {} already done, {} to train on {} \
             with {jobs} worker(s) into {}",
            points.len(),
            mine.len(),
            shard.index,
            shard.count,
            mine.len() - todo.len(),
            todo.len(),
            device_name(device),
            folder.display()
        );
    }

    // Train in parallel (ensembles where runs share a shape); each finished run is written, then
    // indexed.
    let started = Instant::now();
    let configs: Vec<&crate::config::RunConfig> = todo.iter().map(|p| &p.config).collect();
    let max = args.engine.max_ensemble(device);
    let tasks = plan(&configs, args.engine.engine, jobs, max);
    let bar = progress_bar(todo.len() as u64, "runs", args.quiet);
    bar.set_message("sweep, 0 failed");
    let failed = AtomicUsize::new(0);
    let progress = Progress::default();
    let outcomes = train_tasks(
        &tasks,
        &configs,
        |config| data_for(&datasets, config),
        device,
        jobs,
        |models, epochs| bar.set_position(progress.add_epoch(models, epochs)),
        |i, record| {
            let outcome = save_point(todo[i], record, &runs, &index_path);
            if matches!(outcome, Outcome::Failed) {
                failed.fetch_add(1, Ordering::Relaxed);
                bar.set_message(format!("sweep, {} failed", failed.load(Ordering::Relaxed)));
            }
            outcome
        },
    );
    bar.finish_and_clear();

    // Report.
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let done = count(|o| matches!(o, Outcome::Done { .. }));
    let diverged = count(|o| matches!(o, Outcome::Done { diverged: true }));
    let failed = count(|o| matches!(o, Outcome::Failed));
    if !args.quiet {
        eprintln!(
            "sweep: trained {done} runs ({diverged} diverged) in {:.1} s; index: {}",
            started.elapsed().as_secs_f64(),
            index_path.display()
        );
    }
    if outcomes.iter().any(|o| matches!(o, Outcome::Interrupted)) {
        return Err(Interrupted.into());
    }
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed; their errors are in {} (status \"failed\"); rerun the \
             same command to retry them",
            todo.len(),
            index_path.display()
        );
    }
    Ok(())
}

/// The grid: the sweep file's knobs, then the flags (which replace the file's).
fn build_grid(args: &SweepArgs) -> Result<Grid> {
    let mut grid = match &args.file {
        Some(path) => crate::sweep::file::read(path)?,
        None => Grid::default(),
    };
    for (name, values) in args.knobs() {
        let origin = if name == "seed" {
            "--seeds".to_string()
        } else {
            format!("--{name}")
        };
        let values = if name == "seed" {
            expand_ranges(values, &origin)?
        } else {
            values
        };
        grid.set(name, values, &origin)?;
    }
    if grid.knobs.is_empty() {
        bail!(
            "the grid is empty: give at least one knob (e.g. --activation sigmoid,tanh \
             --seed-count 8) or a sweep file with --file"
        );
    }
    Ok(grid)
}

/// Each distinct dataset once, keyed by its config, shared by every run that uses it.
fn load_data(points: &[&Point]) -> Result<Vec<(crate::config::DataConfig, Dataset)>> {
    let mut datasets: Vec<(crate::config::DataConfig, Dataset)> = Vec::new();
    for point in points {
        if !datasets.iter().any(|(c, _)| *c == point.config.data) {
            datasets.push((
                point.config.data.clone(),
                Dataset::load(&point.config.data)?,
            ));
        }
    }
    Ok(datasets)
}

/// The dataset a run trains on (each distinct one was loaded once).
fn data_for<'a>(
    datasets: &'a [(crate::config::DataConfig, Dataset)],
    config: &crate::config::RunConfig,
) -> &'a Dataset {
    &datasets
        .iter()
        .find(|(c, _)| *c == config.data)
        .expect("every run's data was loaded")
        .1
}

/// Writes a finished run and its index line, or indexes its failure.
fn save_point(
    point: &Point,
    record: Result<crate::record::RunRecord>,
    runs: &Path,
    index_path: &Path,
) -> Outcome {
    let written = record.and_then(|record| {
        let path = runs.join(format!("{}.json", point.id));
        PendingFile::reserve(&path, true, "--out-dir")?.commit_json(&record)?;
        index::append(index_path, &IndexEntry::of_record(&point.id, &record))?;
        Ok(record.status == crate::record::Status::Diverged)
    });
    match written {
        Ok(diverged) => Outcome::Done { diverged },
        Err(e) if e.is::<Interrupted>() => Outcome::Interrupted,
        Err(e) => {
            let entry = IndexEntry::failed(&point.id, &point.config, &e);
            if let Err(index_error) = index::append(index_path, &entry) {
                eprintln!(
                    "warning: run {} failed ({e:#}) and could not be indexed: {index_error:#}",
                    point.id
                );
            }
            Outcome::Failed
        }
    }
}

/// Refuses a folder that holds anything but gradtrace's own sweep files and figures (so a
/// user's folder is never written into), then creates it. Shards starting together may see each
/// other's files.
fn prepare_folder(folder: &Path) -> Result<()> {
    let ours = |name: &str| {
        matches!(name, "sweep.json" | "runs")
            || (name.starts_with("sweep.") && name.ends_with(".png"))
            || name.starts_with(".lock-")
            || (name.starts_with("index") && name.ends_with(".jsonl"))
            || is_temp_file(name)
    };
    if folder.exists() && !folder.is_dir() {
        bail!("--out-dir {}: is a file, not a folder", folder.display());
    }
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !ours(&name) {
                bail!(
                    "--out-dir {} holds files that are not a gradtrace sweep's ({name}, for one); \
                     move them out or choose another",
                    folder.display()
                );
            }
        }
    }
    std::fs::create_dir_all(folder.join("runs"))
        .with_context(|| format!("--out-dir {}: cannot create the folder", folder.display()))
}

/// Checks that the folder holds this grid (the same set of runs, however it was written) or
/// records it there with `--extend`. Called under the shard lock.
fn claim_folder(folder: &Path, points: &[Point], extend: bool) -> Result<()> {
    let shown = folder.display();
    let mut ids: Vec<&str> = points.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    let this: String = Sha256::digest(ids.join("\n"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = folder.join("sweep.json");
    let mut file = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: SweepFile = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a gradtrace sweep file; choose another --out-dir",
                    path.display()
                )
            })?;
            if file.grids.iter().any(|g| g.runs_sha256 == this) {
                return Ok(());
            }
            if !extend {
                bail!(
                    "--out-dir {shown} holds a different sweep (see its sweep.json); pass \
                     --extend to add this grid's runs to it, or choose another --out-dir or --name"
                );
            }
            file
        }
        Err(_) => SweepFile {
            format: "gradtrace-sweep".into(),
            version: 1,
            grids: Vec::new(),
        },
    };
    file.grids.push(GridRecord {
        runs: points.len(),
        runs_sha256: this,
    });
    PendingFile::reserve(&path, true, "--out-dir")?.commit_json(&file)?;
    Ok(())
}

/// Holds an exclusive lock for this shard of this folder, so two identical sweeps cannot run
/// into each other; the lock goes with the process, however it ends.
fn lock_shard(folder: &Path, shard: Shard) -> Result<File> {
    let path = folder.join(format!(".lock-{}", shard.label()));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another gradtrace sweep is running shard {}/{} in {}; wait for it to finish, or \
             use another --out-dir",
            shard.index,
            shard.count,
            folder.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Ids in every index file of the folder (all shards).
fn indexed_ids(folder: &Path) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for path in index_files(folder)? {
        ids.extend(
            index::read(&path)?
                .into_iter()
                .filter(|e| e.status != "failed")
                .map(|e| e.id),
        );
    }
    Ok(ids)
}

/// `index.jsonl` and `index-shard-*.jsonl` in a folder, sorted by name.
pub fn index_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("{}: cannot list the folder", folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("index") && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    Ok(files)
}
