//! Sorting the paths given to `plot` and `tensorboard` into run files and sweep folders, every
//! path checked before any work starts, so a typo costs nothing.

use crate::commands::sweep::index_files;
use crate::record::FORMAT;
use crate::sweep::index::{self, IndexEntry};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// What the paths given hold.
#[derive(Default)]
pub struct Inputs {
    /// Run JSON files, each once, in the order given.
    pub runs: Vec<RunFile>,
    /// Sweep folders, each once.
    pub sweeps: Vec<PathBuf>,
}

/// A run JSON and the folder argument it was found in (none for a file given by name).
pub struct RunFile {
    /// The file.
    pub path: PathBuf,
    /// The folder given on the command line that holds it.
    pub folder: Option<PathBuf>,
}

impl Inputs {
    /// Sorts every path, or says of the first one that cannot be used why not.
    pub fn of(paths: &[PathBuf]) -> Result<Inputs> {
        let mut inputs = Inputs::default();
        for path in paths {
            inputs.add(path)?;
        }
        Ok(inputs)
    }

    /// Sorts one path into runs or sweeps.
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
            self.push_run(path, None);
            return Ok(());
        }
        if is_sweep(path)? {
            if finished_runs(path)?.is_empty() {
                bail!(
                    "{shown}: a sweep with no finished runs; run `gradtrace sweep` into it \
                     first, or wait until some of its runs have finished"
                );
            }
            if !self.sweeps.iter().any(|p| p == path) {
                self.sweeps.push(path.to_path_buf());
            }
            return Ok(());
        }
        let mut found = 0;
        for file in json_files(path)? {
            if is_run(&file) {
                self.push_run(&file, Some(path));
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

    fn push_run(&mut self, path: &Path, folder: Option<&Path>) {
        if !self.runs.iter().any(|r| r.path == path) {
            self.runs.push(RunFile {
                path: path.to_path_buf(),
                folder: folder.map(Path::to_path_buf),
            });
        }
    }
}

/// True when the file is JSON whose `format` is a run's. The whole file is read (a truncated
/// one is refused here rather than half-used), but only that key is kept.
pub fn is_run(path: &Path) -> bool {
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

/// Every run of a sweep folder that finished (completed or diverged) and whose JSON is in
/// `runs/`, once per id, by id, from all of its shards' indexes.
pub fn finished_runs(folder: &Path) -> Result<Vec<IndexEntry>> {
    let mut runs = BTreeMap::new();
    for file in index_files(folder)? {
        for entry in index::read(&file)? {
            let present = folder
                .join("runs")
                .join(format!("{}.json", entry.id))
                .is_file();
            if entry.status != "failed" && present {
                runs.entry(entry.id.clone()).or_insert(entry);
            }
        }
    }
    Ok(runs.into_values().collect())
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
