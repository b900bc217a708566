//! The validated, serializable description of one run.
//!
//! The command line (`cli.rs`) is parsed into these types and checked here, once; everything
//! downstream (training, recording, the JSON) reads only a `RunConfig`. Every field is saved in
//! the run's JSON, so a plot or a notebook never has to guess how a history was made.

use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Hidden-layer nonlinearity. The output layer is always one logit (sigmoid applied in the loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// Logistic sigmoid, 1 / (1 + e^-x): saturates at both ends, the study's failing case.
    Sigmoid,
    /// Hyperbolic tangent: zero-centred, saturates at ±1.
    Tanh,
    /// max(0, x).
    Relu,
    /// max(x, 0.2 x): Keras's default negative slope for `leaky_relu`.
    LeakyRelu,
    /// x for x > 0, e^x - 1 otherwise (alpha 1).
    Elu,
    /// Scaled ELU with the self-normalising constants of Klambauer et al. (2017).
    Selu,
    /// Gaussian error linear unit, exact (erf) form, as Keras's default.
    Gelu,
    /// ln(1 + e^x).
    Softplus,
    /// x / (1 + |x|).
    Softsign,
    /// Identity: no nonlinearity.
    Linear,
}

/// How every kernel (the output layer's too) is drawn. Biases always start at zero, as in Keras.
///
/// `fan_in` and `fan_out` are a layer's input and output widths. The truncated-normal variants
/// follow Keras: draws beyond two S.D. are redrawn and the S.D. is divided by 0.8796256610342398
/// so that the truncated distribution keeps the intended variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Normal with `--init-mean` and `--init-sd` (the study uses mean 0, S.D. 1).
    Normal,
    /// Uniform on [`--init-low`, `--init-high`].
    Uniform,
    /// Uniform on ±sqrt(6 / (fan_in + fan_out)): Keras's Dense default.
    GlorotUniform,
    /// Truncated normal, S.D. sqrt(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// Uniform on ±sqrt(6 / fan_in).
    HeUniform,
    /// Truncated normal, S.D. sqrt(2 / fan_in).
    HeNormal,
    /// Truncated normal, S.D. sqrt(1 / fan_in).
    LecunNormal,
}

/// The update rule. All three are written out in `optim.rs` with Keras's constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Keras RMSprop: epsilon inside the square root.
    Rmsprop,
    /// Keras Adam: epsilon added to sqrt(v) after the bias correction is folded into the rate.
    Adam,
    /// Plain or momentum SGD, Keras form.
    Sgd,
}

impl OptimizerKind {
    /// Keras's default learning rate for this optimizer.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Rmsprop | OptimizerKind::Adam => 1e-3,
            OptimizerKind::Sgd => 1e-2,
        }
    }
}

/// Optimizer and all of its constants, resolved (no "default" left to guess).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// Step size.
    pub learning_rate: f64,
    /// RMSprop: decay of the running mean of squared gradients.
    pub rho: f64,
    /// Adam: decay of the first-moment estimate.
    pub beta1: f64,
    /// Adam: decay of the second-moment estimate.
    pub beta2: f64,
    /// RMSprop and Adam: the small constant that keeps the division finite.
    pub epsilon: f64,
    /// SGD: momentum (0 for plain SGD).
    pub momentum: f64,
}

impl OptimizerConfig {
    /// The optimizer with Keras's default constants and learning rate.
    pub fn keras(kind: OptimizerKind) -> OptimizerConfig {
        OptimizerConfig {
            kind,
            learning_rate: kind.default_learning_rate(),
            rho: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            momentum: 0.0,
        }
    }
}

/// Where the training points come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum DataConfig {
    /// scikit-learn's `make_circles`: an outer circle (label 0) and an inner one (label 1).
    TwoCircles {
        /// Number of points; the outer circle gets the smaller half.
        samples: usize,
        /// Inner radius over outer radius, in (0, 1).
        factor: f64,
        /// S.D. of the Gaussian noise added to each coordinate (0 for exact circles).
        noise: f64,
        /// Seed of the data generator (independent of the run seed).
        seed: u64,
    },
    /// A CSV file of `x0,x1,label` rows, labels 0 or 1, an optional `x0,x1,label` header.
    Csv {
        /// The file, as given on the command line.
        path: PathBuf,
    },
}

/// When kernel gradients are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradEvery {
    /// At the first step of every epoch, and once more after the last step.
    Epoch,
    /// Every this many steps (counting from step 0), and once more after the last step.
    Steps(usize),
    /// Not at all (weights are still captured every epoch).
    Never,
}

/// How much of each record goes into the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RecordLevel {
    /// Summary statistics and the full kernel, bias and gradient matrices.
    Full,
    /// Summary statistics only: for networks too large to store whole every epoch.
    Stats,
    /// Weights and kernel gradients with their matrices, but no activations, back-propagated
    /// signal or histograms: what a hand-written loop records.
    Kernels,
}

impl RecordLevel {
    /// True when matrices are written.
    pub fn matrices(self) -> bool {
        self != RecordLevel::Stats
    }

    /// True when activations, back-propagated signals and histograms are recorded.
    pub fn diagnostics(self) -> bool {
        self != RecordLevel::Kernels
    }
}

/// Most runs one command trains or one grid holds: their configs are held in memory together;
/// larger work is split into several sweeps or shards.
pub const MAX_RUNS: u64 = 1_000_000;
/// Most points a two-circles dataset may have.
pub const MAX_SAMPLES: usize = 100_000_000;
/// Most parameters a network may have (weights, gradients and optimizer state: 1.6 GB).
pub const MAX_PARAMETERS: u64 = 100_000_000;
/// Most activations (samples x widest layer x layers) one forward pass over the data may hold.
pub const MAX_ACTIVATIONS: u64 = 2_000_000_000;
/// Largest history gradtrace will build (it is held in memory, then written as JSON).
pub const MAX_HISTORY_BYTES: u64 = 8_000_000_000;
/// History size above which a run warns that `--record stats` exists.
pub const WARN_HISTORY_BYTES: u64 = 500_000_000;

/// Everything that decides a run's history. Same config, same device: same history, bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Free-form label, used for the output file name and in tables.
    pub name: String,
    /// Hidden-layer widths from input to output; the network is 2 -> hidden... -> 1.
    pub hidden: Vec<usize>,
    /// Nonlinearity of every hidden layer.
    pub activation: Activation,
    /// Kernel initializer for every layer.
    pub init: Init,
    /// `normal`: mean of the kernel entries.
    pub init_mean: f64,
    /// `normal`: S.D. of the kernel entries.
    pub init_sd: f64,
    /// `uniform`: lower bound of the kernel entries.
    pub init_low: f64,
    /// `uniform`: upper bound of the kernel entries.
    pub init_high: f64,
    /// The optimizer and its constants.
    pub optimizer: OptimizerConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step; the last, partial batch of an epoch is used too.
    pub batch_size: usize,
    /// Seed of the run: initial kernels and the batch order of every epoch.
    pub seed: u64,
    /// Reshuffle the training set before every epoch.
    pub shuffle: bool,
    /// When gradients are recorded.
    pub grad_every: GradEvery,
    /// Full matrices or statistics only.
    pub record: RecordLevel,
    /// The training data.
    pub data: DataConfig,
}

impl RunConfig {
    /// A run on the study's terms: two circles (1000 points, factor 0.5, noise 0.1, data seed 0),
    /// 100 epochs of batch 32 with reshuffling, Keras's optimizer constants, `normal` meaning
    /// normal(0, 1), gradients recorded at the first step of every epoch, full records, seed 0.
    pub fn study(
        name: impl Into<String>,
        hidden: Vec<usize>,
        activation: Activation,
        init: Init,
        optimizer: OptimizerKind,
    ) -> RunConfig {
        RunConfig {
            name: name.into(),
            hidden,
            activation,
            init,
            init_mean: 0.0,
            init_sd: 1.0,
            init_low: -0.05,
            init_high: 0.05,
            optimizer: OptimizerConfig::keras(optimizer),
            epochs: 100,
            batch_size: 32,
            seed: 0,
            shuffle: true,
            grad_every: GradEvery::Epoch,
            record: RecordLevel::Full,
            data: DataConfig::TwoCircles {
                samples: 1000,
                factor: 0.5,
                noise: 0.1,
                seed: 0,
            },
        }
    }

    /// Rejects values that would make a run meaningless, naming the flag to change.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("--epochs must be at least 1 (got 0)");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1 (got 0)");
        }
        if self.hidden.is_empty() {
            bail!("--hidden needs at least one width, e.g. --hidden 5,5,5,5");
        }
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            bail!(
                "--hidden: hidden layer {} has width 0; every width must be at least 1",
                i + 1
            );
        }
        if let GradEvery::Steps(0) = self.grad_every {
            bail!("--grad-every must be `epoch`, `never` or a step count of at least 1 (got 0)");
        }
        check_plain_name(&self.name)?;

        // Weights are float32: every initializer parameter must be finite there.
        for (flag, value) in [
            ("--init-mean", self.init_mean),
            ("--init-sd", self.init_sd),
            ("--init-low", self.init_low),
            ("--init-high", self.init_high),
        ] {
            if !(value as f32).is_finite() {
                bail!("{flag} must be a finite float32 number (got {value:?})");
            }
        }
        if self.init_sd < 0.0 {
            bail!("--init-sd must be at least 0 (got {:?})", self.init_sd);
        }
        if self.init == Init::Uniform
            && !(self.init_low < self.init_high && (self.init_high - self.init_low).is_finite())
        {
            bail!(
                "--init-low ({:?}) must be below --init-high ({:?}), with a finite distance",
                self.init_low,
                self.init_high
            );
        }

        let opt = &self.optimizer;
        if !(opt.learning_rate > 0.0 && (opt.learning_rate as f32).is_finite()) {
            bail!(
                "--lr must be a positive, finite float32 number (got {:?})",
                opt.learning_rate
            );
        }
        for (flag, value) in [
            ("--rho", opt.rho),
            ("--beta1", opt.beta1),
            ("--beta2", opt.beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                bail!("{flag} must be in [0, 1) (got {value:?})");
            }
        }
        if !(0.0..1.0).contains(&opt.momentum) {
            bail!("--momentum must be in [0, 1) (got {:?})", opt.momentum);
        }
        if !(opt.epsilon > 0.0 && (opt.epsilon as f32).is_finite()) {
            bail!(
                "--epsilon must be a positive, finite float32 number (got {:?})",
                opt.epsilon
            );
        }

        if let DataConfig::TwoCircles {
            samples,
            factor,
            noise,
            ..
        } = self.data
        {
            if samples < 2 {
                bail!(
                    "--samples must be at least 2 so that both circles get a point (got {samples})"
                );
            }
            if samples > MAX_SAMPLES {
                bail!("--samples {samples} is more than gradtrace holds ({MAX_SAMPLES} at most)");
            }
            if !(factor > 0.0 && factor < 1.0) {
                bail!("--factor must be strictly between 0 and 1 (got {factor:?})");
            }
            if !(noise >= 0.0 && (noise as f32).is_finite()) {
                bail!("--noise must be 0 or a positive, finite float32 number (got {noise:?})");
            }
        }
        let declared = match self.data {
            DataConfig::TwoCircles { samples, .. } => Some(samples),
            DataConfig::Csv { .. } => None,
        };
        self.check_size(declared)
    }

    /// Refuses networks, data and histories too large to hold, before anything is allocated.
    /// `samples` is the data's size where known (a CSV file's only once it is read).
    pub fn check_size(&self, samples: Option<usize>) -> Result<()> {
        let widths = self.widths();
        if self.parameter_count().is_none_or(|p| p > MAX_PARAMETERS) {
            bail!(
                "--hidden: the network would have more than {MAX_PARAMETERS} parameters; use \
                 narrower layers"
            );
        }
        let Some(samples) = samples else {
            return Ok(());
        };
        if samples > MAX_SAMPLES {
            bail!("the data has {samples} points, more than gradtrace holds ({MAX_SAMPLES})");
        }
        let widest = widths.iter().copied().max().unwrap_or(1) as u64;
        let activations = (samples as u64)
            .saturating_mul(widest)
            .saturating_mul(widths.len() as u64);
        if activations > MAX_ACTIVATIONS {
            bail!(
                "{samples} points with a layer of width {widest}: the activations would not fit \
                 in memory; use fewer points or narrower layers"
            );
        }
        let bytes = self.estimated_history_bytes(samples);
        if bytes > MAX_HISTORY_BYTES {
            bail!(
                "the history would take about {} GB: reduce --epochs, record gradients less \
                 often (--grad-every N or never), or use --record stats",
                bytes / 1_000_000_000
            );
        }
        Ok(())
    }

    /// Rough size of the run JSON in bytes for data of `samples` points, on the high side: a
    /// recorded float is counted at 29 characters (it takes 12 to 17 on its matrix row).
    pub fn estimated_history_bytes(&self, samples: usize) -> u64 {
        let widths = self.widths();
        let params = self.parameter_count().unwrap_or(u64::MAX);
        let samples = samples.max(1) as u64;
        let layers = (widths.len() - 1) as u64;
        let epochs = self.epochs as u64;
        let steps_per_epoch = samples.div_ceil(self.batch_size.max(1) as u64).max(1);
        let records = match self.grad_every {
            GradEvery::Epoch => epochs.saturating_add(1),
            GradEvery::Steps(n) => epochs
                .saturating_mul(steps_per_epoch)
                .div_ceil(n as u64)
                .saturating_add(1),
            GradEvery::Never => 0,
        };
        let per_matrix = if self.record.matrices() {
            params.saturating_mul(29)
        } else {
            0
        };
        let per_snapshot = per_matrix.saturating_add(layers * 60).saturating_add(80);
        // Diagnostics: two 32-bin histograms and a dozen numbers per layer.
        let per_layer = if self.record.diagnostics() { 750 } else { 150 };
        let per_record = per_matrix.saturating_add(layers * per_layer);
        epochs
            .saturating_add(1)
            .saturating_mul(per_snapshot)
            .saturating_add(records.saturating_mul(per_record))
    }

    /// Kernel and bias entries of the whole network; none if the count overflows.
    pub fn parameter_count(&self) -> Option<u64> {
        self.widths().windows(2).try_fold(0u64, |total, pair| {
            let (inputs, units) = (pair[0] as u64, pair[1] as u64);
            inputs
                .checked_mul(units)?
                .checked_add(units)?
                .checked_add(total)
        })
    }

    /// Layer widths from input to output, e.g. [2, 5, 5, 5, 5, 1].
    pub fn widths(&self) -> Vec<usize> {
        let mut widths = vec![2];
        widths.extend(&self.hidden);
        widths.push(1);
        widths
    }
}

/// A `--name` becomes a file or folder name: plain, so that it can never point elsewhere.
pub fn check_plain_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if !plain {
        bail!(
            "--name `{}`: use a plain file name of at most 200 bytes (no path separator, control \
             character or leading dot)",
            name.escape_debug()
        );
    }
    Ok(())
}
