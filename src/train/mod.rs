//! Training: the two engines and what they share.
//!
//! - `single`: one network at a time, the reference.
//! - `ensemble`: many networks of one shape at once, its arithmetic in `backend`: lane-major
//!   loops on the host (`src/lanes/`) on the CPU, libtorch batched tensors on CUDA.
//! - `history`: turns host copies of gradients, logits and weights into one model's records;
//!   both engines use it, so their JSON can differ only where their arithmetic does.
//!
//! On a device, the hot loop issues only libtorch calls that stay there. The host reads back at
//! record points only: the flat gradient(s) and the weights around the recorded update when a
//! gradient is recorded, and once per epoch the epoch's logits (for loss, accuracy and
//! divergence) and the flat weights, one transfer each.

mod backend;
mod ensemble;
mod history;
mod single;

pub use history::Points;

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::record::RunRecord;
use anyhow::Result;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

pub use ensemble::{check_ensemble, ensemble_key};

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
    guarded(&config.name, || {
        single::train_one(config, data, device, on_epoch)
    })
}

/// Trains several networks together on the ensemble engine and returns their histories in the
/// order of `configs`. The configs must differ only in what an ensemble can mix (see
/// `check_ensemble`). Each history equals the single engine's for the same config up to float
/// rounding: every model keeps its own initial weights and batch order. `on_epoch` is called
/// after every epoch.
pub fn train_ensemble(
    configs: &[RunConfig],
    data: &Dataset,
    device: Device,
    on_epoch: impl FnMut(usize),
) -> Result<Vec<RunRecord>> {
    let arithmetic = Arithmetic::for_device(device);
    train_ensemble_with(configs, data, device, arithmetic, on_epoch)
}

/// How an ensemble's arithmetic is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// Lane-major loops on the host (`src/lanes/`): the CPU's form.
    Lanes,
    /// libtorch batched tensors (`stacked.rs`): the form for CUDA, usable on the CPU too (the
    /// tests check it there).
    Tensors,
}

impl Arithmetic {
    /// The form `train_ensemble` uses on `device`.
    pub fn for_device(device: Device) -> Arithmetic {
        if device == Device::Cpu {
            Arithmetic::Lanes
        } else {
            Arithmetic::Tensors
        }
    }
}

/// `train_ensemble` with the form of arithmetic chosen (`Lanes` only on the CPU).
pub fn train_ensemble_with(
    configs: &[RunConfig],
    data: &Dataset,
    device: Device,
    arithmetic: Arithmetic,
    on_epoch: impl FnMut(usize),
) -> Result<Vec<RunRecord>> {
    assert!(
        arithmetic == Arithmetic::Tensors || device == Device::Cpu,
        "lane arithmetic runs on the CPU only"
    );
    let label = match configs {
        [one] => one.name.clone(),
        _ => format!("an ensemble of {} runs", configs.len()),
    };
    guarded(&label, || {
        ensemble::train_many(configs, data, device, arithmetic, on_epoch)
    })
}

/// Runs `work`, turning a libtorch panic into an error that names `label`.
fn guarded<T>(label: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(anyhow::anyhow!("{label}: {}", panic_message(&*payload))),
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
    let (source, first) = match first.strip_prefix("Torch(\"") {
        Some(rest) => ("libtorch failed", rest.trim_end_matches(['"', ')'])),
        None => ("internal error (please report it)", first),
    };
    let mut short: String = first.chars().take(300).collect();
    if short.len() < first.len() {
        short.push_str("...");
    }
    format!("{source}: {short}")
}

/// `cpu`, `cuda:0`, ...
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Copies a tensor to the host as f32 values: one transfer.
fn host(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Float).reshape([-1]))
        .expect("a float tensor converts to Vec<f32>")
}

/// Logits (any shape) and the binary cross-entropy of each against `labels` (the same number of
/// values), copied to the host in one transfer. The losses are computed on the device in the
/// stable form `max(z, 0) - z y + ln(1 + e^-|z|)`, what Keras computes for a sigmoid output
/// from logits, so that thousands of models' epochs cost the host no transcendental functions.
fn host_points(logits: &Tensor, labels: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let z = logits.reshape([-1]);
    let y = labels.reshape([-1]).to_kind(z.kind());
    let losses = z.clamp_min(0.0) - &z * &y + z.abs().neg().exp().log1p();
    let mut both = host(&Tensor::stack(&[&z, &losses], 0));
    let losses = both.split_off(both.len() / 2);
    (both, losses)
}

/// Fisher-Yates, from the last position down: one epoch's batch order.
fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
}

/// The labels in batch order.
fn labels_in_order(labels: &[f32], order: &[usize]) -> Vec<f32> {
    order.iter().map(|&i| labels[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_losses_match_the_f64_formula() {
        let logits = [0.3f32, -2.0, 4.0, -7.5, 30.0, -90.0];
        let labels = [1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0];
        let (z, losses) = host_points(&Tensor::from_slice(&logits), &Tensor::from_slice(&labels));
        assert_eq!(z, logits);
        for ((&z, &y), &loss) in logits.iter().zip(&labels).zip(&losses) {
            let want = crate::model::bce_from_logit(z as f64, y as f64);
            assert!(
                (loss as f64 - want).abs() <= 1e-6 * want.max(1.0),
                "{z} {y}: {loss} vs {want}"
            );
        }
    }

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

        // The ensemble's CPU arithmetic is our own: a panic there is caught the same way.
        let short = Dataset {
            x: vec![0.0; 4],
            y: vec![0.0, 1.0, 0.0],
        };
        let pair = [config.clone(), config.clone()];
        let result =
            std::panic::catch_unwind(|| train_ensemble(&pair, &short, Device::Cpu, |_| ()));
        let error = result
            .expect("no panic escapes")
            .expect_err("the run fails");
        assert!(
            format!("{error:#}").contains("an ensemble of 2 runs"),
            "{error:#}"
        );
    }
}
