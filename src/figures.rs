//! Figures, drawn by `scripts/plot.py` (matplotlib) from the run JSON alone.
//!
//! The script is carried inside the binary and fed to Python on stdin, so figures work from any
//! folder. Python is checked before any training starts: a missing matplotlib should cost a
//! second, not a finished tutorial.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The plotting script for run histories.
const PLOT_SCRIPT: &str = include_str!("../scripts/plot.py");
/// The plotting script for `gradtrace paper`.
const PAPER_SCRIPT: &str = include_str!("../scripts/plot_paper.py");

/// A Python interpreter known to import matplotlib.
pub struct Plotter {
    python: PathBuf,
}

impl Plotter {
    /// Uses `explicit` (from `--python`), else `$GRADTRACE_PYTHON`, else the project's
    /// `.venv/bin/python` (beside the binary's build folder, then in the current folder), else
    /// `python3`; and checks that it imports matplotlib.
    pub fn find(explicit: Option<&Path>) -> Result<Plotter> {
        let python = explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(default_python);
        let shown = python.display();
        let output = Command::new(&python)
            .args(["-c", "import matplotlib"])
            .output()
            .with_context(|| {
                format!("--python {shown}: cannot start it; run scripts/setup.sh, pass --python, or --no-plots")
            })?;
        if !output.status.success() {
            bail!(
                "--python {shown}: cannot import matplotlib; run scripts/setup.sh, pass a \
                 Python that has it with --python, or skip the figures with --no-plots"
            );
        }
        Ok(Plotter { python })
    }

    /// Draws the figures of these run files beside them, split over `jobs` Python processes,
    /// and checks that each run's weight figure exists afterwards.
    pub fn draw(&self, files: &[PathBuf], jobs: usize) -> Result<()> {
        let chunk = files.len().div_ceil(jobs.max(1)).max(1);
        let parts: Vec<&[PathBuf]> = files.chunks(chunk).collect();
        self.run_script(PLOT_SCRIPT, &parts)?;
        if let Some(missing) = files
            .iter()
            .map(|f| f.with_extension("weights.png"))
            .find(|p| !p.exists())
        {
            bail!(
                "--python {}: the plotting script drew nothing (no {}); the JSON files are complete",
                self.python.display(),
                missing.display()
            );
        }
        Ok(())
    }

    /// Draws `paper.png` beside `paper.json` and returns its path.
    pub fn draw_paper(&self, json: &Path) -> Result<PathBuf> {
        self.run_script(PAPER_SCRIPT, &[&[json.to_path_buf()]])?;
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

    /// Runs `script` once per part, in parallel, with the part's files as arguments.
    fn run_script(&self, script_text: &str, parts: &[&[PathBuf]]) -> Result<()> {
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
                .args(part.iter())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", self.python.display()))?;
            children.push(child);
        }
        let mut failure = None;
        for child in children {
            let output = child
                .wait_with_output()
                .context("waiting for the plotting script")?;
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
            bail!("the figures failed: {reason}; the JSON files are complete");
        }
        Ok(())
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
