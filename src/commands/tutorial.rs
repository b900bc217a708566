//! `gradtrace tutorial`: the vanishing-gradient study, every experiment, end to end.
//!
//! 1. Small networks with Adam: 2-5-1 ReLU, 2-5-1 sigmoid, 2-5-5-5-1 sigmoid.
//! 2. 2-5-5-5-5-1 with sigmoid, tanh and ReLU, kernels from normal(0, 1), RMSprop: weights
//!    captured at initialization and after every epoch.
//! 3. The same three networks with gradients recorded at the first step of every epoch.
//! 4. Experiments 2 and 3 again with the `--init` initializer (Glorot uniform by default).
//!
//! Every run gets its own seed (base + index), trains on the same data, and writes its JSON;
//! then one table, a summary JSON, and the figures (drawn by `scripts/plot.py` from the JSON).

use crate::cli::{kebab, TutorialArgs};
use crate::config::{Activation, GradEvery, Init, OptimizerKind, RunConfig};
use crate::data::Dataset;
use crate::output::{progress_bar, PendingFile};
use crate::pool::{default_jobs, map_parallel};
use crate::record::{median, RunRecord, Status};
use crate::train::train;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The plotting script, carried inside the binary so the figures work from any folder.
const PLOT_SCRIPT: &str = include_str!("../../scripts/plot.py");

/// One run of the study and the accuracy the study published for it.
struct Experiment {
    /// 1 to 4, as in the module doc.
    number: u8,
    config: RunConfig,
    published: Option<f64>,
}

/// One row of the summary table and `summary.json`.
#[derive(Debug, Serialize)]
pub struct SummaryRow {
    /// Experiment number, 1 to 4.
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
    /// Training seconds.
    pub wall_time_s: f64,
}

/// Runs the study and reports it.
pub fn run(args: &TutorialArgs) -> Result<()> {
    let device = args.device.resolve("--device")?;
    let experiments = experiments(args);
    for e in &experiments {
        e.config.validate()?;
    }
    let data_config = &experiments[0].config.data;
    let data = Dataset::load(data_config)?;

    // Reserve every output before training, so a bad folder fails at once.
    let files: Vec<PendingFile> = experiments
        .iter()
        .map(|e| {
            let path = args.out_dir.join(format!("{}.json", e.config.name));
            PendingFile::reserve(&path, true, "--out-dir")
        })
        .collect::<Result<_>>()?;
    let summary_file = PendingFile::reserve(&args.out_dir.join("summary.json"), true, "--out-dir")?;

    // Train in parallel; each worker owns its models.
    let bar = progress_bar(experiments.len() as u64, "runs", args.quiet);
    bar.set_message("tutorial");
    let jobs = args.jobs.unwrap_or_else(default_jobs).max(1);
    if !args.quiet {
        eprintln!(
            "tutorial: training {} runs on {} with {jobs} worker(s) into {}",
            experiments.len(),
            crate::train::device_name(device),
            args.out_dir.display()
        );
    }
    let records = map_parallel(
        &experiments,
        jobs,
        |e| train(&e.config, &data, device, |_| ()),
        |_| bar.inc(1),
    );
    bar.finish_and_clear();

    // Write nothing unless every run trained; then every history, then the summary.
    let records: Vec<RunRecord> = experiments
        .iter()
        .zip(records)
        .map(|(e, r)| r.with_context(|| format!("run {}", e.config.name)))
        .collect::<Result<_>>()?;
    let mut rows = Vec::with_capacity(experiments.len());
    for ((experiment, record), file) in experiments.iter().zip(&records).zip(files) {
        let path = file.commit_json(record)?;
        rows.push(summary_row(experiment, record, &path));
    }
    summary_file.commit_json(&rows)?;

    print_table(&rows);
    println!(
        "\nwrote {} run histories and summary.json to {}",
        rows.len(),
        args.out_dir.display()
    );
    if !args.no_plots {
        render_figures(args.python.as_deref(), &args.out_dir)?;
    }
    Ok(())
}

/// The study's runs, in the order of the table.
fn experiments(args: &TutorialArgs) -> Vec<Experiment> {
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
    for (i, run) in runs.iter_mut().enumerate() {
        run.config.seed = args.seed + i as u64;
    }
    runs
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
        wall_time_s: record.wall_time_s,
    }
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
        println!("{line}");
    }
    println!(
        "\nacc0/acc: training-set accuracy before/after training; published: the study's \
         accuracy;\ngsdN: median over the run's gradient records of layer N's kernel-gradient \
         S.D. (layer 1 next to the input)."
    );
}

/// Draws every run's figures with `scripts/plot.py` (carried in the binary), fed on stdin.
fn render_figures(python: Option<&Path>, folder: &Path) -> Result<()> {
    let python = python.map(Path::to_path_buf).unwrap_or_else(default_python);
    let mut child = Command::new(&python)
        .arg("-")
        .arg(folder)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "--python {}: cannot start it; run scripts/setup.sh, pass --python, or --no-plots",
                python.display()
            )
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(PLOT_SCRIPT.as_bytes())
        .context("sending the plotting script to Python")?;
    let status = child.wait().context("waiting for the plotting script")?;
    if !status.success() {
        bail!(
            "the figures failed ({status}) with --python {}; the JSON is written; it needs \
             matplotlib (scripts/setup.sh installs it) or pass --no-plots",
            python.display()
        );
    }
    println!("drew the figures beside the JSON in {}", folder.display());
    Ok(())
}

fn default_python() -> PathBuf {
    if let Some(python) = std::env::var_os("GRADTRACE_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = PathBuf::from(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}
