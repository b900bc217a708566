//! Sorting the paths given to `plot` and `tensorboard` into run files and sweep folders, every
//! path checked before any work starts, so a typo costs nothing.

use crate::commands::sweep::index_files;
use crate::record::{FORMAT, FORMAT_VERSION};
use crate::sweep::index::{self, IndexEntry};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
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
            bail!(
                "{shown}: no such file or folder; give a run JSON, a folder of them, or a sweep \
                 folder"
            );
        }
        if path.is_file() {
            match classify(path) {
                Kind::Run => self.push_run(path, None),
                Kind::Other => bail!(
                    "{shown}: not a gradtrace run JSON (no \"format\": \"{FORMAT}\"); give a file \
                     written by gradtrace run, tutorial or sweep, or a sweep's folder"
                ),
                Kind::Broken(why) => bail!("{shown}: {why}"),
                Kind::NotJson(why) => bail!("{shown}: {why}; give a run JSON written by gradtrace"),
            }
            return Ok(());
        }
        if is_sweep(path)? {
            let (present, missing) = indexed_runs(path)?;
            if !missing.is_empty() {
                eprintln!(
                    "warning: {shown}: {} indexed run(s) have no JSON in runs/ (the first: {}) and \
                     are left out; the next gradtrace sweep call into it trains them again",
                    missing.len(),
                    missing[0]
                );
            }
            if present.is_empty() {
                bail!(
                    "{shown}: a sweep with no finished runs; run `gradtrace sweep` into it \
                     first, or wait until some of its runs have finished"
                );
            }
            if !self.sweeps.iter().any(|p| same_file(p, path)) {
                self.sweeps.push(path.to_path_buf());
            }
            return Ok(());
        }
        // Other JSON may sit beside the runs (a summary, notes), but a run that does not parse
        // is an error: skipping it would leave a hole in the figures nobody notices. A file
        // that is not JSON and not recognisably a run is skipped, saying so.
        let mut found = 0;
        for file in json_files(path)? {
            match classify(&file) {
                Kind::Run => {
                    self.push_run(&file, Some(path));
                    found += 1;
                }
                Kind::Other => {}
                Kind::Broken(why) => bail!("{}: {why}", file.display()),
                Kind::NotJson(why) => eprintln!("warning: skipping {}: {why}", file.display()),
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
        if !self.runs.iter().any(|r| same_file(&r.path, path)) {
            self.runs.push(RunFile {
                path: path.to_path_buf(),
                folder: folder.map(Path::to_path_buf),
            });
        }
    }
}

/// Two spellings of one file or folder (`runs/a.json`, `./runs/a.json`).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What a JSON file turned out to be.
#[derive(Debug, PartialEq)]
pub enum Kind {
    /// A run history this build can read.
    Run,
    /// Valid JSON that is not a run (a summary, someone's notes).
    Other,
    /// A run that cannot be used (cut short, too new): why, and what to do.
    Broken(String),
    /// Not JSON, and not recognisably a run either: why.
    NotJson(String),
}

/// Sorts a file by its `format` and `version`. The whole file is parsed (a truncated run is
/// caught here rather than half-used), but only those keys are kept.
pub fn classify(path: &Path) -> Kind {
    #[derive(Deserialize)]
    struct Head {
        format: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) => return Kind::Broken(format!("cannot read it ({e})")),
    };
    let head = match serde_json::from_slice::<Head>(&text) {
        Ok(head) => head,
        // Not JSON at all. A run cut short (a full disk, a copy interrupted) still shows its
        // format near the top.
        Err(e) if e.is_syntax() || e.is_eof() => {
            let start = &text[..text.len().min(200)];
            let claims_run = String::from_utf8_lossy(start).contains(FORMAT);
            return if claims_run {
                Kind::Broken(format!(
                    "a gradtrace run JSON that is cut short or damaged ({e}); run it again"
                ))
            } else {
                Kind::NotJson(format!("not valid JSON ({e})"))
            };
        }
        Err(_) => return Kind::Other,
    };
    if head.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT) {
        return Kind::Other;
    }
    match head.version.as_ref().and_then(|v| v.as_u64()) {
        Some(v) if v <= u64::from(FORMAT_VERSION) => Kind::Run,
        Some(v) => Kind::Broken(format!(
            "written in run format version {v}, newer than this gradtrace reads \
             ({FORMAT_VERSION}); use a newer gradtrace"
        )),
        None => Kind::Broken("a run JSON without a format version; run it again".to_string()),
    }
}

/// A sweep folder holds `sweep.json` or an index.
fn is_sweep(folder: &Path) -> Result<bool> {
    Ok(folder.join("sweep.json").is_file() || !index_files(folder)?.is_empty())
}

/// Every run of a sweep folder that finished (completed or diverged) and whose JSON is in
/// `runs/`, once per id, by id, from all of its shards' indexes.
pub fn finished_runs(folder: &Path) -> Result<Vec<IndexEntry>> {
    let (present, _) = indexed_runs(folder)?;
    Ok(present)
}

/// The finished runs of a sweep folder whose JSON is there, and the ids of those whose JSON is
/// not (deleted, say).
fn indexed_runs(folder: &Path) -> Result<(Vec<IndexEntry>, Vec<String>)> {
    let mut runs = BTreeMap::new();
    for file in index_files(folder)? {
        for entry in index::read(&file)? {
            if entry.status != "failed" {
                runs.entry(entry.id.clone()).or_insert(entry);
            }
        }
    }
    let (present, missing): (Vec<IndexEntry>, Vec<IndexEntry>) =
        runs.into_values().partition(|entry| {
            let json = folder.join("runs").join(format!("{}.json", entry.id));
            json.is_file()
        });
    Ok((present, missing.into_iter().map(|e| e.id).collect()))
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
