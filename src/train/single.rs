//! The single-model engine: one network, one batch at a time. The reference the ensemble engine
//! is checked against, and the faster choice for one run.

use super::history::{metrics, records_at, History, Points, Step};
use super::{host, host_points, labels_in_order, shuffle, INIT_STREAM, SHUFFLE_STREAM};
use crate::config::RunConfig;
use crate::data::Dataset;
use crate::model::Mlp;
use crate::optim::Optimizer;
use crate::record::{EngineInfo, RunRecord};
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Trains one network; see `train::train`.
pub(super) fn train_one(
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
    let slots = model.slots.clone();
    let evaluate = |model: &Mlp| {
        let (logits, losses) = host_points(&model.logits(&x_all), &y_all);
        metrics(
            Points {
                logits: &logits,
                losses: &losses,
            },
            &data.y,
        )
    };
    let before = evaluate(&model);
    let mut history = History::new(config, &slots, n, &host(&model.params), before);
    let mut order: Vec<usize> = (0..n).collect();
    let mut global_step = 0;

    for epoch in 1..=config.epochs {
        // This epoch's batch order, drawn on the host and applied on the device in one gather.
        if config.shuffle {
            shuffle(&mut order, &mut shuffle_rng);
        }
        let index: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let index = Tensor::from_slice(&index).to_device(device);
        let (x_epoch, y_epoch) = (x_all.index_select(0, &index), y_all.index_select(0, &index));

        // The hot loop: forward, backward, maybe a record, update.
        for step in 0..steps_per_epoch {
            let start = (step * batch) as i64;
            let len = batch.min(n - step * batch) as i64;
            let (xb, yb) = (x_epoch.narrow(0, start, len), y_epoch.narrow(0, start, len));
            let record = records_at(config.grad_every, step, global_step);
            let want_signals = record && config.record.diagnostics();
            let (logits, signals) = model.compute_gradients_with(&xb, &yb, want_signals);
            epoch_logits
                .narrow(0, start, len)
                .copy_(&logits.view([len]));
            if record {
                let (grads, before) = (host(&model.grads), host(&model.params));
                let signals = signals.map(|s| host(&s));
                optimizer.step(&mut model.params, &model.grads);
                let at = Step {
                    step,
                    global_step,
                    samples: len as usize,
                };
                let after = host(&model.params);
                history.take_gradient(at, &grads, (&before, &after), signals.as_deref());
            } else {
                optimizer.step(&mut model.params, &model.grads);
            }
            global_step += 1;
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Interrupted.into());
            }
        }

        // Once per epoch: losses and accuracy from the logits each batch produced, and weights.
        let labels = labels_in_order(&data.y, &order);
        let (logits, losses) = host_points(&epoch_logits, &y_epoch);
        let points = Points {
            logits: &logits,
            losses: &losses,
        };
        let diverged = history.end_epoch(epoch, points, &labels, &host(&model.params));
        on_epoch(epoch);
        if diverged {
            break;
        }
    }

    // After the last step: the whole set with the final weights, and one more gradient over it.
    history.evaluate_after(evaluate(&model));
    if history.wants_final_gradient() {
        let logits = model.compute_gradients(&x_all, &y_all);
        let (_, losses) = host_points(&logits, &y_all);
        history.take_final_gradient(&losses, &host(&model.grads));
    }

    let engine = EngineInfo::single();
    let device = super::device_name(device);
    Ok(history.finish(data, &device, engine, started.elapsed().as_secs_f64()))
}
