//! R networks of one shape as one set of batched tensors: the ensemble engine's model.
//!
//! Parameters are a `[R, P]` tensor, row r being model r's flat vector in `model::layout` order,
//! so a row is exactly what the single-model `Mlp` holds. Each layer's kernels are a `[R, in,
//! out]` view and its biases a `[R, 1, out]` view of it; forward and backward are batched matrix
//! products, so every model sees only its own weights and its own batch. Models may differ in
//! their hidden activation: each activation is applied to its own contiguous block of rows.

use crate::config::Activation;
use crate::model::{layout, LayerSlot};
use tch::{Kind, Tensor};

/// One layer's views into the stacked parameter and gradient tensors.
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
                    bias: view(&params, s.bias_offset, [models, 1, units]),
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

    /// Logits of every model for its inputs `x` (`[R, n, inputs]`), shape `[R, n, 1]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut a = x.shallow_clone();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let z = layer.bias.baddbmm(&a, &layer.kernel, 1, 1);
            a = if l < last { self.activate(&z) } else { z };
        }
        a
    }

    /// Forward and backward on one batch per model (`x`: `[R, b, inputs]`, `y`: `[R, b, 1]`):
    /// fills `grads` with each model's gradient of its own mean binary cross-entropy (from the
    /// logits) and returns the logits, `[R, b, 1]`. Summed over models, these losses have
    /// exactly these gradients, since no parameter is shared.
    pub fn compute_gradients(&mut self, x: &Tensor, y: &Tensor) -> Tensor {
        // Forward, keeping each layer's input and pre-activation for the backward pass.
        let last = self.layers.len() - 1;
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut pre = Vec::with_capacity(self.layers.len());
        let mut a = x.shallow_clone();
        for (l, layer) in self.layers.iter().enumerate() {
            let z = layer.bias.baddbmm(&a, &layer.kernel, 1, 1);
            let next = if l < last {
                self.activate(&z)
            } else {
                z.shallow_clone()
            };
            inputs.push(a);
            pre.push(z);
            a = next;
        }
        let logits = a;

        // d(mean BCE)/d(logit) = (sigmoid(logit) - y) / b, per model.
        let b = x.size()[1] as f64;
        let mut dz = (logits.sigmoid() - y) * (1.0 / b);

        // Backward, writing straight into the stacked gradient's views.
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let _ = inputs[l].transpose(1, 2).bmm_out(&layer.grad_kernel, &dz);
            let _ = dz.sum_intlist_out(&layer.grad_bias, [1i64].as_slice(), false, None::<Kind>);
            if l > 0 {
                let da = dz.bmm(&layer.kernel_t);
                dz = self.activate_backward(&da, &pre[l - 1], &inputs[l]);
            }
        }
        logits
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
        let params = Tensor::randn([3, total as i64], (Kind::Double, tch::Device::Cpu));
        let x = Tensor::randn([3, 6, 2], (Kind::Double, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0.0f64, 1.0, 1.0, 0.0, 1.0, 0.0])
            .view([1, 6, 1])
            .repeat([3, 1, 1]);
        let mut stacked = StackedMlp::from_rows(&widths, &acts, params.copy());
        let logits = stacked.compute_gradients(&x, &y);
        for r in 0..3 {
            let mut alone = Mlp::from_flat(&widths, acts[r as usize], params.get(r).copy());
            let want = alone.compute_gradients(&x.get(r), &y.get(r));
            assert!(logits.get(r).allclose(&want, 1e-12, 1e-12, false));
            assert!(
                stacked
                    .grads
                    .get(r)
                    .allclose(&alone.grads, 1e-12, 1e-12, false),
                "model {r}"
            );
        }
    }
}
