//! The command line: clap's argument structs and their conversion into a validated `RunConfig`.
//! The sweep's and the summary's flags live in `sweep.rs`.

use crate::config::{
    Activation, DataConfig, GradEvery, Init, OptimizerConfig, OptimizerKind, RecordLevel, RunConfig,
};
use crate::schedule::{default_max_ensemble, Engine};
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tch::Device;

mod sweep;
pub use sweep::{SummaryArgs, SweepArgs};

/// Watch gradients flow (or vanish) through deep networks while they train.
#[derive(Debug, Parser)]
#[command(name = "gradtrace", version, about, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one network and write its history as JSON.
    Run(Box<RunArgs>),
    /// Reproduce the vanishing-gradient study: every experiment, a table and the figures.
    Tutorial(TutorialArgs),
    /// Train a grid of runs in parallel: resumable, interruptible, shardable across a cluster.
    Sweep(Box<SweepArgs>),
    /// Merge the indexes of sweep folders (all shards) into one table, CSV or JSON.
    Summary(SummaryArgs),
    /// Measure the variance predictions of Glorot and Bengio (2010) and He et al. (2015) at
    /// initialization: a table, JSON and a figure.
    Paper(PaperArgs),
    /// Draw the figures of runs and sweeps already written: run JSON files, folders of them, or
    /// sweep folders.
    Plot(PlotArgs),
    /// Write runs and sweeps already on disk as TensorBoard event files (scalars and
    /// histograms), one TensorBoard run per gradtrace run.
    Tensorboard(TensorboardArgs),
}

/// Network, initializer, optimizer and training flags shared by every command that trains.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Hidden-layer activation.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    pub activation: Activation,

    /// Kernel initializer for every layer (biases start at zero).
    #[arg(long, value_enum, default_value_t = Init::GlorotUniform)]
    pub init: Init,

    /// Mean of the kernel entries for `--init normal`.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub init_mean: f64,

    /// S.D. of the kernel entries for `--init normal`.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub init_sd: f64,

    /// Lower bound for `--init uniform`.
    #[arg(long, default_value_t = -0.05, allow_hyphen_values = true)]
    pub init_low: f64,

    /// Upper bound for `--init uniform`.
    #[arg(long, default_value_t = 0.05, allow_hyphen_values = true)]
    pub init_high: f64,

    /// Hidden-layer widths, input side first; the depth follows from the list.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5,5,5,5",
        action = clap::ArgAction::Set,
        allow_negative_numbers = true
    )]
    pub hidden: Vec<usize>,

    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Rmsprop)]
    pub optimizer: OptimizerKind,

    /// Learning rate [default: 0.001 for rmsprop and adam, 0.01 for sgd].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,

    /// RMSprop's decay of the squared-gradient average.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    pub rho: f64,

    /// Adam's first-moment decay.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    pub beta1: f64,

    /// Adam's second-moment decay.
    #[arg(long, default_value_t = 0.999, allow_hyphen_values = true)]
    pub beta2: f64,

    /// RMSprop's and Adam's epsilon (Keras placement; see the README).
    #[arg(long, default_value_t = 1e-7, allow_hyphen_values = true)]
    pub epsilon: f64,

    /// SGD momentum (0 for plain SGD).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub momentum: f64,

    /// Passes over the training data.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub epochs: usize,

    /// Samples per step; the last partial batch of an epoch is used.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    pub batch_size: usize,
}

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Two circles: number of points.
    #[arg(
        long,
        default_value_t = 1000,
        conflicts_with = "csv",
        allow_negative_numbers = true
    )]
    pub samples: usize,

    /// Two circles: inner radius over outer radius, in (0, 1).
    #[arg(
        long,
        default_value_t = 0.5,
        conflicts_with = "csv",
        allow_negative_numbers = true
    )]
    pub factor: f64,

    /// Two circles: S.D. of the Gaussian noise on each coordinate.
    #[arg(
        long,
        default_value_t = 0.1,
        conflicts_with = "csv",
        allow_negative_numbers = true
    )]
    pub noise: f64,

    /// Two circles: seed of the data generator (independent of --seed).
    #[arg(
        long,
        default_value_t = 0,
        conflicts_with = "csv",
        allow_negative_numbers = true
    )]
    pub data_seed: u64,

    /// Train on a CSV file of x0,x1,label rows instead of two circles.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

impl DataArgs {
    /// The data part of a run config.
    pub fn config(&self) -> DataConfig {
        match &self.csv {
            Some(path) => DataConfig::Csv { path: path.clone() },
            None => DataConfig::TwoCircles {
                samples: self.samples,
                factor: self.factor,
                noise: self.noise,
                seed: self.data_seed,
            },
        }
    }
}

/// Which engine trains the runs, shared by `run` and `sweep`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Engine")]
pub struct EngineArgs {
    /// `single` trains one network at a time (the reference); `ensemble` trains runs that share
    /// a shape together, one pass of arithmetic for all (they may differ in seed, initializer,
    /// learning rate and activation); `auto` uses the ensemble wherever two runs can share one.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    pub engine: Engine,

    /// Most runs in one ensemble; larger groups are split (the histories of an ensemble are held
    /// in memory until it finishes) [default: 512 on cpu, where larger ensembles outgrow the
    /// cache; 16384 on cuda].
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        allow_negative_numbers = true
    )]
    pub max_ensemble: Option<u64>,
}

impl EngineArgs {
    /// `--max-ensemble`, or its default on `device`.
    pub fn max_ensemble(&self, device: Device) -> usize {
        self.max_ensemble
            .map_or(default_max_ensemble(device), |n| n as usize)
    }
}

/// Flags of `gradtrace run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Network, initializer, optimizer and training flags.
    #[command(flatten)]
    pub model: ModelArgs,

    /// Data flags.
    #[command(flatten)]
    pub data: DataArgs,

    /// Seed of the initial weights and of the batch order (the first seed with --seeds).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,

    /// Train K runs (at most 1000000), seeds --seed to --seed + K - 1, each written to
    /// <out-dir>/<name>.json.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=crate::config::MAX_RUNS),
        allow_negative_numbers = true
    )]
    pub seeds: u64,

    /// Keep the data in its original order instead of reshuffling every epoch.
    #[arg(long)]
    pub no_shuffle: bool,

    /// When to record kernel gradients: `epoch` (first step of each epoch), a step count N
    /// (every N steps), or `never`. A last record after training is added unless `never`.
    #[arg(
        long,
        default_value = "epoch",
        value_parser = parse_grad_every,
        allow_negative_numbers = true,
    )]
    pub grad_every: GradEvery,

    /// `full`: every matrix and every diagnostic (activations and their saturation, the
    /// back-propagated signal, histograms); `stats`: the same without matrices (for large
    /// networks); `kernels`: matrices and kernel-gradient statistics only, no diagnostics.
    #[arg(long, value_enum, default_value_t = RecordLevel::Full)]
    pub record: RecordLevel,

    /// Device: cpu, cuda, cuda:N, or auto (CUDA when libtorch sees it).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,

    /// Name of the run [default: built from activation, init, optimizer, widths and seed].
    #[arg(long)]
    pub name: Option<String>,

    /// Output JSON file of a single run [default: <out-dir>/<name>.json].
    #[arg(long, value_name = "FILE", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,

    /// Folder for the run JSON files, one per seed, each named after its run.
    #[arg(long, value_name = "DIR", default_value = "outputs/runs")]
    pub out_dir: PathBuf,

    /// Runs trained at once with --seeds [default: the number of cores on cpu, 1 on cuda].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub jobs: Option<u64>,

    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineArgs,

    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// No progress bar and no summary line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of `gradtrace tutorial`.
#[derive(Debug, Args)]
pub struct TutorialArgs {
    /// Folder for the JSON histories, the summary and the figures (replaced files are its own).
    #[arg(long, default_value = "outputs/tutorial", value_name = "DIR")]
    pub out_dir: PathBuf,

    /// Epochs of every run (the study trains for 100).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub epochs: usize,

    /// Base seed; run i uses seed + i.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,

    /// Initializer of experiment 4, the one that replaces normal(0, 1): the values `gradtrace run
    /// --init` takes, each with its default parameters (the tutorial has no --init-mean and the
    /// like).
    #[arg(long, value_enum, default_value_t = Init::GlorotUniform)]
    pub init: Init,

    /// Device for every run.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,

    /// Runs trained at once [default: the number of cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub jobs: Option<u64>,

    /// Python with matplotlib for the figures [default: $GRADTRACE_PYTHON, else .venv/bin/python
    /// when present, else python3].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Skip the figures.
    #[arg(long)]
    pub no_plots: bool,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of `gradtrace paper`.
#[derive(Debug, Args)]
pub struct PaperArgs {
    /// Folder for paper.json and paper.png (an earlier paper's files there are replaced).
    #[arg(long, default_value = "outputs/paper", value_name = "DIR")]
    pub out_dir: PathBuf,

    /// Seed of the kernels, the input points and the readout.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,

    /// Points fed through each network.
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(2..=100_000),
        allow_negative_numbers = true
    )]
    pub batch: u64,

    /// Python with matplotlib for the figure [default: as for the tutorial].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Skip the figure.
    #[arg(long)]
    pub no_plots: bool,
}

/// Flags of `gradtrace plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A run JSON (figures beside it), a folder of run JSON files (each run's figures beside its
    /// JSON), or a sweep folder (the sweep's figures into it; give its runs/ folder for each
    /// run's own figures).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Python with matplotlib [default: as for the tutorial].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Python processes drawing at once [default: the number of cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub jobs: Option<u64>,

    /// Epochs (from 1) whose first record the histograms and the per-layer signal profile show,
    /// e.g. 1,50,100 [default: the first, middle and last record].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "E,...",
        value_parser = clap::value_parser!(u64).range(1..),
        allow_negative_numbers = true
    )]
    pub epochs: Vec<u64>,
}

/// Flags of `gradtrace tensorboard`.
#[derive(Debug, Args)]
pub struct TensorboardArgs {
    /// A run JSON, a folder of run JSON files, or a sweep folder (each of its finished runs).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The TensorBoard log folder: each run goes to a folder of its own under it.
    #[arg(long, default_value = "outputs/tensorboard", value_name = "DIR")]
    pub out_dir: PathBuf,

    /// Replace gradtrace's own earlier export of the same runs.
    #[arg(long)]
    pub force: bool,

    /// Runs converted at once [default: the number of cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub jobs: Option<u64>,
}

/// A device as asked for on the command line, before checking it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// CUDA device 0 when available, else the CPU.
    Auto,
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    match text {
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        "auto" => Ok(DeviceChoice::Auto),
        _ => text
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceChoice::Cuda)
            .ok_or_else(|| "expected cpu, cuda, cuda:N or auto".to_string()),
    }
}

fn parse_grad_every(text: &str) -> Result<GradEvery, String> {
    match text {
        "epoch" => Ok(GradEvery::Epoch),
        "never" => Ok(GradEvery::Never),
        _ => match text.parse::<usize>() {
            Ok(0) | Err(_) => Err("expected epoch, never, or a step count of at least 1".into()),
            Ok(n) => Ok(GradEvery::Steps(n)),
        },
    }
}

impl DeviceChoice {
    /// The libtorch device, or an error saying why it cannot be used here.
    pub fn resolve(self, flag: &str) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda(i) => {
                if !tch::Cuda::is_available() {
                    bail!(
                        "{flag} cuda:{i}: libtorch sees no CUDA device here; use {flag} cpu \
                         or auto"
                    );
                }
                let count = tch::Cuda::device_count() as usize;
                if i >= count {
                    bail!(
                        "{flag} cuda:{i}: only {count} CUDA device(s) (cuda:0..); pick one of them"
                    );
                }
                Ok(Device::Cuda(i))
            }
        }
    }
}

impl ModelArgs {
    /// The run config these flags describe, with the given name, seed and recording.
    pub fn config(
        &self,
        name: String,
        seed: u64,
        shuffle: bool,
        grad_every: GradEvery,
        record: RecordLevel,
        data: DataConfig,
    ) -> RunConfig {
        RunConfig {
            name,
            hidden: self.hidden.clone(),
            activation: self.activation,
            init: self.init,
            init_mean: self.init_mean,
            init_sd: self.init_sd,
            init_low: self.init_low,
            init_high: self.init_high,
            optimizer: OptimizerConfig {
                kind: self.optimizer,
                learning_rate: self.lr.unwrap_or(self.optimizer.default_learning_rate()),
                rho: self.rho,
                beta1: self.beta1,
                beta2: self.beta2,
                epsilon: self.epsilon,
                momentum: self.momentum,
            },
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed,
            shuffle,
            grad_every,
            record,
            data,
        }
    }
}

impl RunArgs {
    /// The validated run config of each seed, in seed order.
    pub fn configs(&self) -> Result<Vec<RunConfig>> {
        let m = &self.model;
        let Some(last) = self.seed.checked_add(self.seeds - 1) else {
            bail!(
                "--seed {} with --seeds {}: the seeds run past 2^64",
                self.seed,
                self.seeds
            );
        };
        if self.out.is_some() && self.seeds > 1 {
            bail!(
                "--out names one file but --seeds {} makes {0} runs; use --out-dir DIR instead",
                self.seeds
            );
        }
        if self.name.as_deref() == Some("") {
            bail!("--name must not be empty (it names the output files)");
        }
        let mut configs = Vec::with_capacity(self.seeds as usize);
        for seed in self.seed..=last {
            let name = match &self.name {
                Some(name) if self.seeds == 1 => name.clone(),
                Some(name) => format!("{name}-s{seed}"),
                None => {
                    let widths: Vec<String> = m.hidden.iter().map(usize::to_string).collect();
                    format!(
                        "{}-{}-{}-{}-s{seed}",
                        kebab(m.activation),
                        kebab(m.init),
                        kebab(m.optimizer),
                        widths.join("x"),
                    )
                }
            };
            let config = m.config(
                name,
                seed,
                !self.no_shuffle,
                self.grad_every,
                self.record,
                self.data.config(),
            );
            config.validate()?;
            configs.push(config);
        }
        Ok(configs)
    }

    /// Where a run's JSON goes.
    pub fn path_of(&self, config: &RunConfig) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| self.out_dir.join(format!("{}.json", config.name)))
    }
}

/// A closed choice as it is spelled on the command line.
pub fn kebab(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Folds clap's several-line usage error into one line (the error, the accepted values, a hint).
pub fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect();
    format!("{}; see --help", parts.join(" "))
}
