//! `gradtrace tensorboard`: runs and sweeps already on disk as TensorBoard event files, so they
//! open in the tool people already use (`tensorboard --logdir DIR`).
//!
//! Each run becomes one TensorBoard run, a folder under `--out-dir` holding one event file:
//! a run file given by name is `<stem>`, a run found in a folder is `<folder>/<stem>`, and a run
//! of a sweep folder is `<sweep>/<knobs>`, named by the knobs that differ between the sweep's
//! runs (`activation=tanh,seed=3`), and the sweep's folder gets the HParams experiment that
//! lists those knobs. Everything is checked, names and destinations included, before the first
//! file is written, and the files are renamed into place only once every one is written: a run
//! that cannot be converted leaves the output folder as it was, earlier exports included.

use crate::cli::TensorboardArgs;
use crate::commands::count;
use crate::commands::inputs::{finished_runs, Inputs};
use crate::interrupt::{self, Interrupted};
use crate::output::{is_inside, progress_bar, sweep_holding, PendingFile, WrittenFile};
use crate::pool::{default_jobs, map_parallel};
use crate::sweep::index::IndexEntry;
use crate::tensorboard::events::EventFile;
use crate::tensorboard::hparams::{self, Knobs};
use crate::tensorboard::{run_events, Session};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Event files gradtrace writes end in this, so a later `--force` knows its own from another
/// program's.
const SUFFIX: &str = ".gradtrace";

/// One file to write: a run's events, or a sweep's HParams experiment.
enum Job {
    /// A run JSON and the TensorBoard run (a folder under `--out-dir`) it becomes, with its
    /// knobs when it belongs to a sweep.
    Run {
        json: PathBuf,
        run: PathBuf,
        knobs: Option<Knobs>,
        /// The folder or sweep given on the command line that holds it (none for a file given
        /// by name).
        group: Option<PathBuf>,
    },
    /// A sweep's experiment, in the folder above its runs; `runs` holds each run's knobs.
    Experiment {
        sweep: PathBuf,
        run: PathBuf,
        runs: Vec<Knobs>,
    },
}

impl Job {
    /// What the job converts, for messages.
    fn source(&self) -> String {
        match self {
            Job::Run { json, .. } => json.display().to_string(),
            Job::Experiment { sweep, .. } => format!("the sweep {}", sweep.display()),
        }
    }

    /// The folder or sweep given on the command line that the job belongs to.
    fn group(&self) -> Option<&Path> {
        match self {
            Job::Run { group, .. } => group.as_deref(),
            Job::Experiment { sweep, .. } => Some(sweep),
        }
    }

    /// The folder the job writes its event file into.
    fn folder(&self) -> &Path {
        match self {
            Job::Run { run, .. } | Job::Experiment { run, .. } => run,
        }
    }
}

/// Checks everything, then converts the runs on `--jobs` threads.
pub fn run(args: &TensorboardArgs) -> Result<()> {
    // Every input and destination is checked before anything is written.
    let inputs = Inputs::of(&args.paths)?;
    if args.out_dir.exists() && !args.out_dir.is_dir() {
        bail!(
            "--out-dir {}: a file, not a folder; give a folder for the TensorBoard runs",
            args.out_dir.display()
        );
    }
    // Not inside a folder of runs given, where the export would sit among the runs it came
    // from; nor, below, anywhere inside a sweep.
    let mut folders = inputs.runs.iter().filter_map(|r| r.folder.as_deref());
    if let Some(folder) = folders.find(|f| is_inside(&args.out_dir, f)) {
        bail!(
            "--out-dir {}: inside the folder of runs {} it exports; choose an --out-dir outside \
             it",
            args.out_dir.display(),
            folder.display()
        );
    }
    let jobs = plan(&inputs, &args.out_dir)?;
    for job in &jobs {
        if let Some(sweep) = sweep_holding(job.folder(), &inputs.sweeps) {
            bail!(
                "--out-dir {}: {} would be written inside the sweep folder {}, which could then \
                 no longer be resumed or extended; choose an --out-dir outside it",
                args.out_dir.display(),
                job.folder().display(),
                sweep.display()
            );
        }
        check_destination(job.folder(), args.force)?;
        if matches!(job, Job::Run { .. }) {
            check_no_runs_below(job.folder())?;
        }
    }
    let created = folders_to_create(&jobs);

    // Every event file is written beside its destination first and renamed into place only
    // once all are: one failure (or Ctrl-C) leaves an earlier export, even one `--force` was
    // about to replace, exactly as it was.
    let bar = progress_bar(jobs.len() as u64, "runs", false);
    bar.set_message("tensorboard");
    let threads = args.jobs.map_or_else(default_jobs, |j| j as usize);
    let results = map_parallel(
        &jobs,
        threads,
        |job| convert(job, args.force),
        |_| bar.inc(1),
    );
    bar.finish_and_clear();
    let failure = results
        .iter()
        .find_map(|r| r.as_ref().err().map(|e| format!("{e:#}")));
    if let Some(error) = failure {
        drop(results);
        for folder in &created {
            let _ = std::fs::remove_dir(folder);
        }
        if interrupt::requested() {
            return Err(anyhow::Error::new(Interrupted).context("interrupted; nothing was written"));
        }
        bail!("{error}; nothing was written");
    }
    let written = results
        .into_iter()
        .map(|file| file.and_then(WrittenFile::commit))
        .collect::<Result<Vec<PathBuf>>>()?;
    for file in &written {
        remove_older_exports(file);
        println!("{}", file.display());
    }
    if args.force {
        let grouped: BTreeSet<&Path> = jobs
            .iter()
            .filter(|job| job.group().is_some() && matches!(job, Job::Run { .. }))
            .filter_map(|job| job.folder().parent())
            .collect();
        for folder in grouped {
            remove_dropped_runs(folder, &jobs);
        }
    }
    let sweeps = jobs
        .iter()
        .filter(|j| matches!(j, Job::Experiment { .. }))
        .count();
    eprintln!(
        "tensorboard: {} and {} written to {}; view them with: tensorboard --logdir {}",
        count(jobs.len() - sweeps, "run"),
        count(sweeps, "sweep"),
        args.out_dir.display(),
        args.out_dir.display()
    );
    Ok(())
}

/// The run folders: one per run file and per finished run of each sweep, each name once, and
/// each sweep's experiment.
fn plan(inputs: &Inputs, out_dir: &Path) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for file in &inputs.runs {
        let stem = file_name(&file.path.with_extension(""))?;
        let run = match &file.folder {
            Some(folder) => Path::new(&file_name(folder)?).join(stem),
            None => PathBuf::from(stem),
        };
        jobs.push(Job::Run {
            json: file.path.clone(),
            run,
            knobs: None,
            group: file.folder.clone(),
        });
    }
    for sweep in &inputs.sweeps {
        let prefix = PathBuf::from(file_name(sweep)?);
        let entries = finished_runs(sweep)?;
        let knobs = sweep_knobs(&entries);
        let mut names: Vec<String> = entries
            .iter()
            .zip(&knobs)
            .map(|(entry, knobs)| run_name(entry, knobs))
            .collect();
        // Knob values that differ may still tidy to one name (`d1/data.csv`, `d1-data.csv`):
        // those runs go by their ids.
        let repeated: BTreeSet<String> = names
            .iter()
            .enumerate()
            .filter(|(i, n)| names[..*i].contains(n))
            .map(|(_, n)| n.clone())
            .collect();
        for (name, entry) in names.iter_mut().zip(&entries) {
            if repeated.contains(name) {
                *name = entry.id.clone();
            }
        }
        for ((entry, knobs), name) in entries.iter().zip(&knobs).zip(names) {
            jobs.push(Job::Run {
                json: sweep.join("runs").join(format!("{}.json", entry.id)),
                run: prefix.join(name),
                knobs: Some(knobs.clone()),
                group: Some(sweep.clone()),
            });
        }
        jobs.push(Job::Experiment {
            sweep: sweep.clone(),
            run: prefix,
            runs: knobs,
        });
    }

    // Two inputs may not become one TensorBoard run, nor a run sit in another's folder.
    let mut seen: BTreeMap<&Path, String> = BTreeMap::new();
    for job in &jobs {
        let source = job.source();
        if let Some(other) = seen.insert(job.folder(), source.clone()) {
            bail!(
                "{other} and {source} would both become the TensorBoard run {}; export them in \
                 separate calls with different --out-dir",
                job.folder().display()
            );
        }
    }
    // Nor may two inputs share a folder of the log folder (a sweep and a folder of runs of one
    // name): TensorBoard would show them as one, and a later --force of one would clear the other.
    let mut tops: BTreeMap<PathBuf, String> = BTreeMap::new();
    for job in &jobs {
        let top = job
            .folder()
            .components()
            .next()
            .map(|c| PathBuf::from(c.as_os_str()));
        let source = match job.group() {
            Some(group) => group.display().to_string(),
            None => job.source(),
        };
        if let Some(top) = top {
            let known = tops.entry(top.clone()).or_insert_with(|| source.clone());
            if *known != source {
                bail!(
                    "{known} and {source} would share the TensorBoard folder {}; export them in \
                     separate calls with different --out-dir",
                    top.display()
                );
            }
        }
    }

    for job in &mut jobs {
        let folder = match job {
            Job::Run { run, .. } | Job::Experiment { run, .. } => run,
        };
        *folder = out_dir.join(&*folder);
    }
    Ok(jobs)
}

/// The last component of a path, resolving `.` and the like through the file system.
fn file_name(path: &Path) -> Result<String> {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    resolved
        .file_name()
        .or_else(|| path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{}: cannot name a TensorBoard run after it", path.display()))
}

/// Per sweep run, the knobs (seed included) that differ between the sweep's runs.
fn sweep_knobs(entries: &[IndexEntry]) -> Vec<Knobs> {
    let configs: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::to_value(&e.config).expect("a config serializes"))
        .collect();
    hparams::varying_knobs(&configs)
}

/// `knob=value,...` in the config's key order; the run's id where nothing differs or the name
/// would be too long for a folder.
fn run_name(entry: &IndexEntry, knobs: &Knobs) -> String {
    let parts: Vec<String> = knobs
        .iter()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            format!("{k}={}", tidy(&text))
        })
        .collect();
    let name = parts.join(",");
    if name.is_empty() || name.len() > 200 {
        entry.id.clone()
    } else {
        name
    }
}

/// A knob's value as a folder-name part: `[5,5,5]` becomes `5-5-5`, any character other than
/// letters, digits and `._+-` a dash.
fn tidy(value: &str) -> String {
    let dashed: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let parts: Vec<&str> = dashed.split('-').filter(|p| !p.is_empty()).collect();
    let joined = parts.join("-");
    if value.starts_with('-') {
        format!("-{joined}")
    } else {
        joined
    }
}

/// A run folder may be new, or hold gradtrace's own earlier export (replaced with `--force`);
/// another program's event files there would mix with ours in TensorBoard, so they are refused.
fn check_destination(run: &Path, force: bool) -> Result<()> {
    let shown = run.display();
    if run.exists() && !run.is_dir() {
        bail!("{shown}: exists and is not a folder; choose another --out-dir");
    }
    for file in event_files(run) {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = name.is_some_and(|n| n.ends_with(SUFFIX));
        if !ours {
            bail!(
                "{}: an event file gradtrace did not write; choose another --out-dir",
                file.display()
            );
        }
        if !force {
            bail!(
                "{shown}: holds an earlier export; pass --force to replace it or choose another \
                 --out-dir"
            );
        }
    }
    Ok(())
}

/// A run's folder must not hold the runs of an earlier sweep or folder export (one named like
/// this run file): TensorBoard would nest them under it, and `--force` would not clear them.
fn check_no_runs_below(run: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(run) else {
        return Ok(());
    };
    let below = entries.filter_map(|e| e.ok().map(|e| e.path()));
    if let Some(folder) = below
        .filter(|p| p.is_dir())
        .find(|p| !event_files(p).is_empty())
    {
        bail!(
            "{}: holds TensorBoard runs of an earlier export ({} among them); choose another \
             --out-dir",
            run.display(),
            folder.display()
        );
    }
    Ok(())
}

/// The TensorBoard event files directly in a folder (none when it does not exist).
fn event_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.contains("tfevents")) && p.is_file()
        })
        .collect();
    files.sort();
    files
}

/// Writes one job's event file beside its destination.
fn convert(job: &Job, force: bool) -> Result<WrittenFile> {
    if interrupt::requested() {
        return Err(Interrupted.into());
    }
    let (bytes, time) = match job {
        Job::Run {
            json, run, knobs, ..
        } => {
            let shown = json.display();
            let text = std::fs::read(json).with_context(|| format!("{shown}: cannot read it"))?;
            let history: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{shown}: not valid JSON"))?;
            let end_time = modified(json);
            let name = run.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let session = knobs.as_ref().map(|knobs| Session { knobs, name: &name });
            let bytes = run_events(&history, end_time, session)
                .with_context(|| format!("{shown}: not a run history"))?;
            (bytes, end_time)
        }
        Job::Experiment { sweep, runs, .. } => {
            let created = modified(&sweep.join("sweep.json"));
            let description = format!("gradtrace sweep {}", sweep.display());
            let mut file = EventFile::new(created);
            file.write(
                0,
                created,
                vec![hparams::experiment(runs, &description, created)],
            );
            (file.into_bytes(), created)
        }
    };

    let name = format!("events.out.tfevents.{}{SUFFIX}", time.floor() as u64);
    let pending = PendingFile::reserve(&job.folder().join(name), force, "--out-dir")?;
    pending.write_bytes(&bytes)
}

/// A file's modification time in seconds since the Unix epoch (0 when unknown): when a run's
/// JSON was written, training had just ended.
fn modified(path: &Path) -> f64 {
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    modified
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The folders the jobs will create, deepest first, so that a failure can take them back.
fn folders_to_create(jobs: &[Job]) -> Vec<PathBuf> {
    let mut created: Vec<PathBuf> = jobs
        .iter()
        .flat_map(|job| job.folder().ancestors().take_while(|f| !f.exists()))
        .filter(|f| !f.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    created.sort_by_cached_key(|f| (std::cmp::Reverse(f.components().count()), f.clone()));
    created.dedup();
    created
}

/// A sweep or folder re-exported with `--force` may have lost runs or renamed them (an extended
/// grid adds knobs to every name, a run file was renamed): gradtrace's own event files in run
/// folders of the earlier export that this one did not write go, and the folders with them when
/// left empty, so that TensorBoard lists each run once.
fn remove_dropped_runs(sweep: &Path, jobs: &[Job]) {
    let Ok(entries) = std::fs::read_dir(sweep) else {
        return;
    };
    for folder in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let current = jobs.iter().any(|job| job.folder() == folder);
        if current || !folder.is_dir() {
            continue;
        }
        for file in event_files(&folder) {
            if file.to_string_lossy().ends_with(SUFFIX) {
                let _ = std::fs::remove_file(file);
            }
        }
        let _ = std::fs::remove_dir(&folder);
    }
}

/// After a successful export, the earlier gradtrace event files beside `file` go, so
/// TensorBoard does not show a run twice.
fn remove_older_exports(file: &Path) {
    let Some(folder) = file.parent() else { return };
    for other in event_files(folder) {
        let ours = other.to_string_lossy().ends_with(SUFFIX);
        if ours && other != file {
            let _ = std::fs::remove_file(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knob_values_become_folder_name_parts() {
        assert_eq!(tidy("[5,5,5,5]"), "5-5-5-5");
        assert_eq!(tidy("glorot-uniform"), "glorot-uniform");
        assert_eq!(tidy("0.001"), "0.001");
        assert_eq!(tidy("-0.5"), "-0.5");
        assert_eq!(tidy("{\"steps\":4}"), "steps-4");
    }
}
