//! Flags of `gradtrace sweep` (one comma-separated list per `gradtrace run` knob) and of
//! `gradtrace summary`.

use super::{parse_device, DeviceChoice};
use clap::Args;
use std::path::PathBuf;

/// Flags of `gradtrace sweep`. Each knob takes a comma-separated list of the values
/// `gradtrace run` accepts for the flag of the same name; knobs not given keep run's defaults.
#[derive(Debug, Args)]
#[command(next_help_heading = "Grid knobs (comma-separated lists of `gradtrace run` values)")]
pub struct SweepArgs {
    /// A sweep file (.toml or .json) of knob = list; flags given here replace its knobs.
    #[arg(long, value_name = "FILE", help_heading = "Sweep")]
    pub file: Option<PathBuf>,

    /// Name of the sweep; its folder is outputs/<name> unless --out-dir says otherwise.
    #[arg(long, default_value = "sweep", help_heading = "Sweep")]
    pub name: String,

    /// The sweep's folder [default: outputs/<name>].
    #[arg(long, value_name = "DIR", help_heading = "Sweep")]
    pub out_dir: Option<PathBuf>,

    /// Add this grid to a folder that holds a different sweep instead of refusing.
    #[arg(long, help_heading = "Sweep")]
    pub extend: bool,

    /// Run only slice I of N of the grid (I from 0) [default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shards].
    #[arg(long, value_name = "I/N", help_heading = "Sweep")]
    pub shard: Option<String>,

    /// Number of shards of a Kubernetes Indexed Job (its completions); the index comes from
    /// JOB_COMPLETION_INDEX.
    #[arg(
        long,
        value_name = "N",
        help_heading = "Sweep",
        conflicts_with = "shard"
    )]
    pub shards: Option<usize>,

    /// Runs trained at once [default: the number of cores on cpu, 1 on cuda].
    #[arg(long, help_heading = "Sweep", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,

    /// Device for every run.
    #[arg(long, default_value = "cpu", value_parser = parse_device, help_heading = "Sweep")]
    pub device: DeviceChoice,

    /// No progress bar.
    #[arg(long, short, help_heading = "Sweep")]
    pub quiet: bool,

    /// Engine flags.
    #[command(flatten)]
    pub engine: super::EngineArgs,

    /// Seeds: a list, with ranges allowed (0..8 is 0 to 7).
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub seeds: Vec<String>,

    /// Seeds 0 to N - 1 (instead of --seeds), at most 1000000.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "seeds",
        value_parser = clap::value_parser!(u64).range(1..=crate::config::MAX_RUNS)
    )]
    pub seed_count: Option<u64>,

    /// Activations.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub activation: Vec<String>,

    /// Initializers.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub init: Vec<String>,

    /// Means for `normal`.
    #[arg(
        long,
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        allow_negative_numbers = true,
    )]
    pub init_mean: Vec<String>,

    /// S.D.s for `normal`.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub init_sd: Vec<String>,

    /// Lower bounds for `uniform`.
    #[arg(
        long,
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        allow_negative_numbers = true,
    )]
    pub init_low: Vec<String>,

    /// Upper bounds for `uniform`.
    #[arg(
        long,
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        allow_negative_numbers = true,
    )]
    pub init_high: Vec<String>,

    /// One hidden layout per use, as `gradtrace run` takes it: --hidden 5,5,5,5 --hidden 10,10.
    #[arg(long, value_name = "WIDTHS")]
    pub hidden: Vec<String>,

    /// Optimizers.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub optimizer: Vec<String>,

    /// Learning rates.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub lr: Vec<String>,

    /// RMSprop rho values.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub rho: Vec<String>,

    /// Adam beta1 values.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub beta1: Vec<String>,

    /// Adam beta2 values.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub beta2: Vec<String>,

    /// Epsilons.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub epsilon: Vec<String>,

    /// SGD momentums.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub momentum: Vec<String>,

    /// Epoch counts.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub epochs: Vec<String>,

    /// Batch sizes.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub batch_size: Vec<String>,

    /// Two-circles sizes.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub samples: Vec<String>,

    /// Two-circles factors.
    #[arg(
        long,
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        allow_negative_numbers = true,
    )]
    pub factor: Vec<String>,

    /// Two-circles noise levels.
    #[arg(
        long,
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        allow_negative_numbers = true,
    )]
    pub noise: Vec<String>,

    /// Two-circles data seeds.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub data_seed: Vec<String>,

    /// CSV files, one per use.
    #[arg(long, value_name = "FILE")]
    pub csv: Vec<String>,

    /// Shuffling each epoch: true, false, or `true,false` for both.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub shuffle: Vec<String>,

    /// Gradient recording schedules (epoch, N steps, never).
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub grad_every: Vec<String>,

    /// Record levels (full, stats, kernels).
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub record: Vec<String>,
}

impl SweepArgs {
    /// The knobs given as flags, by knob name, in the order `KNOBS` lists them.
    pub fn knobs(&self) -> Vec<(&'static str, Vec<String>)> {
        let seeds = match self.seed_count {
            Some(n) => (0..n).map(|s| s.to_string()).collect(),
            None => self.seeds.clone(),
        };
        let given = [
            ("activation", &self.activation),
            ("init", &self.init),
            ("init-mean", &self.init_mean),
            ("init-sd", &self.init_sd),
            ("init-low", &self.init_low),
            ("init-high", &self.init_high),
            ("hidden", &self.hidden),
            ("optimizer", &self.optimizer),
            ("lr", &self.lr),
            ("rho", &self.rho),
            ("beta1", &self.beta1),
            ("beta2", &self.beta2),
            ("epsilon", &self.epsilon),
            ("momentum", &self.momentum),
            ("epochs", &self.epochs),
            ("batch-size", &self.batch_size),
            ("samples", &self.samples),
            ("factor", &self.factor),
            ("noise", &self.noise),
            ("data-seed", &self.data_seed),
            ("csv", &self.csv),
            ("shuffle", &self.shuffle),
            ("grad-every", &self.grad_every),
            ("record", &self.record),
            ("seed", &seeds),
        ];
        given
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, v.clone()))
            .collect()
    }
}

/// Flags of `gradtrace summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Sweep folders (each shard's, or one shared folder); their indexes are merged.
    #[arg(required = true, value_name = "DIR")]
    pub folders: Vec<PathBuf>,

    /// Also write the table as CSV to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Also write the table as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Replace existing --csv or --json files.
    #[arg(long)]
    pub force: bool,
}
