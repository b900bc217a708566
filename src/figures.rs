//! Figures, drawn by matplotlib scripts from the JSON alone: `scripts/plot.py` for runs,
//! `scripts/plot_sweep.py` for sweep folders, `scripts/plot_paper.py` for `gradtrace paper`.
//!
//! The scripts are carried inside the binary and handed to Python as a temporary file, so
//! figures work from any folder. Python is checked before any training starts: a missing
//! matplotlib should cost a second, not a finished tutorial.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The plotting script for run histories.
const PLOT_SCRIPT: &str = include_str!("../scripts/plot.py");
/// The plotting script for sweep folders.
const SWEEP_SCRIPT: &str = include_str!("../scripts/plot_sweep.py");
/// The plotting script for `gradtrace paper`.
const PAPER_SCRIPT: &str = include_str!("../scripts/plot_paper.py");
/// The views a run's figures can have, `<stem>.<view>.png` beside its JSON (`plot.py` draws
/// those whose data the run holds).
pub const RUN_FIGURES: [&str; 5] = [
    "weights",
    "gradients",
    "saturation",
    "backprop",
    "histograms",
];
/// The figure every sweep gets, checked for after drawing.
const SWEEP_FIGURE: &str = "sweep.heatmaps.png";

/// A Python interpreter known to import matplotlib.
pub struct Plotter {
    python: PathBuf,
}

impl Plotter {
    /// Uses `explicit` (from `--python`), else `$GRADTRACE_PYTHON`, else the project's
    /// `.venv/bin/python` (beside the binary's build folder, then in the current folder), else
    /// `python3`; and checks that it imports matplotlib. For commands whose figures are optional:
    /// the error says that `--no-plots` skips them.
    pub fn find(explicit: Option<&Path>) -> Result<Plotter> {
        Plotter::locate(explicit, ", or skip the figures with --no-plots")
    }

    /// As `find`, for a command that exists to draw (`gradtrace plot`).
    pub fn find_required(explicit: Option<&Path>) -> Result<Plotter> {
        Plotter::locate(explicit, "")
    }

    fn locate(explicit: Option<&Path>, skip: &str) -> Result<Plotter> {
        let python = explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(default_python);
        let shown = python.display();
        let output = Command::new(&python)
            .args(["-c", "import matplotlib"])
            .output()
            .with_context(|| {
                format!(
                    "--python {shown}: cannot start it; run scripts/setup.sh or pass a Python \
                     with matplotlib with --python{skip}"
                )
            })?;
        if !output.status.success() {
            bail!(
                "--python {shown}: cannot import matplotlib; run scripts/setup.sh or pass a \
                 Python that has it with --python{skip}"
            );
        }
        Ok(Plotter { python })
    }

    /// Draws the figures of these run files beside them, split over `jobs` Python processes,
    /// checks that each run's weight figure exists afterwards, and returns every figure drawn.
    /// `epochs` picks the records of the per-record views (empty: first, middle and last).
    pub fn draw(&self, files: &[PathBuf], jobs: usize, epochs: &[u64]) -> Result<Vec<PathBuf>> {
        let chunk = files.len().div_ceil(jobs.max(1)).max(1);
        let parts: Vec<&[PathBuf]> = files.chunks(chunk).collect();
        let mut flags = Vec::new();
        if !epochs.is_empty() {
            let list: Vec<String> = epochs.iter().map(u64::to_string).collect();
            flags = vec!["--epochs".to_string(), list.join(",")];
        }
        let drawn = self.run_script(PLOT_SCRIPT, &flags, &parts)?;
        if let Some(missing) = files
            .iter()
            .map(|f| f.with_extension("weights.png"))
            .find(|p| !p.exists())
        {
            bail!(
                "--python {}: the plotting script ran but drew no {}",
                self.python.display(),
                missing.display()
            );
        }
        Ok(drawn)
    }

    /// Draws the figures of these sweep folders into them, one Python process each at most
    /// `jobs` at a time, and returns every figure drawn.
    pub fn draw_sweeps(&self, folders: &[PathBuf], jobs: usize) -> Result<Vec<PathBuf>> {
        let chunk = folders.len().div_ceil(jobs.max(1)).max(1);
        let parts: Vec<&[PathBuf]> = folders.chunks(chunk).collect();
        let drawn = self.run_script(SWEEP_SCRIPT, &[], &parts)?;
        if let Some(missing) = folders
            .iter()
            .map(|f| f.join(SWEEP_FIGURE))
            .find(|p| !p.exists())
        {
            bail!(
                "--python {}: the sweep plotting script drew nothing (no {})",
                self.python.display(),
                missing.display()
            );
        }
        Ok(drawn)
    }

    /// Draws `paper.png` beside `paper.json` and returns its path.
    pub fn draw_paper(&self, json: &Path) -> Result<PathBuf> {
        self.run_script(PAPER_SCRIPT, &[], &[&[json.to_path_buf()]])?;
        let figure = json.with_extension("png");
        if !figure.exists() {
            bail!(
                "--python {}: the plotting script drew nothing (no {}); the JSON is complete",
                self.python.display(),
                figure.display()
            );
        }
        Ok(figure)
    }

    /// Runs `script` once per part, in parallel, with the part's files as arguments, and returns
    /// the paths the scripts printed (one per figure written).
    fn run_script(
        &self,
        script_text: &str,
        flags: &[String],
        parts: &[&[PathBuf]],
    ) -> Result<Vec<PathBuf>> {
        // The script goes to Python as a file: a pipe would let a Python that stops reading
        // early kill us with SIGPIPE.
        let mut script = tempfile::Builder::new()
            .prefix("gradtrace-plot-")
            .suffix(".py")
            .tempfile()?;
        script
            .write_all(script_text.as_bytes())
            .context("writing the plotting script")?;
        script.flush()?;

        let mut children = Vec::new();
        for part in parts {
            let child = Command::new(&self.python)
                .arg(script.path())
                .args(flags)
                .args(part.iter())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", self.python.display()))?;
            children.push(child);
        }
        // Each child is drained on its own thread, so one that prints many paths never waits
        // on a full pipe while another is being read.
        let waiting: Vec<_> = children
            .into_iter()
            .map(|child| std::thread::spawn(move || child.wait_with_output()))
            .collect();
        let mut failure = None;
        let mut drawn = Vec::new();
        for handle in waiting {
            let output = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a thread reading the plotting script panicked"))?
                .context("waiting for the plotting script")?;
            drawn.extend(
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from),
            );
            if !output.status.success() && failure.is_none() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                failure = Some(format!("{} ({})", reason.trim(), output.status));
            }
        }
        if let Some(reason) = failure {
            bail!("the figures failed: {reason}");
        }
        Ok(drawn)
    }
}

/// The error of figures that failed after their JSON was written, with `redo`, how to draw
/// them again. A Ctrl-C that killed the plotting script stays an interruption (exit 130).
pub fn drawing_failed(error: anyhow::Error, redo: &str) -> anyhow::Error {
    if crate::interrupt::requested() {
        anyhow::Error::new(crate::interrupt::Interrupted)
            .context(format!("interrupted while drawing; {redo}"))
    } else {
        error.context(redo.to_string())
    }
}

fn default_python() -> PathBuf {
    if let Some(python) = std::env::var_os("GRADTRACE_PYTHON") {
        return PathBuf::from(python);
    }
    // target/release/gradtrace -> the project root is three levels up.
    let beside_build = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .nth(3)
            .map(|root| root.join(".venv/bin/python"))
    });
    let mut candidates = beside_build
        .into_iter()
        .chain([PathBuf::from(".venv/bin/python")]);
    candidates
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}
