//! R networks of one shape as one set of batched tensors: the ensemble engine's model.
//!
//! Parameters are a `[R, P]` tensor, row r being model r's flat vector in `model::layout` order,
//! so a row is exactly what the single-model `Mlp` holds. Activations are feature-major,
//! `[R, units, batch]`, so that each unit's values over a batch are contiguous. Every model sees
//! only its own weights and its own batch. Models may differ in their hidden activation: each
//! activation is applied to its own contiguous block of rows.
//!
//! The products are libtorch batched matrix products, one kernel launch for all models: the
//! engine's form on CUDA (on the CPU, `lanes.rs` does the same work faster).

use crate::config::Activation;
use crate::model::{layout, Forward, LayerSlot};
use tch::{Kind, Tensor};

/// One layer's views into the stacked parameter and gradient tensors (batched products only).
struct StackedLayer {
    kernel: Tensor,
    kernel_t: Tensor,
    bias: Tensor,
    grad_kernel: Tensor,
    grad_bias: Tensor,
}

/// A run of consecutive models sharing one activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    activation: Activation,
    start: i64,
    len: i64,
}

/// R MLPs with one logit output each, trained together. Holds no autograd state.
pub struct StackedMlp {
    /// Where each layer sits in a row of `params` and `grads`.
    pub slots: Vec<LayerSlot>,
    /// Every model's parameters, `[R, P]`.
    pub params: Tensor,
    /// The gradients of the last `compute_gradients` call, laid out like `params`.
    pub grads: Tensor,
    layers: Vec<StackedLayer>,
    blocks: Vec<Block>,
}

impl StackedMlp {
    /// Wraps `[R, P]` parameters laid out as `layout(widths)` per row; model r's hidden layers
    /// use `activations[r]`.
    pub fn from_rows(widths: &[usize], activations: &[Activation], params: Tensor) -> StackedMlp {
        let (slots, total) = layout(widths);
        let models = activations.len() as i64;
        assert_eq!(
            params.size(),
            [models, total as i64],
            "stacked parameters do not match the widths"
        );
        let params = params.contiguous();
        let grads = params.zeros_like();
        let view = |t: &Tensor, offset: usize, shape: [i64; 3]| {
            t.narrow(1, offset as i64, shape[1] * shape[2]).view(shape)
        };
        let layers = slots
            .iter()
            .map(|s| {
                let (inputs, units) = (s.inputs as i64, s.units as i64);
                let kernel = view(&params, s.kernel_offset, [models, inputs, units]);
                StackedLayer {
                    kernel_t: kernel.transpose(1, 2),
                    kernel,
                    bias: view(&params, s.bias_offset, [models, units, 1]),
                    grad_kernel: view(&grads, s.kernel_offset, [models, inputs, units]),
                    grad_bias: grads.narrow(1, s.bias_offset as i64, units),
                }
            })
            .collect();
        StackedMlp {
            slots,
            params,
            grads,
            layers,
            blocks: blocks(activations),
        }
    }

    /// Number of models.
    pub fn models(&self) -> i64 {
        self.params.size()[0]
    }

    /// Logits of every model for its inputs `x` (`[R, inputs, n]`), shape `[R, 1, n]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut a = x.shallow_clone();
        let last = self.layers.len() - 1;
        for l in 0..self.layers.len() {
            let z = self.dense(l, &a);
            a = if l < last { self.activate(&z) } else { z };
        }
        a
    }

    /// Forward and backward on one batch per model (`x`: `[R, inputs, b]`, `y`: `[R, 1, b]`):
    /// fills `grads` with each model's gradient of its own mean binary cross-entropy (from the
    /// logits) and returns the logits, `[R, 1, b]`. Summed over models, these losses have
    /// exactly these gradients, since no parameter is shared.
    pub fn compute_gradients(&mut self, x: &Tensor, y: &Tensor) -> Tensor {
        self.compute_gradients_with(x, y, false).0
    }

    /// `compute_gradients`, and with `signals` also each model's layer outputs and
    /// back-propagated gradients, `[R, T]` on the device, a row in `diagnostics::Signals` order.
    pub fn compute_gradients_with(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        signals: bool,
    ) -> (Tensor, Option<Tensor>) {
        let dense = |l: usize, a: &Tensor| self.dense(l, a);
        let pass = Forward::run(x, self.layers.len(), dense, |z| self.activate(z));
        let (inputs, pre, logits) = (pass.inputs, pass.pre, pass.logits);

        // d(mean BCE)/d(logit) = (sigmoid(logit) - y) / b, per model.
        let b = x.size()[2] as f64;
        let mut dz = (logits.sigmoid() - y) * (1.0 / b);

        // Backward: each layer's parameter gradients, then the gradient for the layer below.
        let mut backprop = Vec::new();
        for l in (0..self.layers.len()).rev() {
            if signals {
                backprop.push(dz.shallow_clone());
            }
            self.parameter_gradients(l, &inputs[l], &dz);
            if l > 0 {
                let da = self.backprop(l, &dz);
                dz = self.activate_backward(&da, &pre[l - 1], &inputs[l]);
            }
        }
        let signals = signals.then(|| {
            backprop.reverse();
            let r = self.models();
            let outputs = inputs[1..].iter().chain([&logits]);
            let parts: Vec<Tensor> = outputs
                .chain(&backprop)
                .map(|t| t.reshape([r, -1]))
                .collect();
            Tensor::cat(&parts, 1)
        });
        (logits, signals)
    }

    /// Layer l's pre-activations `[R, units, b]` from its input `a` (`[R, inputs, b]`).
    fn dense(&self, l: usize, a: &Tensor) -> Tensor {
        let layer = &self.layers[l];
        layer.bias.baddbmm(&layer.kernel_t, a, 1, 1)
    }

    /// Writes layer l's kernel and bias gradients into `grads` from its input `a` and the
    /// gradient `dz` with respect to its pre-activations.
    fn parameter_gradients(&mut self, l: usize, a: &Tensor, dz: &Tensor) {
        let layer = &mut self.layers[l];
        layer.grad_kernel.copy_(&a.bmm(&dz.transpose(1, 2)));
        layer
            .grad_bias
            .copy_(&dz.sum_dim_intlist(2, false, None::<Kind>));
    }

    /// The gradient with respect to layer l's input, `[R, inputs, b]`.
    fn backprop(&self, l: usize, dz: &Tensor) -> Tensor {
        self.layers[l].kernel.bmm(dz)
    }

    /// The hidden activation of each model applied to its rows of `z`.
    fn activate(&self, z: &Tensor) -> Tensor {
        if let [only] = self.blocks.as_slice() {
            return only.activation.forward(z);
        }
        let out = z.empty_like();
        for block in &self.blocks {
            let rows = |t: &Tensor| t.narrow(0, block.start, block.len);
            rows(&out).copy_(&block.activation.forward(&rows(z)));
        }
        out
    }

    /// The hidden activation's backward pass, each model's rows by its own rule.
    fn activate_backward(&self, grad: &Tensor, z: &Tensor, a: &Tensor) -> Tensor {
        if let [only] = self.blocks.as_slice() {
            return only.activation.backward(grad, z, a);
        }
        let out = grad.empty_like();
        for block in &self.blocks {
            let rows = |t: &Tensor| t.narrow(0, block.start, block.len);
            let part = block.activation.backward(&rows(grad), &rows(z), &rows(a));
            rows(&out).copy_(&part);
        }
        out
    }
}

/// Runs of consecutive models with the same activation.
fn blocks(activations: &[Activation]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for (r, &activation) in activations.iter().enumerate() {
        match blocks.last_mut() {
            Some(block) if block.activation == activation => block.len += 1,
            _ => blocks.push(Block {
                activation,
                start: r as i64,
                len: 1,
            }),
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mlp;

    #[test]
    fn activations_form_contiguous_blocks() {
        let (s, t) = (Activation::Sigmoid, Activation::Tanh);
        let got = blocks(&[s, s, t, s]);
        let starts: Vec<(i64, i64)> = got.iter().map(|b| (b.start, b.len)).collect();
        assert_eq!(starts, [(0, 2), (2, 1), (3, 1)]);
    }

    #[test]
    fn each_row_gets_the_gradient_its_own_network_would() {
        // Three models, two activations, different weights and different batches.
        let widths = [2, 4, 3, 1];
        let acts = [Activation::Tanh, Activation::Relu, Activation::Relu];
        let (_, total) = layout(&widths);
        tch::manual_seed(3);
        for (kind, tolerance) in [(Kind::Double, 1e-12), (Kind::Float, 1e-5)] {
            let options = (kind, tch::Device::Cpu);
            let params = Tensor::randn([3, total as i64], options);
            let x = Tensor::randn([3, 6, 2], options);
            let y = Tensor::from_slice(&[0.0f64, 1.0, 1.0, 0.0, 1.0, 0.0])
                .to_kind(kind)
                .view([1, 6, 1])
                .repeat([3, 1, 1]);
            let mut stacked = StackedMlp::from_rows(&widths, &acts, params.copy());
            let (x_t, y_t) = (x.transpose(1, 2), y.transpose(1, 2));
            let (logits, signals) = stacked.compute_gradients_with(&x_t, &y_t, true);
            let signals = signals.unwrap();
            for r in 0..3 {
                let mut alone = Mlp::from_flat(&widths, acts[r as usize], params.get(r).copy());
                let (want, want_signals) = alone.compute_gradients_with(&x.get(r), &y.get(r), true);
                let want_signals = want_signals.unwrap();
                assert!(
                    signals
                        .get(r)
                        .allclose(&want_signals, tolerance, tolerance, false),
                    "{kind:?} model {r} signals"
                );
                let got = logits.get(r).transpose(0, 1);
                assert!(got.allclose(&want, tolerance, tolerance, false), "{kind:?}");
                assert!(
                    stacked
                        .grads
                        .get(r)
                        .allclose(&alone.grads, tolerance, tolerance, false),
                    "{kind:?} model {r}"
                );
            }
        }
    }
}
