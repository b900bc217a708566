//! The training loop: batches, gradients, updates, and the records taken along the way.
//!
//! The hot path issues only libtorch calls that stay on the device. The host reads back at
//! record points only: the flat gradient when one is recorded, and once per epoch the epoch's
//! logits (for its loss, accuracy and divergence check) and the flat weights.

use crate::config::{GradEvery, RecordLevel, RunConfig};
use crate::data::Dataset;
use crate::model::{bce_from_logit, Mlp};
use crate::optim::Optimizer;
use crate::record::{
    rows, summarize, EpochMetrics, Evaluation, GradientLayer, GradientRecord, LayerInfo, Metrics,
    RunRecord, Status, StepRef, ToolInfo, WeightLayer, WeightSnapshot, FORMAT, FORMAT_VERSION,
    KERNEL_ORIENTATION,
};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Random streams of one run, all from its seed, each for one purpose so that changing how one
/// is used does not shift the others.
const INIT_STREAM: u64 = 0;
const SHUFFLE_STREAM: u64 = 1;

/// Trains one network as `config` says and returns its full history. `on_epoch` is called after
/// every epoch (for progress bars). A failure inside libtorch (which tch reports by panicking,
/// e.g. out of memory) comes back as an error, so one bad run cannot take a sweep down.
pub fn train(
    config: &RunConfig,
    data: &Dataset,
    device: Device,
    on_epoch: impl FnMut(usize),
) -> Result<RunRecord> {
    let attempt = || train_unguarded(config, data, device, on_epoch);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)) {
        Ok(result) => result,
        Err(payload) => Err(anyhow::anyhow!(
            "{}: {}",
            config.name,
            panic_message(&*payload)
        )),
    }
}

/// The first line of a panic's message, shortened: libtorch's own run to dozens of lines.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure");
    // tch's errors arrive Debug-formatted, with their line breaks escaped.
    let text = text.replace("\\n", "\n");
    let first = text.lines().next().unwrap_or("").trim();
    let first = first
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(first);
    let first = first
        .strip_prefix("Torch(\"")
        .unwrap_or(first)
        .trim_end_matches(['"', ')']);
    let mut short: String = first.chars().take(300).collect();
    if short.len() < first.len() {
        short.push_str("...");
    }
    format!("libtorch failed: {short}")
}

fn train_unguarded(
    config: &RunConfig,
    data: &Dataset,
    device: Device,
    mut on_epoch: impl FnMut(usize),
) -> Result<RunRecord> {
    config.validate()?;
    config.check_size(Some(data.len()))?;
    let started = Instant::now();
    let n = data.len();
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);

    // Set-up: weights from the init stream, data on the device once.
    let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
    init_rng.set_stream(INIT_STREAM);
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed);
    shuffle_rng.set_stream(SHUFFLE_STREAM);
    let mut model = Mlp::init(config, &mut init_rng, device);
    let mut optimizer = Optimizer::new(&config.optimizer, &model.params);
    let x_all = Tensor::from_slice(&data.x)
        .view([n as i64, 2])
        .to_device(device);
    let y_all = Tensor::from_slice(&data.y)
        .view([n as i64, 1])
        .to_device(device);
    let epoch_logits = Tensor::zeros([n as i64], (Kind::Float, device));
    let full = config.record == RecordLevel::Full;

    let before = evaluate(&model, &x_all, &data.y);
    let mut weights = vec![snapshot(&model, 0, full)];
    let mut gradients = Vec::new();
    let mut epochs = Vec::with_capacity(config.epochs);
    let mut diverged_at = None;
    let mut order: Vec<usize> = (0..n).collect();
    let mut global_step = 0;

    for epoch in 1..=config.epochs {
        // This epoch's batch order, drawn on the host and applied on the device in one gather.
        if config.shuffle {
            for i in (1..n).rev() {
                order.swap(i, shuffle_rng.gen_range(0..=i));
            }
        }
        let index: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let index = Tensor::from_slice(&index).to_device(device);
        let (x_epoch, y_epoch) = (x_all.index_select(0, &index), y_all.index_select(0, &index));

        // The hot loop: forward, backward, maybe a record, update.
        let mut pending = Vec::new();
        for step in 0..steps_per_epoch {
            let start = (step * batch) as i64;
            let len = batch.min(n - step * batch) as i64;
            let (xb, yb) = (x_epoch.narrow(0, start, len), y_epoch.narrow(0, start, len));
            let logits = model.compute_gradients(&xb, &yb);
            epoch_logits
                .narrow(0, start, len)
                .copy_(&logits.view([len]));
            if records_at(config.grad_every, step, global_step) {
                pending.push((step, global_step, len as usize, host(&model.grads)));
            }
            optimizer.step(&mut model.params, &model.grads);
            global_step += 1;
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Interrupted.into());
            }
        }

        // Once per epoch: losses and accuracy from the logits each batch produced.
        let logits = host(&epoch_logits);
        let labels: Vec<f32> = order.iter().map(|&i| data.y[i]).collect();
        let step_losses: Vec<f64> = (0..steps_per_epoch)
            .map(|step| {
                let range = step * batch..(n.min((step + 1) * batch));
                mean_bce(&logits[range.clone()], &labels[range])
            })
            .collect();
        let epoch_metrics = metrics(&logits, &labels);
        epochs.push(EpochMetrics {
            epoch,
            loss: epoch_metrics.loss,
            accuracy: epoch_metrics.accuracy,
        });
        for (step, global, samples, grads) in pending {
            gradients.push(gradient_record(
                &model,
                epoch,
                step,
                global,
                samples,
                step_losses[step],
                &grads,
                full,
            ));
        }
        let snapshot = snapshot(&model, epoch, full);
        let weights_finite = snapshot.layers.iter().all(|l| l.mean.is_finite());
        weights.push(snapshot);
        on_epoch(epoch);

        // Stop at the first non-finite loss; finite losses but non-finite weights mean the
        // epoch's last update broke them.
        let broken = step_losses.iter().position(|l| !l.is_finite());
        let broken = broken.or((!weights_finite).then_some(steps_per_epoch - 1));
        if let Some(step) = broken {
            let global_step = global_step - steps_per_epoch + step;
            diverged_at = Some(StepRef {
                epoch,
                step,
                global_step,
            });
            break;
        }
    }

    // The final weights may be finite and still overflow the logits: that too is divergence,
    // caused by the last update.
    let after = evaluate(&model, &x_all, &data.y);
    if diverged_at.is_none() && !after.loss.is_finite() {
        let epoch = epochs.len();
        diverged_at = Some(StepRef {
            epoch,
            step: steps_per_epoch - 1,
            global_step: global_step - 1,
        });
    }

    // After the last step: one more gradient, over the whole training set, with final weights.
    if config.grad_every != GradEvery::Never && diverged_at.is_none() {
        let logits = model.compute_gradients(&x_all, &y_all);
        let loss = mean_bce(&host(&logits), &data.y);
        let grads = host(&model.grads);
        let epoch = config.epochs;
        gradients.push(gradient_record(
            &model,
            epoch,
            steps_per_epoch,
            global_step,
            n,
            loss,
            &grads,
            full,
        ));
    }

    Ok(RunRecord {
        format: FORMAT,
        version: FORMAT_VERSION,
        tool: ToolInfo::current(),
        device: device_name(device),
        config: config.clone(),
        data: data.summary(),
        kernel_orientation: KERNEL_ORIENTATION,
        layers: layer_infos(config, &model),
        status: if diverged_at.is_some() {
            Status::Diverged
        } else {
            Status::Completed
        },
        diverged_at,
        evaluation: Evaluation { before, after },
        epochs,
        weights,
        gradients,
        wall_time_s: started.elapsed().as_secs_f64(),
    })
}

/// True when the step should be recorded.
fn records_at(every: GradEvery, step: usize, global_step: usize) -> bool {
    match every {
        GradEvery::Epoch => step == 0,
        GradEvery::Steps(n) => global_step.is_multiple_of(n),
        GradEvery::Never => false,
    }
}

/// Copies a tensor to the host as f32 values: one transfer.
fn host(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Float).reshape([-1]))
        .expect("a float tensor converts to Vec<f32>")
}

fn mean_bce(logits: &[f32], labels: &[f32]) -> f64 {
    let total: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| bce_from_logit(z as f64, y as f64))
        .sum();
    total / logits.len() as f64
}

/// Loss and accuracy; a model whose logits are not finite has no accuracy (NaN, not 0.5).
fn metrics(logits: &[f32], labels: &[f32]) -> Metrics {
    if logits.iter().any(|z| !z.is_finite()) {
        return Metrics {
            loss: mean_bce(logits, labels),
            accuracy: f64::NAN,
        };
    }
    let correct = logits
        .iter()
        .zip(labels)
        .filter(|(&z, &y)| (z > 0.0) == (y == 1.0))
        .count();
    Metrics {
        loss: mean_bce(logits, labels),
        accuracy: correct as f64 / labels.len() as f64,
    }
}

fn evaluate(model: &Mlp, x: &Tensor, labels: &[f32]) -> Metrics {
    metrics(&host(&model.logits(x)), labels)
}

fn snapshot(model: &Mlp, epoch: usize, full: bool) -> WeightSnapshot {
    let params = host(&model.params);
    let layers = model
        .slots
        .iter()
        .map(|slot| {
            let (kernel, bias) = (slot.kernel(&params), slot.bias(&params));
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

#[allow(clippy::too_many_arguments)]
fn gradient_record(
    model: &Mlp,
    epoch: usize,
    step: usize,
    global_step: usize,
    samples: usize,
    loss: f64,
    grads: &[f32],
    full: bool,
) -> GradientRecord {
    let layers = model
        .slots
        .iter()
        .map(|slot| {
            let (kernel, bias) = (slot.kernel(grads), slot.bias(grads));
            let s = summarize(kernel);
            GradientLayer {
                mean: s.mean,
                sd: s.sd,
                mean_abs: s.mean_abs,
                l2: s.l2,
                kernel: full.then(|| rows(kernel, slot.units)),
                bias: full.then(|| bias.to_vec()),
            }
        })
        .collect();
    GradientRecord {
        epoch,
        step,
        global_step,
        samples,
        loss,
        layers,
    }
}

fn layer_infos(config: &RunConfig, model: &Mlp) -> Vec<LayerInfo> {
    let last = model.slots.len() - 1;
    let activation = serde_json::to_value(config.activation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    model
        .slots
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

/// `cpu`, `cuda:0`, ...
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_libtorch_panic_becomes_its_first_line() {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:127] \
             data. DefaultCPUAllocator: not enough memory\\nException raised from ...\\nframe #0\")",
        ));
        assert_eq!(
            panic_message(&*payload),
            "libtorch failed: [enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not \
             enough memory"
        );
    }

    #[test]
    fn a_libtorch_failure_inside_training_is_an_error_not_a_crash() {
        let config = crate::testing::tiny_config();
        // Data that does not match the network's two inputs makes libtorch's matmul fail.
        let data = Dataset {
            x: vec![0.0; 9],
            y: vec![0.0, 1.0, 0.0],
        };
        let result = std::panic::catch_unwind(|| train(&config, &data, Device::Cpu, |_| ()));
        let error = result
            .expect("no panic escapes")
            .expect_err("the run fails");
        assert!(
            format!("{error:#}").contains("libtorch failed"),
            "{error:#}"
        );
    }
}
