//! Writing results without ever leaving half a file, and the one place progress bars are made.
//!
//! A run's JSON is written to a temporary file in the destination folder and renamed into place,
//! so a reader (or a crash) sees either the whole file or none. The temporary file is created
//! before training starts, so an unwritable destination fails in milliseconds, not after a run.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A destination file, reserved before the work that fills it. Dropped without a commit, it
/// leaves nothing behind: the temporary file goes, then any folder the reservation created.
pub struct PendingFile {
    path: PathBuf,
    temp: NamedTempFile,
    replace: bool,
    folders: FolderGuard,
}

/// Folders a reservation created, removed again (if still empty) unless the file was committed.
struct FolderGuard {
    folders: Vec<PathBuf>,
    committed: bool,
}

impl PendingFile {
    /// Checks that `path` can be written (creating its folder) and reserves a temporary file
    /// beside it. An existing file is an error unless `replace` is set. `flag` names the option
    /// the path came from, for the error message.
    pub fn reserve(path: &Path, replace: bool, flag: &str) -> Result<PendingFile> {
        let shown = path.display();
        if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
            bail!("{flag} {shown}: names a folder, not a file; give a file path");
        }
        if path.file_name().is_some_and(|name| name.len() > 200) {
            bail!("{flag} {shown}: the file name is too long; keep it under 200 bytes");
        }
        let present = path.symlink_metadata().is_ok();
        if present && !replace {
            bail!("{flag} {shown}: the file exists; pass --force to replace it or choose another");
        }
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let created = create_folders(&folder)
            .with_context(|| format!("{flag} {shown}: cannot create the folder; choose another"))?;
        clean_once(&folder);
        let temp = tempfile::Builder::new()
            .prefix(&temp_prefix(std::process::id()))
            .suffix(".tmp")
            .tempfile_in(&folder);
        let temp = match temp {
            Ok(t) => t,
            Err(e) => {
                remove_empty(&created);
                bail!(
                    "{flag} {shown}: cannot write in {}: {e}; choose another",
                    folder.display()
                );
            }
        };
        let folders = FolderGuard {
            folders: created,
            committed: false,
        };
        Ok(PendingFile {
            path: path.to_path_buf(),
            temp,
            replace,
            folders,
        })
    }

    /// Writes `value` as indented JSON (lists of numbers on one line, see `json`) with a
    /// trailing newline and renames it into place.
    pub fn commit_json(self, value: &impl Serialize) -> Result<PathBuf> {
        self.commit_with(|writer| {
            crate::json::to_writer(&mut *writer, value)?;
            Ok(writer.write_all(b"\n")?)
        })
    }

    /// Writes `bytes` as the whole file and renames it into place.
    pub fn commit_bytes(self, bytes: &[u8]) -> Result<PathBuf> {
        self.write_bytes(bytes)?.commit()
    }

    /// Writes `bytes` as the whole file but leaves it beside its destination: a caller writing
    /// several files commits them only once all are written, so that a failure midway leaves
    /// every earlier file (one `--force` would replace included) as it was.
    pub fn write_bytes(self, bytes: &[u8]) -> Result<WrittenFile> {
        self.write_with(|writer| Ok(writer.write_all(bytes)?))
    }

    fn commit_with(
        self,
        write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
    ) -> Result<PathBuf> {
        self.write_with(write)?.commit()
    }

    fn write_with(
        mut self,
        write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
    ) -> Result<WrittenFile> {
        let shown = self.path.display().to_string();
        let mut writer = std::io::BufWriter::new(self.temp.as_file_mut());
        write(&mut writer)
            .and_then(|()| Ok(writer.flush()?))
            .with_context(|| format!("writing {shown}"))?;
        drop(writer);

        // Temporary files are created private (0600); a result is an ordinary file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let readable = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(self.temp.path(), readable)
                .with_context(|| format!("{shown}: cannot set the file's permissions"))?;
        }

        // Closed now, so that a caller holding many written files holds no descriptors.
        Ok(WrittenFile {
            path: self.path,
            temp: self.temp.into_temp_path(),
            replace: self.replace,
            folders: self.folders,
        })
    }
}

/// A file written in full beside its destination, not yet renamed into place. Dropped without a
/// commit, it leaves nothing behind, as a `PendingFile` does.
pub struct WrittenFile {
    path: PathBuf,
    temp: tempfile::TempPath,
    replace: bool,
    folders: FolderGuard,
}

impl WrittenFile {
    /// Renames the file into place; returns its path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let shown = self.path.display().to_string();
        let persisted = if self.replace {
            self.temp.persist(&self.path)
        } else {
            self.temp.persist_noclobber(&self.path)
        };
        persisted.map_err(|e| e.error).with_context(|| {
            format!(
                "{shown}: could not move the finished file into place; was it created meanwhile?"
            )
        })?;
        self.folders.committed = true;
        Ok(self.path)
    }
}

impl Drop for FolderGuard {
    fn drop(&mut self) {
        if !self.committed {
            remove_empty(&self.folders);
        }
    }
}

/// True when `path` (which need not exist yet) is `folder` or lies below it, symbolic links and
/// `..` resolved as far as the path exists.
pub fn is_inside(path: &Path, folder: &Path) -> bool {
    std::fs::canonicalize(folder).is_ok_and(|folder| resolved(path).starts_with(folder))
}

/// `path`, existing or not, made absolute with its existing part resolved (symbolic links,
/// `..`), so that two spellings of one destination compare equal and its folders are the real
/// ones.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return absolute;
        };
        rest.push(name);
        existing = parent;
    }
    let Ok(mut resolved) = std::fs::canonicalize(existing) else {
        return absolute;
    };
    resolved.extend(rest.iter().rev());
    resolved
}

/// The sweep folder that `path`, existing or not, would lie in: one of `given` (sweeps named on
/// the command line, which may hold only an index) or any folder above it holding `sweep.json`.
pub fn sweep_holding(path: &Path, given: &[PathBuf]) -> Option<PathBuf> {
    if let Some(sweep) = given.iter().find(|s| is_inside(path, s)) {
        return Some(sweep.clone());
    }
    let found = resolved(path)
        .ancestors()
        .find(|a| a.join("sweep.json").is_file())
        .map(Path::to_path_buf);
    found
}

/// Refuses an output path inside a sweep folder (see `sweep_holding`): any file there that the
/// sweep did not write stops it from resuming. `flag` names the option the path came from.
pub fn refuse_inside_sweep(flag: &str, path: &Path, given: &[PathBuf]) -> Result<()> {
    if let Some(sweep) = sweep_holding(path, given) {
        bail!(
            "{flag} {}: inside the sweep folder {}, which could then no longer be resumed; \
             choose a path outside it",
            path.display(),
            sweep.display()
        );
    }
    Ok(())
}

/// Temporary files are named `.gradtrace-<host>-<pid>-*.tmp`, so that a later process can tell
/// the leftovers of a killed one (same host, pid gone) from a live writer on another node.
fn temp_prefix(pid: u32) -> String {
    format!(".gradtrace-{}-{pid}-", hostname())
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(0);
    let name = if ok {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        String::new()
    };
    name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// True for the name of a gradtrace temporary file (of any process, on any host).
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with(".gradtrace-") && name.ends_with(".tmp")
}

/// `remove_stale_temp_files` the first time this process writes into `folder`: a folder is
/// cleaned once, not once per file (thousands of runs into one folder would otherwise read it
/// thousands of times).
fn clean_once(folder: &Path) {
    static CLEANED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut cleaned = CLEANED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !cleaned.iter().any(|f| f == folder) {
        remove_stale_temp_files(folder);
        cleaned.push(folder.to_path_buf());
    }
}

/// Deletes temporary files that killed gradtrace processes on this host left in `folder`.
pub fn remove_stale_temp_files(folder: &Path) {
    let ours = format!(".gradtrace-{}-", hostname());
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&ours) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates `folder` and any missing parents, returning those it created, deepest first.
fn create_folders(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut current = Some(folder);
    while let Some(f) = current {
        if f.as_os_str().is_empty() || f.exists() {
            break;
        }
        missing.push(f.to_path_buf());
        current = f.parent();
    }
    std::fs::create_dir_all(folder)?;
    Ok(missing)
}

/// Removes folders that are still empty (a failed run leaves nothing behind).
fn remove_empty(folders: &[PathBuf]) {
    for folder in folders {
        let _ = std::fs::remove_dir(folder);
    }
}

/// A progress bar on stderr, drawn only for a terminal and without `--quiet`.
pub fn progress_bar(len: u64, unit: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template =
        format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{rate}} {unit}/s, {{eta}} left)");
    let style = ProgressStyle::with_template(&template)
        .expect("valid template")
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.1}", state.per_sec());
            },
        );
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_dead_processes_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7ffffff0 does not exist; our own pid does.
        let dead = dir
            .path()
            .join(format!("{}abc.tmp", temp_prefix(0x7fff_fff0)));
        let live = dir
            .path()
            .join(format!("{}abc.tmp", temp_prefix(std::process::id())));
        let other = dir.path().join(".gradtrace-elsewhere-1-abc.tmp");
        for path in [&dead, &live, &other] {
            std::fs::write(path, "partial").unwrap();
        }
        remove_stale_temp_files(dir.path());
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn a_dropped_reservation_leaves_no_file_and_no_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join("run.json");
        let pending = PendingFile::reserve(&path, false, "--out").unwrap();
        assert!(dir.path().join("a").join("b").is_dir());
        drop(pending);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
