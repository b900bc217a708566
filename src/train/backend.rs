//! The ensemble engine's two forms of arithmetic behind one interface: libtorch batched tensors
//! (`StackedMlp`, for CUDA) and lane-major loops on the host (`Lanes`, for the CPU). The engine
//! loop in `ensemble.rs` draws batch orders, keeps histories and decides divergence; a backend
//! holds the weights, the optimizer state and the epoch's data, and hands back host copies,
//! always model after model (`[R][n]` for per-point values, `[R][P]` for parameters).

use super::{host, host_points, Arithmetic};
use crate::config::{Activation, OptimizerConfig};
use crate::data::Dataset;
use crate::lanes::kernels::Rows;
use crate::lanes::optim::LaneOptimizer;
use crate::lanes::{transpose, Lanes};
use crate::optim::Optimizer;
use crate::stacked::StackedMlp;
use tch::{Device, Kind, Tensor};

/// A recorded step's host copies, each `[R][P]`.
pub struct Recorded {
    /// The gradients the update used.
    pub grads: Vec<f32>,
    /// The weights before the update.
    pub before: Vec<f32>,
    /// The weights after it.
    pub after: Vec<f32>,
    /// Each model's layer outputs and back-propagated gradients over the batch, `[R][T]` with a
    /// row in `diagnostics::Signals` order; only when the setup asked for them.
    pub signals: Option<Vec<f32>>,
}

/// What the engine loop asks of the arithmetic.
pub trait Backend {
    /// Takes this epoch's batch order of every model.
    fn start_epoch(&mut self, orders: &[&[usize]]);

    /// One step on points `start..start + len` of every model's order; with `record`, returns
    /// the gradients and the weights just before and after the update.
    fn step(&mut self, start: usize, len: usize, record: bool) -> Option<Recorded>;

    /// The epoch's logits and their losses (in batch order, `[R][n]` each) and the weights after
    /// its last update (`[R][P]`).
    fn end_epoch(&mut self) -> (Vec<f32>, Vec<f32>, Vec<f32>);

    /// Logits and losses of every model on the whole data set in its stored order, `[R][n]`.
    fn evaluate(&mut self) -> (Vec<f32>, Vec<f32>);

    /// Every model's losses (`[R][n]`) and gradient (`[R][P]`) over the whole data set.
    fn full_gradient(&mut self) -> (Vec<f32>, Vec<f32>);

    /// Zeroes these models' weights and optimizer state.
    fn close(&mut self, models: &[usize]);
}

/// What every backend starts from.
pub struct Setup<'a> {
    /// Layer widths, input to output.
    pub widths: &'a [usize],
    /// Each model's hidden activation.
    pub activations: &'a [Activation],
    /// Each model's initial flat parameters, model after model (`[R][P]`).
    pub initial: &'a [f32],
    /// The optimizer's rule and constants, shared.
    pub optimizer: &'a OptimizerConfig,
    /// Each model's learning rate.
    pub rates: &'a [f64],
    /// The training data, shared.
    pub data: &'a Dataset,
    /// Whether recorded steps copy out the signals of `diagnostics::Signals`.
    pub signals: bool,
}

/// The backend of the chosen form, its data on `device`.
pub fn new(arithmetic: Arithmetic, device: Device, setup: Setup) -> Box<dyn Backend> {
    match arithmetic {
        Arithmetic::Lanes => Box::new(LaneBackend::new(setup)),
        Arithmetic::Tensors => Box::new(TensorBackend::new(setup, device)),
    }
}

/// Batched libtorch tensors on any device, activations `[R, units, n]`.
struct TensorBackend {
    model: StackedMlp,
    optimizer: Optimizer,
    x_all: Tensor,
    y_all: Tensor,
    x_every: Tensor,
    y_every: Tensor,
    x_epoch: Tensor,
    y_epoch: Tensor,
    epoch_logits: Tensor,
    signals: bool,
}

impl TensorBackend {
    fn new(setup: Setup, device: Device) -> Self {
        let (r, n) = (setup.activations.len() as i64, setup.data.len() as i64);
        let params = Tensor::from_slice(setup.initial)
            .view([r, -1])
            .to_device(device);
        let model = StackedMlp::from_rows(setup.widths, setup.activations, params);
        let optimizer = Optimizer::per_row(setup.optimizer, &model.params, setup.rates);
        let x_all = Tensor::from_slice(&setup.data.x)
            .view([n, 2])
            .to_device(device);
        let y_all = Tensor::from_slice(&setup.data.y).to_device(device);
        let x_every = x_all
            .tr()
            .contiguous()
            .unsqueeze(0)
            .expand([r, 2, n], false);
        let y_every = y_all.view([1, 1, n]).expand([r, 1, n], false);
        TensorBackend {
            model,
            optimizer,
            x_epoch: x_every.shallow_clone(),
            y_epoch: y_every.shallow_clone(),
            epoch_logits: Tensor::zeros([r, n], (Kind::Float, device)),
            signals: setup.signals,
            x_all,
            y_all,
            x_every,
            y_every,
        }
    }
}

impl Backend for TensorBackend {
    fn start_epoch(&mut self, orders: &[&[usize]]) {
        let (r, n) = (orders.len() as i64, orders[0].len() as i64);
        let index: Vec<i64> = orders
            .iter()
            .flat_map(|o| o.iter())
            .map(|&i| i as i64)
            .collect();
        let index = Tensor::from_slice(&index).to_device(self.x_all.device());
        let x = self.x_all.index_select(0, &index).view([r, n, 2]);
        self.x_epoch = x.transpose(1, 2).contiguous();
        self.y_epoch = self.y_all.index_select(0, &index).view([r, 1, n]);
    }

    fn step(&mut self, start: usize, len: usize, record: bool) -> Option<Recorded> {
        let (start, len) = (start as i64, len as i64);
        let xb = self.x_epoch.narrow(2, start, len);
        let yb = self.y_epoch.narrow(2, start, len);
        let want_signals = record && self.signals;
        let (logits, signals) = self.model.compute_gradients_with(&xb, &yb, want_signals);
        let r = self.model.models();
        self.epoch_logits
            .narrow(1, start, len)
            .copy_(&logits.view([r, len]));
        let before = record.then(|| (host(&self.model.grads), host(&self.model.params)));
        self.optimizer
            .step(&mut self.model.params, &self.model.grads);
        before.map(|(grads, before)| Recorded {
            grads,
            before,
            after: host(&self.model.params),
            signals: signals.map(|s| host(&s)),
        })
    }

    fn end_epoch(&mut self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (logits, losses) = host_points(&self.epoch_logits, &self.y_epoch);
        (logits, losses, host(&self.model.params))
    }

    fn evaluate(&mut self) -> (Vec<f32>, Vec<f32>) {
        host_points(&self.model.logits(&self.x_every), &self.y_every)
    }

    fn full_gradient(&mut self) -> (Vec<f32>, Vec<f32>) {
        let logits = self.model.compute_gradients(&self.x_every, &self.y_every);
        let (_, losses) = host_points(&logits, &self.y_every);
        (losses, host(&self.model.grads))
    }

    fn close(&mut self, models: &[usize]) {
        let r = self.model.models() as usize;
        let mut mask = vec![false; r];
        models.iter().for_each(|&m| mask[m] = true);
        let mask = Tensor::from_slice(&mask)
            .view([r as i64, 1])
            .to_device(self.model.params.device());
        let _ = self.model.params.masked_fill_(&mask, 0.0);
        self.optimizer.clear_rows(&mask);
    }
}

/// Points evaluated (or back-propagated) at a time over the whole data set, to bound the
/// activations held: `[units][chunk][R]` floats per layer.
const CHUNK: usize = 256;

/// Lane-major arrays on the host: the CPU form.
struct LaneBackend {
    model: Lanes,
    optimizer: LaneOptimizer,
    data: Dataset,
    /// This epoch's points `[2][n][R]` and labels `[n][R]`, in every model's order.
    x_epoch: Vec<f32>,
    y_epoch: Vec<f32>,
    /// The logits each step produced, `[n][R]`.
    epoch_logits: Vec<f32>,
    signals: bool,
}

impl LaneBackend {
    fn new(setup: Setup) -> Self {
        let model = Lanes::new(setup.widths, setup.activations, setup.initial);
        let optimizer = LaneOptimizer::new(setup.optimizer, &model.params, setup.rates);
        let size = setup.data.len() * setup.activations.len();
        LaneBackend {
            model,
            optimizer,
            data: setup.data.clone(),
            x_epoch: vec![0.0; 2 * size],
            y_epoch: vec![0.0; size],
            epoch_logits: vec![0.0; size],
            signals: setup.signals,
        }
    }

    /// Fills points `[2][len][R]` and labels `[len][R]` where model r's point b is
    /// `index(r, b)`.
    fn gather(&self, len: usize, index: impl Fn(usize, usize) -> usize) -> (Vec<f32>, Vec<f32>) {
        let r = self.model.models;
        let (mut x, mut y) = (vec![0.0; 2 * len * r], vec![0.0; len * r]);
        for b in 0..len {
            for m in 0..r {
                let point = index(m, b);
                x[b * r + m] = self.data.x[2 * point];
                x[(len + b) * r + m] = self.data.x[2 * point + 1];
                y[b * r + m] = self.data.y[point];
            }
        }
        (x, y)
    }

    /// Losses of logits against labels, both `[n][R]`, returned model after model.
    fn by_model_points(&self, logits: &[f32], labels: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (n, r) = (logits.len() / self.model.models, self.model.models);
        let as_tensor = |v: &[f32]| Tensor::from_slice(&transpose(v, n, r));
        host_points(&as_tensor(logits), &as_tensor(labels))
    }

    /// Runs `each(x, y, chunk_len)` over the whole data set in its stored order, CHUNK points
    /// at a time, every model on the same points.
    fn over_data(&mut self, mut each: impl FnMut(&mut Lanes, &[f32], &[f32], usize, usize)) {
        let n = self.data.len();
        for start in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - start);
            let (x, y) = self.gather(len, |_, b| start + b);
            each(&mut self.model, &x, &y, start, len);
        }
    }
}

impl Backend for LaneBackend {
    fn start_epoch(&mut self, orders: &[&[usize]]) {
        let n = self.data.len();
        let (x, y) = self.gather(n, |m, b| orders[m][b]);
        (self.x_epoch, self.y_epoch) = (x, y);
    }

    fn step(&mut self, start: usize, len: usize, record: bool) -> Option<Recorded> {
        let (n, r) = (self.data.len(), self.model.models);
        let rows = Rows {
            offset: start * r,
            unit_stride: n * r,
        };
        let y = &self.y_epoch[start * r..(start + len) * r];
        let logits = &mut self.epoch_logits[start * r..(start + len) * r];
        let scale = 1.0 / len as f32;
        self.model.keep_signals = record && self.signals;
        self.model
            .compute_gradients(&self.x_epoch, rows, y, scale, len, logits);
        let model = &self.model;
        let before = record.then(|| (model.by_model(&model.grads), model.by_model(&model.params)));
        let signals = self.model.keep_signals.then(|| self.model.signals());
        self.model.keep_signals = false;
        self.optimizer
            .step(&mut self.model.params, &self.model.grads);
        before.map(|(grads, before)| Recorded {
            grads,
            before,
            after: self.model.by_model(&self.model.params),
            signals,
        })
    }

    fn end_epoch(&mut self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (logits, losses) = self.by_model_points(&self.epoch_logits, &self.y_epoch);
        (logits, losses, self.model.by_model(&self.model.params))
    }

    fn evaluate(&mut self) -> (Vec<f32>, Vec<f32>) {
        let r = self.model.models;
        let n = self.data.len();
        let (mut logits, mut labels) = (vec![0.0; n * r], vec![0.0; n * r]);
        self.over_data(|model, x, y, start, len| {
            let out = &mut logits[start * r..(start + len) * r];
            model.logits(x, Rows::packed(len, r), len, out);
            labels[start * r..(start + len) * r].copy_from_slice(y);
        });
        self.by_model_points(&logits, &labels)
    }

    fn full_gradient(&mut self) -> (Vec<f32>, Vec<f32>) {
        // The mean over all n points is the sum over chunks of each chunk's sum scaled by 1/n.
        let (n, r) = (self.data.len(), self.model.models);
        let (mut logits, mut labels) = (vec![0.0; n * r], vec![0.0; n * r]);
        let mut total = vec![0.0f32; self.model.params.len()];
        self.over_data(|model, x, y, start, len| {
            let out = &mut logits[start * r..(start + len) * r];
            model.compute_gradients(x, Rows::packed(len, r), y, 1.0 / n as f32, len, out);
            labels[start * r..(start + len) * r].copy_from_slice(y);
            total
                .iter_mut()
                .zip(&model.grads)
                .for_each(|(t, g)| *t += g);
        });
        let (_, losses) = self.by_model_points(&logits, &labels);
        (losses, self.model.by_model(&total))
    }

    fn close(&mut self, models: &[usize]) {
        self.model.close(models);
        self.optimizer.clear(models);
    }
}
