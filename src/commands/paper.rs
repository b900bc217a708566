//! `gradtrace paper`: every experiment of `paper.rs`, a table, `paper.json` and `paper.png`.

use crate::cli::{kebab, PaperArgs};
use crate::figures::{drawing_failed, Plotter};
use crate::output::{refuse_inside_sweep, PendingFile};
use crate::paper::{experiments, measure, Measurement, TOLERANCE};
use crate::record::ToolInfo;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

/// Name of the file format, the first key of `paper.json`.
const FORMAT: &str = "gradtrace-paper";

/// `paper.json`.
#[derive(Serialize)]
struct PaperFile<'a> {
    /// Always `gradtrace-paper`.
    format: &'static str,
    /// Bumped when a field changes meaning.
    version: u32,
    /// Program and library versions.
    tool: ToolInfo,
    /// Largest relative error between a measured ratio and its prediction counted as agreeing.
    tolerance: f64,
    /// Each experiment with its measurements.
    experiments: &'a [Measurement],
}

/// Measures every experiment, prints the table and writes the files.
pub fn run(args: &PaperArgs) -> Result<()> {
    // Outputs and Python are checked before the (seconds of) arithmetic.
    let json_path = args.out_dir.join("paper.json");
    refuse_inside_sweep("--out-dir", &args.out_dir, &[])?;
    let ours = is_paper_output(&json_path)?;
    let json = PendingFile::reserve(&json_path, ours, "--out-dir")?;
    let plotter = if args.no_plots {
        None
    } else {
        let png = json_path.with_extension("png");
        if png.exists() && !ours {
            bail!(
                "--out-dir {}: paper.png exists and no earlier paper wrote it; choose another \
                 folder",
                args.out_dir.display()
            );
        }
        Some(Plotter::find(args.python.as_deref())?)
    };

    // The matrices are large: every core helps here, unlike in training.
    tch::set_num_threads(crate::pool::default_jobs() as i32);
    let mut measured = Vec::new();
    for experiment in experiments() {
        measured.push(measure(&experiment, args.batch as usize, args.seed));
        if crate::interrupt::requested() {
            return Err(crate::interrupt::Interrupted.into());
        }
    }
    print_table(&measured);

    let written = json.commit_json(&PaperFile {
        format: FORMAT,
        version: 1,
        tool: ToolInfo::current(),
        tolerance: TOLERANCE,
        experiments: &measured,
    })?;
    if let Some(plotter) = plotter {
        let redo = format!(
            "{} is complete; run gradtrace paper again to draw its figure",
            written.display()
        );
        let figure = plotter
            .draw_paper(&written)
            .map_err(|e| drawing_failed(e, &redo))?;
        println!("wrote {} and {}", written.display(), figure.display());
    } else {
        println!("wrote {}", written.display());
    }
    if let Some(off) = measured.iter().find(|m| !m.agrees) {
        eprintln!(
            "warning: {} measured {:.3} forward and {:.3} backward against {:.3} predicted; \
             try a larger --batch or another --seed",
            off.experiment.name,
            off.forward_ratio,
            off.backward_ratio,
            off.experiment.predicted_ratio
        );
    }
    Ok(())
}

/// True when `path` holds an earlier `gradtrace paper` result; false when it does not exist.
/// Anything else there is the user's, and refused.
fn is_paper_output(path: &Path) -> Result<bool> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_string));
    if format.as_deref() != Some(FORMAT) {
        bail!(
            "--out-dir {}: paper.json exists and no earlier paper wrote it; choose another folder",
            path.parent().unwrap_or(Path::new(".")).display()
        );
    }
    Ok(true)
}

fn print_table(measured: &[Measurement]) {
    println!(
        "{:<20}{:<9}{:>7}{:>7}{:>11}{:>10}{:>10}  agrees",
        "experiment", "act", "layers", "width", "predicted", "forward", "backward"
    );
    for m in measured {
        let e = &m.experiment;
        println!(
            "{:<20}{:<9}{:>7}{:>7}{:>11.3}{:>10.3}{:>10.3}  {}",
            e.name,
            kebab(e.activation),
            e.layers,
            e.width,
            e.predicted_ratio,
            m.forward_ratio,
            m.backward_ratio,
            if m.agrees { "yes" } else { "NO" }
        );
    }
    println!(
        "predicted: each layer's variance over the previous layer's (forward, activations) and \
         over the next layer's (backward, gradients w.r.t. pre-activations): n Var(W), halved \
         for ReLU; measured: geometric mean over the layers, at initialization; agrees: within \
         {:.0}%",
        TOLERANCE * 100.0
    );
}
