//! The run JSON: what a history holds, field by field, and the statistics it summarises with.
//!
//! Field order here is the key order in the file. Everything keyed by layer is a list ordered by
//! depth (input side first). Non-finite values (a diverged run) are written as `null`.

use crate::config::RunConfig;
use crate::data::DataSummary;
use serde::Serialize;

/// Name of the file format, the first key of every run JSON.
pub const FORMAT: &str = "gradtrace-run";
/// Bumped whenever a field changes meaning or disappears (adding a field keeps it).
pub const FORMAT_VERSION: u32 = 1;
/// How kernels are laid out, stated in every file.
pub const KERNEL_ORIENTATION: &str =
    "kernel[i][j] is the weight from input i to unit j (Keras layout: z = x @ kernel + bias)";

/// One run's complete history.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    /// Always `gradtrace-run`.
    pub format: &'static str,
    /// `FORMAT_VERSION` of the writer.
    pub version: u32,
    /// Program and library versions.
    pub tool: ToolInfo,
    /// The device the run trained on, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// Which engine trained it, and alongside how many models.
    pub engine: EngineInfo,
    /// The resolved configuration: every value that shaped the run, seed included.
    pub config: RunConfig,
    /// Size, balance and hash of the training data.
    pub data: DataSummary,
    /// States how every `kernel` matrix in this file is oriented.
    pub kernel_orientation: &'static str,
    /// The layers, input side first.
    pub layers: Vec<LayerInfo>,
    /// What counts as saturated in the gradient records' `activations`; absent with
    /// `--record kernels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<SaturationRules>,
    /// `completed`, or `diverged` when the loss stopped being finite.
    pub status: Status,
    /// Where the first non-finite loss appeared, for a diverged run.
    pub diverged_at: Option<StepRef>,
    /// Loss and accuracy on the whole training set before and after training.
    pub evaluation: Evaluation,
    /// Per epoch: the mean of the batch losses and the accuracy over the epoch's batches, each
    /// measured as the batch was trained on (as Keras's `fit` history reports them).
    pub epochs: Vec<EpochMetrics>,
    /// Weights at initialization (`epoch` 0) and after every epoch.
    pub weights: Vec<WeightSnapshot>,
    /// Kernel gradients at the recorded steps, read after backward and before the update.
    pub gradients: Vec<GradientRecord>,
    /// Median over the gradient records of the first layer's vanishing index (null without
    /// gradient records): one number for how much the gradient vanished in this run.
    pub median_vanishing_index: f64,
    /// Seconds spent training and recording (data loading and JSON writing excluded); for a run
    /// trained in an ensemble, the ensemble's time divided by its number of models.
    pub wall_time_s: f64,
}

/// Program and library versions.
#[derive(Debug, Serialize)]
pub struct ToolInfo {
    /// Always `gradtrace`.
    pub name: &'static str,
    /// gradtrace's version.
    pub version: &'static str,
    /// The libtorch (PyTorch) version the binary was built against.
    pub libtorch: &'static str,
}

impl ToolInfo {
    /// This build's versions.
    pub fn current() -> ToolInfo {
        ToolInfo {
            name: "gradtrace",
            version: env!("CARGO_PKG_VERSION"),
            libtorch: env!("GRADTRACE_LIBTORCH_VERSION"),
        }
    }
}

/// The engine that trained a run. It is not part of the config: both engines give the same
/// history up to float rounding, so a run's identity does not depend on it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EngineInfo {
    /// `single` (one network at a time) or `ensemble` (many trained together).
    pub name: &'static str,
    /// Networks trained together in this run's batch: 1 for the single engine.
    pub models: usize,
}

impl EngineInfo {
    /// The single-model engine.
    pub fn single() -> EngineInfo {
        EngineInfo {
            name: "single",
            models: 1,
        }
    }

    /// The ensemble engine with `models` networks in the batch.
    pub fn ensemble(models: usize) -> EngineInfo {
        EngineInfo {
            name: "ensemble",
            models,
        }
    }
}

/// One dense layer.
#[derive(Debug, Serialize)]
pub struct LayerInfo {
    /// Keras-style name by depth: `dense_1` is next to the input.
    pub name: String,
    /// Activation applied to this layer's output; `logit` for the output layer (the sigmoid is
    /// part of the loss).
    pub activation: String,
    /// Kernel shape, `[inputs, units]`.
    pub kernel_shape: [usize; 2],
    /// Bias shape, `[units]`.
    pub bias_shape: [usize; 1],
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every epoch ran with a finite loss.
    Completed,
    /// A loss became NaN or infinite; training stopped at the end of that epoch.
    Diverged,
}

/// A training step: epoch (from 1), step within the epoch (from 0) and step since the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StepRef {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Step within the epoch, counted from 0.
    pub step: usize,
    /// Step since training began, counted from 0.
    pub global_step: usize,
}

/// Loss and accuracy over a set of points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Mean binary cross-entropy (natural log).
    pub loss: f64,
    /// Share of points whose logit has the label's sign (probability above 0.5 means 1).
    pub accuracy: f64,
}

/// Before and after training, on the whole training set.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Evaluation {
    /// With the initial weights.
    pub before: Metrics,
    /// With the final weights.
    pub after: Metrics,
}

/// One epoch's training metrics.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EpochMetrics {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Mean batch loss, weighted by batch size.
    pub loss: f64,
    /// Accuracy over the epoch's batches, each taken before its update.
    pub accuracy: f64,
}

/// The weights at the end of an epoch (`epoch` 0: at initialization).
#[derive(Debug, Serialize)]
pub struct WeightSnapshot {
    /// 0 for the initial weights, otherwise the epoch just finished.
    pub epoch: usize,
    /// Per layer, input side first.
    pub layers: Vec<WeightLayer>,
}

/// One layer's weights.
#[derive(Debug, Serialize)]
pub struct WeightLayer {
    /// Mean of the kernel's entries.
    pub mean: f64,
    /// Population S.D. of the kernel's entries (as numpy's `std`).
    pub sd: f64,
    /// The kernel, `[inputs][units]`; left out with `--record stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Vec<Vec<f32>>>,
    /// The bias, `[units]`; left out with `--record stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<Vec<f32>>,
}

/// The gradient of the loss with respect to every kernel at one step.
#[derive(Debug, Serialize)]
pub struct GradientRecord {
    /// Epoch of the step, counted from 1.
    pub epoch: usize,
    /// Step within the epoch, counted from 0. The record taken after training has
    /// `step` = steps per epoch.
    pub step: usize,
    /// Step since training began, counted from 0.
    pub global_step: usize,
    /// Points the gradient averages over: the batch, or the whole training set for the record
    /// taken after the last step.
    pub samples: usize,
    /// Mean binary cross-entropy on those points at that step.
    pub loss: f64,
    /// Per layer, input side first.
    pub layers: Vec<GradientLayer>,
    /// Per layer, its kernel-gradient S.D. divided by the output layer's: 1 for the output
    /// layer, far below 1 toward the input where the gradient vanishes, above 1 where it grows.
    pub vanishing_index: Vec<f64>,
}

/// One layer's kernel gradient.
#[derive(Debug, Serialize)]
pub struct GradientLayer {
    /// Mean of the kernel gradient's entries.
    pub mean: f64,
    /// Population S.D. of the entries.
    pub sd: f64,
    /// Mean absolute value of the entries.
    pub mean_abs: f64,
    /// L2 (Frobenius) norm of the kernel gradient.
    pub l2: f64,
    /// The step's update-to-weight ratio: L2 norm of the kernel's update over the L2 norm of the
    /// kernel before it (null for the record after training, which no update follows).
    pub update_ratio: Option<f64>,
    /// Histogram of the kernel gradient's entries over [-m, m], m their largest magnitude;
    /// absent with `--record kernels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// The layer's outputs over the step's batch (the output layer's: sigmoid of its logit);
    /// absent with `--record kernels` and in the record taken after training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations: Option<ActivationStats>,
    /// The back-propagated signal: the gradient of the batch's mean loss with respect to the
    /// layer's pre-activations, over every unit and point of the batch (so it carries the
    /// 1 / batch of the mean); absent with `--record kernels` and after training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backprop: Option<SignalStats>,
    /// The kernel gradient, `[inputs][units]`; left out with `--record stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Vec<Vec<f32>>>,
    /// The bias gradient, `[units]`; left out with `--record stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<Vec<f32>>,
}

/// The saturation rules of a run's hidden layers and of its output.
#[derive(Clone, Debug, Serialize)]
pub struct SaturationRules {
    /// For the hidden layers' activation.
    pub hidden: SaturationRule,
    /// For the output layer's probability, sigmoid(logit).
    pub output: SaturationRule,
}

/// When an activation's output `a` counts as saturated (where its derivative nearly vanishes,
/// or, for ReLU, is zero): `a < below`, or `a > above`, or `a == equals`; a null test is not
/// used, and with all three null the activation has no rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SaturationRule {
    /// The activation the rule is for.
    pub activation: String,
    /// The rule in words, e.g. `a < 0.03 or a > 0.97`.
    pub rule: String,
    /// Saturated below this value.
    pub below: Option<f64>,
    /// Saturated above this value.
    pub above: Option<f64>,
    /// Saturated at exactly this value (ReLU: 0, a dead unit).
    pub equals: Option<f64>,
}

/// One layer's outputs over a batch: every unit at every point.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationStats {
    /// Mean output.
    pub mean: f64,
    /// Population S.D. of the outputs.
    pub sd: f64,
    /// Mean of the activation's derivative f'(z) over the outputs: on average, how much the
    /// activation scales the back-propagated signal (sigmoid: at most 0.25). Null for the output
    /// layer and for GELU, whose output does not determine it.
    pub mean_slope: Option<f64>,
    /// Share of the outputs the run's saturation rule calls saturated (null: no rule).
    pub saturated: Option<f64>,
    /// Units saturated at every point of the batch (for ReLU: dead units; null: no rule).
    pub saturated_units: Option<usize>,
    /// Histogram of the outputs: over the activation's range where it is bounded (sigmoid
    /// [0, 1], tanh and softsign [-1, 1], the output's probability [0, 1]), else over
    /// [min, max].
    pub histogram: Histogram,
}

/// Mean, S.D. and mean magnitude of a back-propagated signal.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SignalStats {
    /// Mean entry.
    pub mean: f64,
    /// Population S.D. of the entries.
    pub sd: f64,
    /// Mean of |entry|.
    pub mean_abs: f64,
}

/// Counts in equal-width bins from `low` to `high` (a value equal to `high` in the last bin);
/// values outside the range and non-finite values are not counted.
#[derive(Clone, Debug, Serialize)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub low: f64,
    /// Right edge of the last bin.
    pub high: f64,
    /// Entries per bin, `diagnostics::BINS` of them.
    pub counts: Vec<u64>,
}

/// Mean, population S.D., mean absolute value and L2 norm, accumulated in f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// Population S.D. (divides by n).
    pub sd: f64,
    /// Mean of |x|.
    pub mean_abs: f64,
    /// sqrt(sum of x²).
    pub l2: f64,
}

/// Summarises a slice of values (NaN in, NaN out).
pub fn summarize(values: &[f32]) -> Summary {
    let n = values.len() as f64;
    let (mut sum, mut sum_abs, mut sum_sq) = (0.0, 0.0, 0.0);
    for &v in values {
        let v = v as f64;
        sum += v;
        sum_abs += v.abs();
        sum_sq += v * v;
    }
    let mean = sum / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    Summary {
        mean,
        sd: var.sqrt(),
        mean_abs: sum_abs / n,
        l2: sum_sq.sqrt(),
    }
}

/// Splits a row-major kernel into rows of `units` entries.
pub fn rows(values: &[f32], units: usize) -> Vec<Vec<f32>> {
    values.chunks(units).map(<[f32]>::to_vec).collect()
}

/// The median of the finite values, or NaN when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_a_hand_computation() {
        // values 1, -2, 3, -4: mean -0.5; deviations 1.5, -1.5, 3.5, -3.5, squares summing to 29
        // -> population variance 29 / 4 = 7.25; mean |x| 10 / 4 = 2.5; L2 sqrt(1 + 4 + 9 + 16).
        let s = summarize(&[1.0, -2.0, 3.0, -4.0]);
        assert_eq!(
            s,
            Summary {
                mean: -0.5,
                sd: 7.25f64.sqrt(),
                mean_abs: 2.5,
                l2: 30f64.sqrt()
            }
        );
    }

    #[test]
    fn median_of_odd_and_even_counts_ignores_non_finite_values() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, f64::NAN, 3.0, 2.0]), 2.5);
        assert!(median([f64::NAN]).is_nan());
    }
}
