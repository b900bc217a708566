//! One model's history as training goes: the bookkeeping both engines share.
//!
//! An engine hands over host copies (a flat gradient, an epoch's logits, the flat weights) and
//! `History` turns them into records, decides divergence, and finally builds the `RunRecord`.
//! Because the single-model and the ensemble engine go through the same code from the host copy
//! on, their JSON can differ only where their arithmetic does.

use crate::config::{GradEvery, RunConfig};
use crate::data::Dataset;
use crate::diagnostics::{self, Signals};
use crate::model::LayerSlot;
use crate::record::{
    median, rows, summarize, ActivationStats, EngineInfo, EpochMetrics, Evaluation, GradientLayer,
    GradientRecord, LayerInfo, Metrics, RunRecord, SaturationRules, SignalStats, Status, StepRef,
    ToolInfo, WeightLayer, WeightSnapshot, FORMAT, FORMAT_VERSION, KERNEL_ORIENTATION,
};

/// A gradient copied out during an epoch, turned into a record once the epoch's losses are known.
struct PendingGradient {
    step: usize,
    global_step: usize,
    samples: usize,
    values: Vec<f32>,
    update_ratios: Vec<f64>,
    layers: Option<LayerSignals>,
}

/// Per layer, the statistics of a recorded step's activations and back-propagated signal.
struct LayerSignals {
    activations: Vec<ActivationStats>,
    backprop: Vec<SignalStats>,
}

/// Where a gradient was taken: the step within its epoch, the step since the start, and the
/// points it averages over.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Step within the epoch, from 0.
    pub step: usize,
    /// Step since training began, from 0.
    pub global_step: usize,
    /// Points in the batch.
    pub samples: usize,
}

/// The growing history of one model.
pub struct History<'a> {
    config: &'a RunConfig,
    slots: &'a [LayerSlot],
    samples: usize,
    batch: usize,
    steps_per_epoch: usize,
    before: Metrics,
    after: Option<Metrics>,
    epochs: Vec<EpochMetrics>,
    weights: Vec<WeightSnapshot>,
    gradients: Vec<GradientRecord>,
    pending: Vec<PendingGradient>,
    diverged_at: Option<StepRef>,
}

impl<'a> History<'a> {
    /// Starts a history from the initial flat weights and the evaluation before training.
    pub fn new(
        config: &'a RunConfig,
        slots: &'a [LayerSlot],
        samples: usize,
        initial: &[f32],
        before: Metrics,
    ) -> History<'a> {
        let batch = config.batch_size.min(samples);
        let mut history = History {
            config,
            slots,
            samples,
            batch,
            steps_per_epoch: samples.div_ceil(batch),
            before,
            after: None,
            epochs: Vec::with_capacity(config.epochs),
            weights: Vec::with_capacity(config.epochs + 1),
            gradients: Vec::new(),
            pending: Vec::new(),
            diverged_at: None,
        };
        history.weights.push(history.snapshot(0, initial));
        history
    }

    /// False once the model has diverged: nothing more is recorded for it.
    pub fn is_open(&self) -> bool {
        self.diverged_at.is_none()
    }

    /// Keeps a gradient taken at `step` of the current epoch over `samples` points, with the
    /// flat weights just before and just after the update it drove, and the step's signals
    /// (laid out as `diagnostics::Signals`) when the run records diagnostics.
    pub fn take_gradient(
        &mut self,
        step: Step,
        g: &[f32],
        weights: (&[f32], &[f32]),
        signals: Option<&[f32]>,
    ) {
        let (before, after) = weights;
        let update_ratios = self
            .slots
            .iter()
            .map(|slot| {
                let (old, new) = (slot.kernel(before), slot.kernel(after));
                let change: f64 = old
                    .iter()
                    .zip(new)
                    .map(|(&o, &n)| (n as f64 - o as f64).powi(2))
                    .sum();
                let size: f64 = old.iter().map(|&o| (o as f64).powi(2)).sum();
                (change / size).sqrt()
            })
            .collect();
        self.pending.push(PendingGradient {
            step: step.step,
            global_step: step.global_step,
            samples: step.samples,
            values: g.to_vec(),
            update_ratios,
            layers: signals.map(|values| {
                let signals = Signals::new(values, self.slots, step.samples);
                LayerSignals {
                    activations: signals.activation_stats(self.config.activation),
                    backprop: (0..self.slots.len())
                        .map(|l| diagnostics::signal_stats(signals.backprop(l)))
                        .collect(),
                }
            }),
        });
    }

    /// Closes an epoch from the logits each batch produced (in batch order), the labels in the
    /// same order, and the weights after its last update. Returns true when the model diverged
    /// in this epoch: a non-finite batch loss, or finite losses but non-finite weights (the
    /// epoch's last update broke them).
    pub fn end_epoch(
        &mut self,
        epoch: usize,
        points: Points,
        labels: &[f32],
        weights: &[f32],
    ) -> bool {
        let n = self.samples;
        let step_losses: Vec<f64> = (0..self.steps_per_epoch)
            .map(|step| {
                let range = step * self.batch..n.min((step + 1) * self.batch);
                mean(&points.losses[range])
            })
            .collect();
        let metrics = metrics(points, labels);
        self.epochs.push(EpochMetrics {
            epoch,
            loss: metrics.loss,
            accuracy: metrics.accuracy,
        });
        for pending in std::mem::take(&mut self.pending) {
            let record = self.gradient_record(
                epoch,
                Step {
                    step: pending.step,
                    global_step: pending.global_step,
                    samples: pending.samples,
                },
                step_losses[pending.step],
                &pending.values,
                Some(&pending.update_ratios),
                pending.layers,
            );
            self.gradients.push(record);
        }
        let snapshot = self.snapshot(epoch, weights);
        let weights_finite = snapshot.layers.iter().all(|l| l.mean.is_finite());
        self.weights.push(snapshot);

        let broken = step_losses.iter().position(|l| !l.is_finite());
        let broken = broken.or((!weights_finite).then_some(self.steps_per_epoch - 1));
        if let Some(step) = broken {
            self.diverged_at = Some(StepRef {
                epoch,
                step,
                global_step: (epoch - 1) * self.steps_per_epoch + step,
            });
        }
        broken.is_some()
    }

    /// Sets the whole-set evaluation with the final weights (the model's at its last epoch).
    /// Finite weights can still overflow the logits: that too is divergence, caused by the last
    /// update.
    pub fn evaluate_after(&mut self, after: Metrics) {
        self.after = Some(after);
        if self.diverged_at.is_none() && !after.loss.is_finite() {
            let epoch = self.epochs.len();
            self.diverged_at = Some(StepRef {
                epoch,
                step: self.steps_per_epoch - 1,
                global_step: epoch * self.steps_per_epoch - 1,
            });
        }
    }

    /// True when a last gradient over the whole training set should be taken after training.
    pub fn wants_final_gradient(&self) -> bool {
        self.config.grad_every != GradEvery::Never && self.is_open()
    }

    /// Records the gradient over the whole training set taken after the last step, from the
    /// per-point losses and the gradient of that pass.
    pub fn take_final_gradient(&mut self, losses: &[f32], g: &[f32]) {
        let loss = mean(losses);
        let epochs = self.epochs.len();
        let at = Step {
            step: self.steps_per_epoch,
            global_step: epochs * self.steps_per_epoch,
            samples: self.samples,
        };
        let record = self.gradient_record(self.config.epochs, at, loss, g, None, None);
        self.gradients.push(record);
    }

    /// The finished record.
    pub fn finish(
        self,
        data: &Dataset,
        device: &str,
        engine: EngineInfo,
        wall_time_s: f64,
    ) -> RunRecord {
        RunRecord {
            format: FORMAT,
            version: FORMAT_VERSION,
            tool: ToolInfo::current(),
            device: device.to_string(),
            engine,
            config: self.config.clone(),
            data: data.summary(),
            kernel_orientation: KERNEL_ORIENTATION,
            layers: layer_infos(self.config, self.slots),
            saturation: self.config.record.diagnostics().then(|| SaturationRules {
                hidden: diagnostics::hidden_rule(self.config.activation),
                output: diagnostics::output_rule(),
            }),
            status: if self.diverged_at.is_some() {
                Status::Diverged
            } else {
                Status::Completed
            },
            diverged_at: self.diverged_at,
            evaluation: Evaluation {
                before: self.before,
                after: self.after.expect("evaluated after training"),
            },
            epochs: self.epochs,
            weights: self.weights,
            median_vanishing_index: median(self.gradients.iter().map(|g| g.vanishing_index[0])),
            gradients: self.gradients,
            wall_time_s,
        }
    }

    fn full(&self) -> bool {
        self.config.record.matrices()
    }

    fn snapshot(&self, epoch: usize, params: &[f32]) -> WeightSnapshot {
        let full = self.full();
        let layers = self
            .slots
            .iter()
            .map(|slot| {
                let (kernel, bias) = (slot.kernel(params), slot.bias(params));
                let s = summarize(kernel);
                WeightLayer {
                    mean: s.mean,
                    sd: s.sd,
                    kernel: full.then(|| rows(kernel, slot.units)),
                    bias: full.then(|| bias.to_vec()),
                }
            })
            .collect();
        WeightSnapshot { epoch, layers }
    }

    fn gradient_record(
        &self,
        epoch: usize,
        at: Step,
        loss: f64,
        grads: &[f32],
        update_ratios: Option<&[f64]>,
        signals: Option<LayerSignals>,
    ) -> GradientRecord {
        let full = self.full();
        let diagnostics = self.config.record.diagnostics();
        let (mut activations, mut backprop) = match signals {
            Some(s) => (s.activations.into_iter(), s.backprop.into_iter()),
            None => (Vec::new().into_iter(), Vec::new().into_iter()),
        };
        let layers: Vec<GradientLayer> = self
            .slots
            .iter()
            .enumerate()
            .map(|(l, slot)| {
                let (kernel, bias) = (slot.kernel(grads), slot.bias(grads));
                let s = summarize(kernel);
                GradientLayer {
                    mean: s.mean,
                    sd: s.sd,
                    mean_abs: s.mean_abs,
                    l2: s.l2,
                    update_ratio: update_ratios.map(|r| r[l]),
                    histogram: diagnostics.then(|| diagnostics::gradient_histogram(kernel)),
                    activations: activations.next(),
                    backprop: backprop.next(),
                    kernel: full.then(|| rows(kernel, slot.units)),
                    bias: full.then(|| bias.to_vec()),
                }
            })
            .collect();
        let vanishing_index = vanishing_index(&layers);
        GradientRecord {
            epoch,
            step: at.step,
            global_step: at.global_step,
            samples: at.samples,
            loss,
            layers,
            vanishing_index,
        }
    }
}

/// Each layer's kernel-gradient S.D. over the output layer's.
fn vanishing_index(layers: &[GradientLayer]) -> Vec<f64> {
    let last = layers.last().map_or(f64::NAN, |l| l.sd);
    layers.iter().map(|l| l.sd / last).collect()
}

/// True when the step should be recorded.
pub fn records_at(every: GradEvery, step: usize, global_step: usize) -> bool {
    match every {
        GradEvery::Epoch => step == 0,
        GradEvery::Steps(n) => global_step.is_multiple_of(n),
        GradEvery::Never => false,
    }
}

/// One model's logits over a set of points and the binary cross-entropy of each.
#[derive(Clone, Copy)]
pub struct Points<'a> {
    /// Logits, one per point.
    pub logits: &'a [f32],
    /// Binary cross-entropy of each logit against its label.
    pub losses: &'a [f32],
}

impl<'a> Points<'a> {
    /// Model r's share of host copies holding `n` points per model.
    pub fn of_model(logits: &'a [f32], losses: &'a [f32], r: usize, n: usize) -> Points<'a> {
        Points {
            logits: &logits[r * n..(r + 1) * n],
            losses: &losses[r * n..(r + 1) * n],
        }
    }
}

/// The mean, accumulated in f64.
fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64
}

/// Loss and accuracy; a model whose logits are not finite has no accuracy (NaN, not 0.5).
pub fn metrics(points: Points, labels: &[f32]) -> Metrics {
    let loss = mean(points.losses);
    if points.logits.iter().any(|z| !z.is_finite()) {
        return Metrics {
            loss,
            accuracy: f64::NAN,
        };
    }
    let correct = points
        .logits
        .iter()
        .zip(labels)
        .filter(|(&z, &y)| (z > 0.0) == (y == 1.0))
        .count();
    Metrics {
        loss,
        accuracy: correct as f64 / labels.len() as f64,
    }
}

fn layer_infos(config: &RunConfig, slots: &[LayerSlot]) -> Vec<LayerInfo> {
    let last = slots.len() - 1;
    let activation = crate::cli::kebab(config.activation);
    slots
        .iter()
        .enumerate()
        .map(|(i, slot)| LayerInfo {
            name: format!("dense_{}", i + 1),
            activation: if i == last {
                "logit".to_string()
            } else {
                activation.clone()
            },
            kernel_shape: [slot.inputs, slot.units],
            bias_shape: [slot.units],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(sd: f64) -> GradientLayer {
        GradientLayer {
            mean: 0.0,
            sd,
            mean_abs: 0.0,
            l2: 0.0,
            update_ratio: None,
            histogram: None,
            activations: None,
            backprop: None,
            kernel: None,
            bias: None,
        }
    }

    #[test]
    fn the_vanishing_index_divides_by_the_output_layer() {
        // S.D.s 1e-3, 1e-2, 4e-2 (output): indexes 0.025, 0.25, 1.
        let index = vanishing_index(&[layer(1e-3), layer(1e-2), layer(4e-2)]);
        let want = [0.025, 0.25, 1.0];
        for (got, want) in index.iter().zip(want) {
            assert!((got - want).abs() < 1e-15, "{index:?}");
        }
        // A dead output layer (S.D. 0) has no finite index; the JSON writes it as null.
        assert!(vanishing_index(&[layer(1e-3), layer(0.0)])[0].is_infinite());
    }

    #[test]
    fn the_update_ratio_is_the_kernels_change_over_its_size() {
        // A 2-1 layer: kernel (3, 4) moves to (3.3, 3.6): |(0.3, -0.4)| / |(3, 4)| = 0.5 / 5.
        let mut config = crate::testing::tiny_config();
        config.hidden = vec![];
        let (slots, _) = crate::model::layout(&config.widths());
        let before = [3.0, 4.0, 0.0];
        let metrics = Metrics::default();
        let mut history = History::new(&config, &slots, 4, &before, metrics);
        let at = Step {
            step: 0,
            global_step: 0,
            samples: 4,
        };
        let after = [3.3, 3.6, 7.0];
        history.take_gradient(at, &[1.0, 1.0, 1.0], (&before, &after), None);
        let points = Points {
            logits: &[0.0; 4],
            losses: &[0.5; 4],
        };
        history.end_epoch(1, points, &[0.0, 1.0, 0.0, 1.0], &[3.3, 3.6, 7.0]);
        let ratio = history.gradients[0].layers[0].update_ratio.unwrap();
        assert!((ratio - 0.1).abs() < 1e-6, "{ratio}");
    }
}
