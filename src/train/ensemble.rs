//! The ensemble engine: many networks of one shape trained at once, every step one pass of
//! shared arithmetic (lane-major loops on the CPU, batched tensors on CUDA; see `backend`).
//!
//! Each model keeps everything of its own that the single engine would give it: initial weights
//! from its seed's init stream, a batch order from its seed's shuffle stream, its learning rate,
//! initializer and activation. Only the arithmetic is shared: one pass over all models per step
//! where the single engine would make one per model. A model that diverges is closed (its
//! history stops, as the single engine's would) and its rows are zeroed so that nothing
//! non-finite stays in flight; the other models never read those rows.

use super::backend;
use super::history::{metrics, records_at, History, Points, Step};
use super::{labels_in_order, shuffle, INIT_STREAM, SHUFFLE_STREAM};
use crate::config::{Activation, Init, RunConfig};
use crate::data::Dataset;
use crate::diagnostics::Signals;
use crate::model::{initial_params, layout};
use crate::pool::for_each_parallel;
use crate::record::{EngineInfo, RunRecord};
use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::Device;

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
    arithmetic: super::Arithmetic,
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

    // Set-up: each model's weights and shuffle stream from its own seed; data in place once.
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
    let activations: Vec<Activation> = configs.iter().map(|c| c.activation).collect();
    let rates: Vec<f64> = configs.iter().map(|c| c.optimizer.learning_rate).collect();
    let setup = backend::Setup {
        widths: &widths,
        activations: &activations,
        initial: &initial,
        optimizer: &first.optimizer,
        rates: &rates,
        data,
        signals: first.record.diagnostics(),
    };
    let mut backend = backend::new(arithmetic, device, setup);
    let (logits, losses) = backend.evaluate();
    let histories: Vec<History> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let before = metrics(Points::of_model(&logits, &losses, i, n), &data.y);
            History::new(config, &slots, n, &initial[i * p..(i + 1) * p], before)
        })
        .collect();
    // Per-model host work (shuffles, records) on every core when the arithmetic runs on a GPU;
    // on the CPU the sweep's workers already hold the cores.
    let threads = if device == Device::Cpu {
        1
    } else {
        crate::pool::default_jobs()
    };
    let mut models_state: Vec<ModelState> = histories
        .into_iter()
        .zip(shuffles)
        .map(|(history, rng)| ModelState {
            history,
            rng,
            order: (0..n).collect(),
            closing: false,
        })
        .collect();
    let mut global_step = 0;

    for epoch in 1..=first.epochs {
        // Every model's own batch order, drawn on the host.
        if first.shuffle {
            for_each_parallel(&mut models_state, threads, |_, m| {
                shuffle(&mut m.order, &mut m.rng)
            });
        }
        let orders: Vec<&[usize]> = models_state.iter().map(|m| m.order.as_slice()).collect();
        backend.start_epoch(&orders);

        // The hot loop: one forward, backward and update for all models.
        for step in 0..steps_per_epoch {
            let (start, len) = (step * batch, batch.min(n - step * batch));
            let record = records_at(first.grad_every, step, global_step);
            if let Some(copies) = backend.step(start, len, record) {
                let at = Step {
                    step,
                    global_step,
                    samples: len,
                };
                let t = Signals::len(&slots, len);
                for_each_parallel(&mut models_state, threads, |i, m| {
                    if m.history.is_open() {
                        let rows = i * p..(i + 1) * p;
                        let weights = (&copies.before[rows.clone()], &copies.after[rows.clone()]);
                        let signals = copies.signals.as_ref().map(|s| &s[i * t..(i + 1) * t]);
                        m.history
                            .take_gradient(at, &copies.grads[rows], weights, signals);
                    }
                });
            }
            global_step += 1;
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Interrupted.into());
            }
        }

        // Once per epoch: every open model's losses, accuracy and weights.
        let (logits, losses, weights) = backend.end_epoch();
        for_each_parallel(&mut models_state, threads, |i, m| {
            if m.history.is_open() {
                let labels = labels_in_order(&data.y, &m.order);
                let points = Points::of_model(&logits, &losses, i, n);
                m.closing =
                    m.history
                        .end_epoch(epoch, points, &labels, &weights[i * p..(i + 1) * p]);
            }
        });
        let closed: Vec<usize> = (0..models).filter(|&i| models_state[i].closing).collect();

        // Models that diverged are evaluated with the weights they stopped at, then zeroed.
        if !closed.is_empty() {
            let (logits, losses) = backend.evaluate();
            for &i in &closed {
                let after = metrics(Points::of_model(&logits, &losses, i, n), &data.y);
                models_state[i].history.evaluate_after(after);
                models_state[i].closing = false;
            }
            backend.close(&closed);
        }
        on_epoch(epoch);
        if models_state.iter().all(|m| !m.history.is_open()) {
            break;
        }
    }

    // After the last step: the whole set with the final weights, and one more gradient over it.
    let (logits, losses) = backend.evaluate();
    for_each_parallel(&mut models_state, threads, |i, m| {
        if m.history.is_open() {
            let after = metrics(Points::of_model(&logits, &losses, i, n), &data.y);
            m.history.evaluate_after(after);
        }
    });
    if models_state
        .iter()
        .any(|m| m.history.wants_final_gradient())
    {
        let (losses, grads) = backend.full_gradient();
        for_each_parallel(&mut models_state, threads, |i, m| {
            if m.history.wants_final_gradient() {
                let (losses, g) = (&losses[i * n..(i + 1) * n], &grads[i * p..(i + 1) * p]);
                m.history.take_final_gradient(losses, g);
            }
        });
    }

    let share = started.elapsed().as_secs_f64() / models as f64;
    let device = super::device_name(device);
    let engine = EngineInfo::ensemble(models);
    Ok(models_state
        .into_iter()
        .map(|m| m.history.finish(data, &device, engine, share))
        .collect())
}

/// One model's host-side state in the ensemble.
struct ModelState<'a> {
    history: History<'a>,
    /// Its own shuffle stream and this epoch's batch order.
    rng: ChaCha8Rng,
    order: Vec<usize>,
    /// Diverged in the epoch just closed, not yet evaluated.
    closing: bool,
}
