//! `gradtrace run`: one training (or one per seed with `--seeds`), one JSON each.

use crate::cli::RunArgs;
use crate::config::{RunConfig, WARN_HISTORY_BYTES};
use crate::data::Dataset;
use crate::interrupt::Interrupted;
use crate::output::{progress_bar, refuse_inside_sweep, PendingFile};
use crate::pool::default_jobs;
use crate::record::{median, RunRecord, Status};
use crate::schedule::{plan, train_tasks, Progress};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tch::Device;

/// Per-run summary lines are printed up to this many seeds; beyond, only the totals.
const LINES_UP_TO: usize = 10;

/// Trains the networks the flags describe and writes their histories.
pub fn run(args: &RunArgs) -> Result<()> {
    // Everything that can be wrong with the input fails here, before any training.
    let configs = args.configs()?;
    let device = args.device.resolve("--device")?;
    let data = Dataset::load(&configs[0].data)?;
    for config in &configs {
        config.check_size(Some(data.len()))?;
    }
    let paths: Vec<PathBuf> = configs.iter().map(|c| args.path_of(c)).collect();
    let flag = if args.out.is_some() {
        "--out"
    } else {
        "--out-dir"
    };
    // Never into a sweep's folder, which could then no longer resume.
    if let Some(first) = paths.first() {
        refuse_inside_sweep(flag, first, &[])?;
    }

    // One run reserves its file now; many check their names now and reserve each when written,
    // so that a thousand seeds do not hold a thousand open files.
    let mut reserved = Vec::new();
    if let [path] = paths.as_slice() {
        reserved.push(PendingFile::reserve(path, args.force, flag)?);
    } else {
        check_paths(&paths, args.force, flag)?;
    }
    let reserved = Mutex::new(reserved);
    let bytes = configs[0].estimated_history_bytes(data.len());
    let total = bytes.saturating_mul(configs.len() as u64);
    if total > WARN_HISTORY_BYTES {
        let smaller = if configs[0].record.matrices() {
            "--record stats keeps only the summaries"
        } else {
            "record gradients less often with --grad-every N or never"
        };
        eprintln!(
            "warning: the run JSON will take about {} MB ({} run(s) of {:.1} MB); {smaller}",
            total / 1_000_000,
            configs.len(),
            bytes as f64 / 1e6
        );
    }

    // Train, writing each run as it finishes.
    let started = Instant::now();
    let cores = if device == Device::Cpu {
        default_jobs()
    } else {
        1
    };
    let jobs = args.jobs.map_or(cores, |j| j as usize);
    let refs: Vec<&RunConfig> = configs.iter().collect();
    let max = args.engine.max_ensemble(device);
    let tasks = plan(&refs, args.engine.engine, jobs, max);
    let single = configs.len() == 1;
    let bar = if single {
        progress_bar(configs[0].epochs as u64, "epochs", args.quiet)
    } else {
        progress_bar(configs.len() as u64, "runs", args.quiet)
    };
    bar.set_message(if single {
        configs[0].name.clone()
    } else {
        format!("{} seeds", configs.len())
    });
    let progress = Progress::default();
    let results = train_tasks(
        &tasks,
        &refs,
        |_| &data,
        device,
        jobs,
        |models, epochs| {
            if single {
                bar.inc(1);
            } else {
                bar.set_position(progress.add_epoch(models, epochs));
            }
        },
        |i, record| -> Result<(RunSummary, PathBuf)> {
            let record = record?;
            let pending = match reserved.lock().expect("not poisoned").pop() {
                Some(pending) => pending,
                None => PendingFile::reserve(&paths[i], args.force, flag)?,
            };
            let written = pending.commit_json(&record)?;
            Ok((summary(&record), written))
        },
    );
    bar.finish_and_clear();

    // Report: warnings for diverged runs, a line per run (or the totals), then any failure.
    let mut done = Vec::new();
    let mut failures = Vec::new();
    let mut interrupted = false;
    for result in results {
        match result {
            Ok(run) => done.push(run),
            Err(e) if e.is::<Interrupted>() => interrupted = true,
            Err(e) => failures.push(e),
        }
    }
    let diverged: Vec<&String> = done
        .iter()
        .filter_map(|(r, _)| r.diverged.as_ref())
        .collect();
    match diverged.as_slice() {
        [] => {}
        few if few.len() <= LINES_UP_TO => few.iter().for_each(|w| eprintln!("warning: {w}")),
        [first, rest @ ..] => eprintln!("warning: {first}; and {} more runs diverged", rest.len()),
    }
    if !args.quiet {
        if done.len() <= LINES_UP_TO {
            for (run, written) in &done {
                println!("{}; wrote {}", run.line, written.display());
            }
        }
        if configs.len() > 1 && !done.is_empty() {
            print_totals(&done, args, started.elapsed().as_secs_f64());
        }
    }
    if interrupted {
        return Err(Interrupted.into());
    }
    match failures.len() {
        0 => Ok(()),
        1 if single => Err(failures.remove(0)),
        n => bail!(
            "{n} of {} runs failed (first: {:#}); the others were written",
            configs.len(),
            failures[0]
        ),
    }
}

/// With many seeds: every output name must be free (or `--force`d) before anything trains.
fn check_paths(paths: &[PathBuf], force: bool, flag: &str) -> Result<()> {
    if let Some(folder) = paths.iter().find(|p| p.is_dir()) {
        bail!(
            "{flag}: {} is a folder where a run's file should go; move it or choose another \
             folder",
            folder.display()
        );
    }
    if let Some(taken) = paths
        .iter()
        .find(|p| !force && p.symlink_metadata().is_ok())
    {
        bail!(
            "{flag}: {} exists; pass --force to replace the runs, or choose another folder",
            taken.display()
        );
    }
    // One trial reservation shows the folder can be created and written.
    drop(PendingFile::reserve(&paths[0], true, flag)?);
    Ok(())
}

/// What the report says about one finished run.
struct RunSummary {
    line: String,
    accuracy: f64,
    diverged: Option<String>,
}

fn summary(record: &RunRecord) -> RunSummary {
    let name = &record.config.name;
    let eval = record.evaluation;
    let diverged = match (record.status, record.diverged_at) {
        (Status::Diverged, Some(at)) => Some(format!(
            "{name} diverged (loss or weights no longer finite) at epoch {}, step {} (global step \
             {}); training stopped there (learning rate or initial weights too large?)",
            at.epoch, at.step, at.global_step
        )),
        _ => None,
    };
    RunSummary {
        line: format!(
            "{name}: accuracy {:.3} -> {:.3}, loss {:.4} -> {:.4}, {:.2} s",
            eval.before.accuracy,
            eval.after.accuracy,
            eval.before.loss,
            eval.after.loss,
            record.wall_time_s,
        ),
        accuracy: eval.after.accuracy,
        diverged,
    }
}

fn print_totals(done: &[(RunSummary, PathBuf)], args: &RunArgs, seconds: f64) {
    let accuracies: Vec<f64> = done.iter().map(|(r, _)| r.accuracy).collect();
    let finite = accuracies.iter().copied().filter(|a| a.is_finite());
    let (low, high) = finite.fold((f64::NAN, f64::NAN), |(lo, hi), a| (a.min(lo), a.max(hi)));
    let diverged = done.iter().filter(|(r, _)| r.diverged.is_some()).count();
    println!(
        "{} runs: final accuracy median {:.3} (min {low:.3}, max {high:.3}), {diverged} diverged, \
         {seconds:.1} s; wrote {}",
        done.len(),
        median(accuracies),
        args.out_dir.display()
    );
}
