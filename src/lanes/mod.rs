//! The ensemble engine's CPU arithmetic: R networks of one shape, one SIMD lane per model.
//!
//! On a CPU, libtorch spends more on dispatching the many tiny operations of an ensemble than on
//! their arithmetic. Here every value is stored with the models innermost (parameter j of all
//! models is one row of R floats; so is unit u at batch position b), so each loop of the forward
//! pass, the backward pass, the activations and the optimizer runs over R contiguous lanes and
//! vectorizes, with nothing to dispatch and no sums across lanes. Each lane's arithmetic depends
//! only on that lane's values, so a model's history does not depend on its neighbours.
//!
//! - `kernels`: the dense layer's three products;
//! - `activation`: every activation and derivative, element by element;
//! - `optim`: RMSprop, Adam and SGD with a learning rate per lane;
//! - `simd`: compiling each loop for AVX2 and FMA too, and a vectorizable e^x.

pub mod activation;
pub mod kernels;
pub mod optim;
pub mod simd;

use crate::config::Activation;
use crate::model::{layout, LayerSlot};
use kernels::Rows;

/// A run of consecutive lanes sharing one activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    activation: Activation,
    start: usize,
    len: usize,
}

/// R MLPs with one logit output each, lane-major.
pub struct Lanes {
    /// Where each layer sits in a model's flat parameter vector.
    pub slots: Vec<LayerSlot>,
    /// Number of models (lanes).
    pub models: usize,
    /// Every parameter of every model, `[P][R]`.
    pub params: Vec<f32>,
    /// The gradient of the last `compute_gradients` call, laid out like `params`.
    pub grads: Vec<f32>,
    blocks: Vec<Block>,
    /// Per layer, its pre-activations and outputs for the current batch, `[units][batch][R]`.
    pre: Vec<Vec<f32>>,
    post: Vec<Vec<f32>>,
    /// The gradient flowing back, and the one with respect to a layer's input.
    dz: Vec<f32>,
    da: Vec<f32>,
    /// When set, `compute_gradients` keeps each layer's back-propagated gradient in `kept`
    /// (`[units][batch][R]`), for `signals`.
    pub keep_signals: bool,
    kept: Vec<Vec<f32>>,
}

impl Lanes {
    /// Models whose flat parameters (`model::layout(widths)` order) are `rows`, model after model;
    /// model r's hidden layers use `activations[r]`.
    pub fn new(widths: &[usize], activations: &[Activation], rows: &[f32]) -> Lanes {
        let (slots, total) = layout(widths);
        let models = activations.len();
        assert_eq!(
            rows.len(),
            models * total,
            "parameters do not match the widths"
        );
        let mut params = vec![0.0; rows.len()];
        for (r, row) in rows.chunks_exact(total).enumerate() {
            for (j, &value) in row.iter().enumerate() {
                params[j * models + r] = value;
            }
        }
        let layers = slots.len();
        Lanes {
            slots,
            models,
            grads: vec![0.0; params.len()],
            params,
            blocks: blocks(activations),
            pre: vec![Vec::new(); layers],
            post: vec![Vec::new(); layers],
            dz: Vec::new(),
            da: Vec::new(),
            keep_signals: false,
            kept: vec![Vec::new(); layers],
        }
    }

    /// Lane-major values (`[P][R]`, as `params` and `grads`) model after model, `[R][P]`.
    pub fn by_model(&self, lane_major: &[f32]) -> Vec<f32> {
        transpose(lane_major, lane_major.len() / self.models, self.models)
    }

    /// Every model's logits for `batch` points whose features start at `rows` of `x`, written to
    /// `logits` (`[batch][R]`).
    pub fn logits(&mut self, x: &[f32], rows: Rows, batch: usize, logits: &mut [f32]) {
        self.forward(x, rows, batch);
        logits.copy_from_slice(&self.pre[self.slots.len() - 1]);
    }

    /// Forward and backward on one batch per model: `x` as in `logits`, labels `y` (`[batch][R]`).
    /// Fills `grads` with the gradient of `scale` times each model's summed binary cross-entropy
    /// (from the logits; `scale` is 1 / batch for the batch's mean) and writes the logits.
    pub fn compute_gradients(
        &mut self,
        x: &[f32],
        rows: Rows,
        y: &[f32],
        scale: f32,
        batch: usize,
        logits: &mut [f32],
    ) {
        self.forward(x, rows, batch);
        let last = self.slots.len() - 1;
        logits.copy_from_slice(&self.pre[last]);

        // d(loss)/d(logit) = (sigmoid(logit) - y) * scale.
        self.dz.resize(batch * self.models, 0.0);
        activation::logit_gradient(&self.pre[last], y, scale, &mut self.dz);

        // Backward: each layer's parameter gradients, then the gradient for the layer below.
        for l in (0..=last).rev() {
            let slot = self.slots[l];
            if self.keep_signals {
                self.kept[l].clone_from(&self.dz);
            }
            let (input, input_rows) = if l == 0 {
                (x, rows)
            } else {
                (
                    self.post[l - 1].as_slice(),
                    Rows::packed(batch, self.models),
                )
            };
            kernels::gradients(&mut self.grads, slot, input, input_rows, &self.dz, batch);
            if l > 0 {
                self.da.resize(slot.inputs * batch * self.models, 0.0);
                kernels::backprop(&self.params, slot, &self.dz, batch, &mut self.da);
                std::mem::swap(&mut self.dz, &mut self.da);
                let (z, a) = (&self.pre[l - 1], &self.post[l - 1]);
                if let [only] = self.blocks.as_slice() {
                    activation::backward(only.activation, &mut self.dz, z, a);
                    continue;
                }
                for_blocks(&self.blocks, |act, range| {
                    for (row, dz) in self.dz.chunks_exact_mut(self.models).enumerate() {
                        let span = row * self.models + range.start..row * self.models + range.end;
                        activation::backward(
                            act,
                            &mut dz[range.clone()],
                            &z[span.clone()],
                            &a[span],
                        );
                    }
                });
            }
        }
    }

    /// Each model's layer outputs and back-propagated gradients from the last
    /// `compute_gradients` with `keep_signals`, `[R][T]` with a row in `diagnostics::Signals`
    /// order.
    pub fn signals(&self) -> Vec<f32> {
        let r = self.models;
        let last = self.slots.len() - 1;
        let outputs = (0..=last).map(|l| {
            if l < last {
                &self.post[l]
            } else {
                &self.pre[l]
            }
        });
        let segments: Vec<&Vec<f32>> = outputs.chain(&self.kept).collect();
        let t = segments.iter().map(|s| s.len()).sum::<usize>() / r;
        let mut out = vec![0.0; r * t];
        let mut offset = 0;
        for segment in segments {
            for (k, row) in segment.chunks_exact(r).enumerate() {
                for (m, &v) in row.iter().enumerate() {
                    out[m * t + offset + k] = v;
                }
            }
            offset += segment.len() / r;
        }
        out
    }

    /// Zeroes every parameter of these lanes.
    pub fn close(&mut self, lanes: &[usize]) {
        for row in self.params.chunks_exact_mut(self.models) {
            lanes.iter().for_each(|&l| row[l] = 0.0);
        }
    }

    /// Fills `pre` and `post` for a batch.
    fn forward(&mut self, x: &[f32], rows: Rows, batch: usize) {
        let last = self.slots.len() - 1;
        for l in 0..=last {
            let slot = self.slots[l];
            let size = slot.units * batch * self.models;
            let mut z = std::mem::take(&mut self.pre[l]);
            z.resize(size, 0.0);
            if l == 0 {
                kernels::forward(&self.params, slot, x, rows, batch, &mut z);
            } else {
                let input = &self.post[l - 1];
                let input_rows = Rows::packed(batch, self.models);
                kernels::forward(&self.params, slot, input, input_rows, batch, &mut z);
            }
            if l < last {
                let mut a = std::mem::take(&mut self.post[l]);
                a.resize(size, 0.0);
                if let [only] = self.blocks.as_slice() {
                    activation::forward(only.activation, &z, &mut a);
                } else {
                    for_blocks(&self.blocks, |act, range| {
                        let rows = z
                            .chunks_exact(self.models)
                            .zip(a.chunks_exact_mut(self.models));
                        for (z, a) in rows {
                            activation::forward(act, &z[range.clone()], &mut a[range.clone()]);
                        }
                    });
                }
                self.post[l] = a;
            }
            self.pre[l] = z;
        }
    }
}

/// Calls `f` with each block's activation and lane range.
fn for_blocks(blocks: &[Block], mut f: impl FnMut(Activation, std::ops::Range<usize>)) {
    for block in blocks {
        f(block.activation, block.start..block.start + block.len);
    }
}

/// Runs of consecutive lanes with the same activation.
fn blocks(activations: &[Activation]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for (r, &activation) in activations.iter().enumerate() {
        match blocks.last_mut() {
            Some(block) if block.activation == activation => block.len += 1,
            _ => blocks.push(Block {
                activation,
                start: r,
                len: 1,
            }),
        }
    }
    blocks
}

/// `[rows][columns]` to `[columns][rows]`.
pub fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (i, row) in values.chunks_exact(columns).enumerate().take(rows) {
        for (j, &v) in row.iter().enumerate() {
            out[j * rows + i] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mlp;
    use tch::{Kind, Tensor};

    #[test]
    fn activations_form_contiguous_blocks() {
        let (s, t) = (Activation::Sigmoid, Activation::Tanh);
        let got: Vec<(usize, usize)> = blocks(&[s, s, t, s])
            .iter()
            .map(|b| (b.start, b.len))
            .collect();
        assert_eq!(got, [(0, 2), (2, 1), (3, 1)]);
    }

    /// Three models, two activations, each on its own batch: every lane's logits and gradients
    /// are what its own `Mlp` computes, to float32 rounding.
    #[test]
    fn each_lane_gets_the_gradient_its_own_network_would() {
        let widths = [2, 4, 3, 1];
        let acts = [Activation::Tanh, Activation::Relu, Activation::Tanh];
        let (_, total) = layout(&widths);
        let (models, batch) = (3, 6);
        let rows: Vec<f32> = (0..models * total)
            .map(|k| (k as f32 * 0.61).sin())
            .collect();
        // Points [2][batch][R] and labels [batch][R], different for every model.
        let x: Vec<f32> = (0..2 * batch * models)
            .map(|k| (k as f32 * 0.37).cos())
            .collect();
        let y: Vec<f32> = (0..batch * models).map(|k| (k % 2) as f32).collect();

        let mut lanes = Lanes::new(&widths, &acts, &rows);
        lanes.keep_signals = true;
        let mut logits = vec![0.0; batch * models];
        let scale = 1.0 / batch as f32;
        lanes.compute_gradients(
            &x,
            Rows::packed(batch, models),
            &y,
            scale,
            batch,
            &mut logits,
        );
        let grads = lanes.by_model(&lanes.grads);
        let signals = lanes.signals();
        let t = signals.len() / models;

        for r in 0..models {
            let params = Tensor::from_slice(&rows[r * total..(r + 1) * total]);
            let mut alone = Mlp::from_flat(&widths, acts[r], params);
            let xr: Vec<f32> = (0..batch)
                .flat_map(|b| [x[b * models + r], x[(batch + b) * models + r]])
                .collect();
            let yr: Vec<f32> = (0..batch).map(|b| y[b * models + r]).collect();
            let (want, want_signals) = alone.compute_gradients_with(
                &Tensor::from_slice(&xr).view([batch as i64, 2]),
                &Tensor::from_slice(&yr).view([batch as i64, 1]),
                true,
            );
            let want = Vec::<f32>::try_from(want.reshape([-1]).to_kind(Kind::Float)).unwrap();
            let want_signals = Vec::<f32>::try_from(want_signals.unwrap()).unwrap();
            let got: Vec<f32> = (0..batch).map(|b| logits[b * models + r]).collect();
            let want_grads = Vec::<f32>::try_from(&alone.grads).unwrap();
            assert_eq!(want_signals.len(), t);
            for (g, w) in got
                .iter()
                .zip(&want)
                .chain(grads[r * total..(r + 1) * total].iter().zip(&want_grads))
                .chain(signals[r * t..(r + 1) * t].iter().zip(&want_signals))
            {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "model {r}: {g} vs {w}"
                );
            }
        }
    }
}
