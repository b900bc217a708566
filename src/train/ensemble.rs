//! The ensemble engine: many networks of one shape trained at once as batched tensors.
//!
//! Each model keeps everything of its own that the single engine would give it: initial weights
//! from its seed's init stream, a batch order from its seed's shuffle stream, its learning rate,
//! initializer and activation. Only the arithmetic is shared, as one batched operation per step
//! where the single engine would issue one per model. A model that diverges is closed (its
//! history stops, as the single engine's would) and its rows are zeroed so that nothing
//! non-finite stays in flight; the other models never read those rows.

use super::history::{metrics, records_at, History, Points};
use super::{host, host_points, labels_in_order, shuffle, INIT_STREAM, SHUFFLE_STREAM};
use crate::config::{Activation, Init, RunConfig};
use crate::data::Dataset;
use crate::model::{initial_params, layout};
use crate::optim::Optimizer;
use crate::record::{EngineInfo, RunRecord};
use crate::stacked::StackedMlp;
use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What runs must share to train in one ensemble: the config with the knobs an ensemble can
/// vary per model (name, seed, initializer and its parameters, learning rate, activation)
/// blanked out. Two runs can share an ensemble exactly when their keys are equal.
pub fn ensemble_key(config: &RunConfig) -> RunConfig {
    let mut key = config.clone();
    key.name.clear();
    key.seed = 0;
    key.init = Init::Normal;
    (key.init_mean, key.init_sd, key.init_low, key.init_high) = (0.0, 0.0, 0.0, 0.0);
    key.optimizer.learning_rate = 0.0;
    key.activation = Activation::Linear;
    key
}

/// Refuses a set of configs that cannot train as one ensemble, saying what differs.
pub fn check_ensemble(configs: &[RunConfig]) -> Result<()> {
    let Some(first) = configs.first() else {
        bail!("an ensemble needs at least one run");
    };
    let key = ensemble_key(first);
    if let Some(other) = configs.iter().find(|c| ensemble_key(c) != key) {
        bail!(
            "runs {} and {} cannot train in one ensemble: they differ in more than seed, \
             initializer, learning rate and activation (shape, optimizer, data, epochs, batch or \
             recording)",
            first.name,
            other.name
        );
    }
    Ok(())
}

/// Trains `configs` together; see `train::train_ensemble`.
pub(super) fn train_many(
    configs: &[RunConfig],
    data: &Dataset,
    device: Device,
    mut on_epoch: impl FnMut(usize),
) -> Result<Vec<RunRecord>> {
    check_ensemble(configs)?;
    for config in configs {
        config.validate()?;
        config.check_size(Some(data.len()))?;
    }
    let started = Instant::now();
    let first = &configs[0];
    let models = configs.len();
    let n = data.len();
    let batch = first.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let widths = first.widths();
    let (slots, p) = layout(&widths);

    // Set-up: each model's weights and shuffle stream from its own seed; data on the device once.
    let mut initial = Vec::with_capacity(models * p);
    let mut shuffles = Vec::with_capacity(models);
    for config in configs {
        let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
        init_rng.set_stream(INIT_STREAM);
        initial.extend(initial_params(config, &mut init_rng));
        let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed);
        shuffle_rng.set_stream(SHUFFLE_STREAM);
        shuffles.push(shuffle_rng);
    }
    let params = Tensor::from_slice(&initial)
        .view([models as i64, p as i64])
        .to_device(device);
    let activations: Vec<Activation> = configs.iter().map(|c| c.activation).collect();
    let mut model = StackedMlp::from_rows(&widths, &activations, params);
    let rates: Vec<f64> = configs.iter().map(|c| c.optimizer.learning_rate).collect();
    let mut optimizer = Optimizer::per_row(&first.optimizer, &model.params, &rates);
    let (r, n64) = (models as i64, n as i64);
    // Feature-major, as the stacked model wants: [R, 2, n] points, [R, 1, n] labels.
    let x_all = Tensor::from_slice(&data.x).view([n64, 2]).to_device(device);
    let y_all = Tensor::from_slice(&data.y).to_device(device);
    let x_every = x_all
        .tr()
        .contiguous()
        .unsqueeze(0)
        .expand([r, 2, n64], false);
    let y_every = y_all.view([1, 1, n64]).expand([r, 1, n64], false);
    let epoch_logits = Tensor::zeros([r, n64], (Kind::Float, device));
    let (logits, losses) = host_points(&model.logits(&x_every), &y_every);
    let mut histories: Vec<History> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let before = metrics(Points::of_model(&logits, &losses, i, n), &data.y);
            History::new(config, &slots, n, &initial[i * p..(i + 1) * p], before)
        })
        .collect();
    let mut orders: Vec<Vec<usize>> = vec![(0..n).collect(); models];
    let mut global_step = 0;

    for epoch in 1..=first.epochs {
        // Every model's own batch order, drawn on the host, applied on the device in one gather.
        if first.shuffle {
            for (order, rng) in orders.iter_mut().zip(&mut shuffles) {
                shuffle(order, rng);
            }
        }
        let index: Vec<i64> = orders.iter().flatten().map(|&i| i as i64).collect();
        let index = Tensor::from_slice(&index).to_device(device);
        let x_epoch = x_all
            .index_select(0, &index)
            .view([r, n64, 2])
            .transpose(1, 2)
            .contiguous();
        let y_epoch = y_all.index_select(0, &index).view([r, 1, n64]);

        // The hot loop: one batched forward, backward and update for all models.
        for step in 0..steps_per_epoch {
            let start = (step * batch) as i64;
            let len = batch.min(n - step * batch) as i64;
            let (xb, yb) = (x_epoch.narrow(2, start, len), y_epoch.narrow(2, start, len));
            let logits = model.compute_gradients(&xb, &yb);
            epoch_logits
                .narrow(1, start, len)
                .copy_(&logits.view([r, len]));
            if records_at(first.grad_every, step, global_step) {
                let grads = host(&model.grads);
                for (i, history) in histories.iter_mut().enumerate() {
                    if history.is_open() {
                        let g = &grads[i * p..(i + 1) * p];
                        history.take_gradient(step, global_step, len as usize, g);
                    }
                }
            }
            optimizer.step(&mut model.params, &model.grads);
            global_step += 1;
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Interrupted.into());
            }
        }

        // Once per epoch: every open model's losses, accuracy and weights.
        let (logits, losses) = host_points(&epoch_logits, &y_epoch);
        let weights = host(&model.params);
        let mut closed = Vec::new();
        for (i, history) in histories.iter_mut().enumerate() {
            if history.is_open() {
                let labels = labels_in_order(&data.y, &orders[i]);
                let points = Points::of_model(&logits, &losses, i, n);
                if history.end_epoch(epoch, points, &labels, &weights[i * p..(i + 1) * p]) {
                    closed.push(i);
                }
            }
        }

        // Models that diverged are evaluated with the weights they stopped at, then zeroed.
        if !closed.is_empty() {
            let (logits, losses) = host_points(&model.logits(&x_every), &y_every);
            let mut mask = vec![false; models];
            for &i in &closed {
                let after = metrics(Points::of_model(&logits, &losses, i, n), &data.y);
                histories[i].evaluate_after(after);
                mask[i] = true;
            }
            let mask = Tensor::from_slice(&mask).view([r, 1]).to_device(device);
            let _ = model.params.masked_fill_(&mask, 0.0);
            optimizer.clear_rows(&mask);
        }
        on_epoch(epoch);
        if histories.iter().all(|h| !h.is_open()) {
            break;
        }
    }

    // After the last step: the whole set with the final weights, and one more gradient over it.
    let (logits, losses) = host_points(&model.logits(&x_every), &y_every);
    for (i, history) in histories.iter_mut().enumerate() {
        if history.is_open() {
            history.evaluate_after(metrics(Points::of_model(&logits, &losses, i, n), &data.y));
        }
    }
    if histories.iter().any(History::wants_final_gradient) {
        let logits = model.compute_gradients(&x_every, &y_every);
        let (_, losses) = host_points(&logits, &y_every);
        let grads = host(&model.grads);
        for (i, history) in histories.iter_mut().enumerate() {
            if history.wants_final_gradient() {
                let (losses, g) = (&losses[i * n..(i + 1) * n], &grads[i * p..(i + 1) * p]);
                history.take_final_gradient(losses, g);
            }
        }
    }

    let share = started.elapsed().as_secs_f64() / models as f64;
    let device = super::device_name(device);
    let engine = EngineInfo::ensemble(models);
    Ok(histories
        .into_iter()
        .map(|h| h.finish(data, &device, engine, share))
        .collect())
}
