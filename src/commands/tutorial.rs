//! `gradtrace tutorial`: the vanishing-gradient study, every experiment, end to end.
//!
//! 1. Small networks with Adam: 2-5-1 ReLU, 2-5-1 sigmoid, 2-5-5-5-1 sigmoid.
//! 2. 2-5-5-5-5-1 with sigmoid, tanh and ReLU, kernels from normal(0, 1), RMSprop: weights
//!    captured at initialization and after every epoch.
//! 3. The same three networks with gradients recorded at the first step of every epoch.
//! 4. Experiments 2 and 3 again with the `--init` initializer (Glorot uniform by default).
//! 5. Saturation where it happens: sigmoid and tanh with the same kernels and optimizer but
//!    four hidden layers of 100 units, whose wider sums push the units into their flat tails
//!    (the study's five-unit layers barely saturate), diagnostics without the matrices.
//!
//! Every run gets its own seed (base + index), trains on the same data, and writes its JSON;
//! then one table, a summary JSON, and the figures (drawn by `scripts/plot.py` from the JSON).

use crate::cli::{kebab, TutorialArgs};
use crate::config::{Activation, GradEvery, Init, OptimizerKind, RecordLevel, RunConfig};
use crate::data::Dataset;
use crate::figures::{drawing_failed, Plotter};
use crate::interrupt::Interrupted;
use crate::output::{is_temp_file, progress_bar, remove_stale_temp_files, PendingFile};
use crate::pool::{default_jobs, map_parallel};
use crate::record::{median, RunRecord, Status};
use crate::train::train;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One run of the study and the accuracy the study published for it.
struct Experiment {
    /// 1 to 5, as in the module doc.
    number: u8,
    config: RunConfig,
    published: Option<f64>,
}

/// One row of the summary table and `summary.json`.
#[derive(Debug, Serialize)]
pub struct SummaryRow {
    /// Experiment number, 1 to 5.
    pub experiment: u8,
    /// Run name, also the JSON file's stem.
    pub run: String,
    /// The run's JSON, relative to the tutorial folder.
    pub file: String,
    /// `completed` or `diverged`.
    pub status: Status,
    /// Accuracy on the training set before training.
    pub accuracy_before: f64,
    /// Accuracy on the training set after training.
    pub accuracy_after: f64,
    /// The study's accuracy for this run, where it published one.
    pub published_accuracy: Option<f64>,
    /// Training-set loss after training.
    pub final_loss: f64,
    /// Per layer (input side first), the median over records of the kernel gradient's S.D.;
    /// empty when the run recorded no gradients.
    pub median_gradient_sd: Vec<f64>,
    /// The run's median first-layer vanishing index (first-layer over output-layer
    /// kernel-gradient S.D.); null when the run recorded no gradients.
    pub median_vanishing_index: f64,
    /// The same for the back-propagated signal: the median over in-training records of the
    /// first layer's dLoss/dz S.D. over the output layer's; null without diagnostics.
    pub median_signal_index: f64,
    /// Per layer, the median over in-training records of the share of the layer's outputs the
    /// run's rule calls saturated (null where the activation has no rule); empty without
    /// diagnostics.
    pub median_saturated_share: Vec<Option<f64>>,
    /// Training seconds.
    pub wall_time_s: f64,
}

/// `summary.json`: marks the folder as a tutorial's and lists its runs.
#[derive(Debug, Serialize)]
pub struct TutorialSummary {
    /// Always `gradtrace-tutorial`.
    pub format: String,
    /// Format version, 1.
    pub version: u32,
    /// One row per run, in table order.
    pub runs: Vec<SummaryRow>,
}

const SUMMARY_FORMAT: &str = "gradtrace-tutorial";

/// Runs the study and reports it.
pub fn run(args: &TutorialArgs) -> Result<()> {
    // Everything that can be wrong is found before training: flags, Python, the folder.
    let device = args.device.resolve("--device")?;
    let experiments = experiments(args)?;
    for e in &experiments {
        e.config.validate()?;
    }
    let data = Dataset::load(&experiments[0].config.data)?;
    let plotter = if args.no_plots {
        None
    } else {
        Some(Plotter::find(args.python.as_deref())?)
    };
    let names: Vec<String> = experiments
        .iter()
        .map(|e| format!("{}.json", e.config.name))
        .collect();
    let earlier = earlier_tutorial(&args.out_dir, &names)?;
    // The summary is reserved first, so it is dropped last: if anything fails, the folder it
    // may have created is removed after every other reservation.
    let summary_file = PendingFile::reserve(&args.out_dir.join("summary.json"), true, "--out-dir")?;
    let files: Vec<PendingFile> = names
        .iter()
        .map(|name| PendingFile::reserve(&args.out_dir.join(name), true, "--out-dir"))
        .collect::<Result<_>>()?;

    // Train in parallel; each worker owns its models.
    let jobs = args.jobs.map_or_else(default_jobs, |j| j as usize);
    if !args.quiet {
        eprintln!(
            "tutorial: training {} runs on {} with {jobs} worker(s) into {}",
            experiments.len(),
            crate::train::device_name(device),
            args.out_dir.display()
        );
    }
    let bar = progress_bar(experiments.len() as u64, "runs", args.quiet);
    bar.set_message("tutorial");
    let records = map_parallel(
        &experiments,
        jobs,
        |e| train(&e.config, &data, device, |_| ()),
        |_| bar.inc(1),
    );
    bar.finish_and_clear();

    // Write nothing unless every run trained; then every history, then the summary.
    if records
        .iter()
        .any(|r| r.as_ref().is_err_and(|e| e.is::<Interrupted>()))
    {
        return Err(Interrupted.into());
    }
    let records: Vec<RunRecord> = experiments
        .iter()
        .zip(records)
        .map(|(e, r)| r.with_context(|| format!("run {}", e.config.name)))
        .collect::<Result<_>>()?;
    let mut rows = Vec::with_capacity(experiments.len());
    let mut written = Vec::with_capacity(experiments.len());
    for ((experiment, record), file) in experiments.iter().zip(&records).zip(files) {
        let path = file.commit_json(record)?;
        rows.push(summary_row(experiment, record, &path));
        written.push(path);
    }
    let summary = TutorialSummary {
        format: SUMMARY_FORMAT.into(),
        version: 1,
        runs: rows,
    };
    summary_file.commit_json(&summary)?;
    remove_outdated(&args.out_dir, &earlier, &written);

    print_table(&summary.runs);
    println!(
        "\nwrote {} run histories and summary.json to {}",
        summary.runs.len(),
        args.out_dir.display()
    );
    if let Some(plotter) = plotter {
        // The earlier figures are gone by now (removed as outdated): say how to get them back.
        let shown = args.out_dir.display();
        let redo = format!(
            "the run histories in {shown} are complete: draw their figures with gradtrace plot \
             {shown}"
        );
        plotter
            .draw(&written, jobs, &[])
            .map_err(|e| drawing_failed(e, &redo))?;
        println!(
            "drew the figures beside the JSON in {}",
            args.out_dir.display()
        );
    }
    Ok(())
}

/// The run files of the tutorial already in `folder` (none for a new or empty one). Any other
/// folder is refused, and so is one where this tutorial would overwrite a file the earlier one
/// did not write: the tutorial replaces only its own results.
fn earlier_tutorial(folder: &Path, names: &[String]) -> Result<Vec<String>> {
    let shown = folder.display();
    if folder.exists() && !folder.is_dir() {
        bail!("--out-dir {shown}: is a file, not a folder; choose a folder");
    }
    remove_stale_temp_files(folder);
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(Vec::new());
    };
    let present: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| !is_temp_file(name))
        .collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let refuse = || {
        anyhow!(
            "--out-dir {shown} holds files that no earlier tutorial wrote; choose a new or \
             empty folder (the tutorial replaces only its own results)"
        )
    };
    let text = std::fs::read_to_string(folder.join("summary.json")).map_err(|_| refuse())?;
    let summary: serde_json::Value = serde_json::from_str(&text).map_err(|_| refuse())?;
    if summary["format"] != SUMMARY_FORMAT {
        return Err(refuse());
    }
    let runs = summary["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let earlier: Vec<String> = runs
        .iter()
        .filter_map(|r| r["file"].as_str())
        .filter(|f| is_run_file(f))
        .map(String::from)
        .collect();
    if let Some(clash) = names
        .iter()
        .find(|n| present.contains(n) && !earlier.contains(n))
    {
        bail!("--out-dir {shown}: {clash} was not written by the earlier tutorial; move it away");
    }
    Ok(earlier)
}

/// A tutorial run file name: `<experiment 1-5>-....json`, no path.
fn is_run_file(name: &str) -> bool {
    let experiment = name
        .chars()
        .next()
        .is_some_and(|c| ('1'..='5').contains(&c));
    experiment
        && name[1..].starts_with('-')
        && name.ends_with(".json")
        && !name.contains(['/', '\\'])
}

/// Removes what the earlier tutorial drew (figures are redrawn or, with `--no-plots`, would be
/// stale) and the histories of its runs that this one does not make (another `--init`, say), so
/// the folder holds one consistent tutorial.
fn remove_outdated(folder: &Path, earlier: &[String], written: &[PathBuf]) {
    for file in earlier {
        let stem = file.trim_end_matches(".json");
        for view in crate::figures::RUN_FIGURES {
            let _ = std::fs::remove_file(folder.join(format!("{stem}.{view}.png")));
        }
        let path = folder.join(file);
        if !written.contains(&path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The study's runs, in the order of the table.
fn experiments(args: &TutorialArgs) -> Result<Vec<Experiment>> {
    let base = |name: String, hidden, activation, init, optimizer| {
        let mut config = RunConfig::study(name, hidden, activation, init, optimizer);
        config.epochs = args.epochs;
        config.grad_every = GradEvery::Never;
        config
    };

    let mut runs = Vec::new();
    // 1: small networks, Keras's default Glorot-uniform kernels, Adam.
    for (hidden, activation, published) in [
        (vec![5], Activation::Relu, 0.973),
        (vec![5], Activation::Sigmoid, 0.654),
        (vec![5, 5, 5], Activation::Sigmoid, 0.533),
    ] {
        let widths: Vec<String> = hidden.iter().map(usize::to_string).collect();
        let name = format!("1-adam-2-{}-1-{}", widths.join("-"), kebab(activation));
        let config = base(
            name,
            hidden,
            activation,
            Init::GlorotUniform,
            OptimizerKind::Adam,
        );
        runs.push(Experiment {
            number: 1,
            config,
            published: Some(published),
        });
    }
    // 2 and 3 with normal(0, 1) kernels; 4 repeats both with the chosen initializer.
    let deep = [
        (Activation::Sigmoid, 0.588, 0.652),
        (Activation::Tanh, 0.993, 0.994),
        (Activation::Relu, 0.994, 0.995),
    ];
    for (number, init) in [(2u8, Init::Normal), (4, args.init)] {
        for (record_gradients, stage) in [(false, "weights"), (true, "gradients")] {
            // The study's experiment 3 is experiment 2 with gradients recorded.
            let number = if number == 2 && record_gradients {
                3
            } else {
                number
            };
            for (activation, published_fit, published_loop) in deep {
                let name = format!("{number}-{stage}-{}-{}", kebab(activation), kebab(init));
                let mut config = base(name, vec![5; 4], activation, init, OptimizerKind::Rmsprop);
                let published = match number {
                    2 => Some(published_fit),
                    3 => Some(published_loop),
                    _ => None,
                };
                if record_gradients {
                    config.grad_every = GradEvery::Epoch;
                }
                runs.push(Experiment {
                    number,
                    config,
                    published,
                });
            }
        }
    }
    // 5: wide layers, where saturation shows; the matrices would be 30,000 weights a record.
    for activation in [Activation::Sigmoid, Activation::Tanh] {
        let name = format!("5-saturation-{}-normal-100", kebab(activation));
        let hidden = vec![100; 4];
        let mut config = base(
            name,
            hidden,
            activation,
            Init::Normal,
            OptimizerKind::Rmsprop,
        );
        config.grad_every = GradEvery::Epoch;
        config.record = RecordLevel::Stats;
        runs.push(Experiment {
            number: 5,
            config,
            published: None,
        });
    }
    let last = runs.len() - 1;
    for (i, run) in runs.iter_mut().enumerate() {
        run.config.seed = args.seed.checked_add(i as u64).with_context(|| {
            format!(
                "--seed {}: too large; runs use seed + 0 to {last}",
                args.seed
            )
        })?;
    }
    Ok(runs)
}

fn summary_row(experiment: &Experiment, record: &RunRecord, path: &Path) -> SummaryRow {
    let layers = record.layers.len();
    let median_gradient_sd = if record.gradients.is_empty() {
        Vec::new()
    } else {
        (0..layers)
            .map(|l| median(record.gradients.iter().map(|g| g.layers[l].sd)))
            .collect()
    };
    SummaryRow {
        experiment: experiment.number,
        run: experiment.config.name.clone(),
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        status: record.status,
        accuracy_before: record.evaluation.before.accuracy,
        accuracy_after: record.evaluation.after.accuracy,
        published_accuracy: experiment.published,
        final_loss: record.evaluation.after.loss,
        median_gradient_sd,
        median_vanishing_index: record.median_vanishing_index,
        median_signal_index: median(record.gradients.iter().filter_map(|g| {
            let (first, last) = (g.layers.first()?, g.layers.last()?);
            Some(first.backprop?.sd / last.backprop?.sd)
        })),
        median_saturated_share: median_saturated_share(record),
        wall_time_s: record.wall_time_s,
    }
}

/// Per layer, the median saturated share over the records that carry activations.
fn median_saturated_share(record: &RunRecord) -> Vec<Option<f64>> {
    let with_activations: Vec<_> = record
        .gradients
        .iter()
        .filter(|g| g.layers.iter().all(|l| l.activations.is_some()))
        .collect();
    if with_activations.is_empty() {
        return Vec::new();
    }
    (0..record.layers.len())
        .map(|l| {
            let shares = with_activations.iter().filter_map(|g| {
                let activations = g.layers[l].activations.as_ref()?;
                activations.saturated
            });
            Some(median(shares)).filter(|m| m.is_finite())
        })
        .collect()
}

/// The most saturated hidden layer's median share (the output layer's confident
/// probabilities are left out); NaN without diagnostics or a rule.
fn most_saturated_hidden(row: &SummaryRow) -> f64 {
    let hidden = row.median_saturated_share.len().saturating_sub(1);
    let shares = row.median_saturated_share[..hidden].iter().flatten();
    shares.copied().fold(f64::NAN, f64::max)
}

fn print_table(rows: &[SummaryRow]) {
    let layers = rows
        .iter()
        .map(|r| r.median_gradient_sd.len())
        .max()
        .unwrap_or(0);
    let mut header = format!(
        "{:<3} {:<38} {:>7} {:>7} {:>9} {:>7}",
        "exp", "run", "acc0", "acc", "published", "loss"
    );
    for l in 1..=layers {
        header.push_str(&format!(" {:>9}", format!("gsd{l}")));
    }
    header.push_str(&format!(" {:>9} {:>9} {:>5}", "vanish", "signal", "sat"));
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for r in rows {
        let published = r
            .published_accuracy
            .map_or("-".to_string(), |p| format!("{p:.3}"));
        let diverged = if r.status == Status::Diverged {
            " (diverged)"
        } else {
            ""
        };
        let mut line = format!(
            "{:<3} {:<38} {:>7.3} {:>7.3} {:>9} {:>7.4}",
            r.experiment,
            format!("{}{diverged}", r.run),
            r.accuracy_before,
            r.accuracy_after,
            published,
            r.final_loss
        );
        for l in 0..layers {
            match r.median_gradient_sd.get(l) {
                Some(sd) => line.push_str(&format!(" {sd:>9.2e}")),
                None => line.push_str(&format!(" {:>9}", "-")),
            }
        }
        for index in [r.median_vanishing_index, r.median_signal_index] {
            match index {
                v if v.is_finite() => line.push_str(&format!(" {v:>9.2e}")),
                _ => line.push_str(&format!(" {:>9}", "-")),
            }
        }
        match most_saturated_hidden(r) {
            v if v.is_finite() => line.push_str(&format!(" {v:>5.2}")),
            _ => line.push_str(&format!(" {:>5}", "-")),
        }
        println!("{line}");
    }
    println!(
        "\nacc0/acc: training-set accuracy before/after training; published: the study's \
         accuracy;\ngsdN: median over the run's gradient records of layer N's kernel-gradient \
         S.D. (layer 1 next to the input); vanish: median over the records of layer 1's S.D. \
         over the output layer's;\nsignal: the same for the back-propagated signal dLoss/dz; \
         sat: the most saturated hidden layer's median share of saturated outputs (the rule is \
         in each run JSON's \"saturation\")."
    );
}
