//! The multilayer perceptron and its hand-written back-propagation.
//!
//! All parameters live in one flat tensor, and all gradients in another, with each layer's
//! kernel and bias a view into them. The optimizer then updates the whole network in a handful
//! of libtorch calls, and a recording copies every gradient to the host in a single transfer.
//! Kernels use Keras's layout, `[inputs, units]`, so that `z = x @ kernel + bias`.

use crate::config::{Activation, RunConfig};
use crate::init::draw_kernel;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// Where one layer's kernel and bias sit in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    /// Input width.
    pub inputs: usize,
    /// Output width (units).
    pub units: usize,
    /// Offset of the kernel's first entry (row-major `[inputs, units]`).
    pub kernel_offset: usize,
    /// Offset of the bias's first entry.
    pub bias_offset: usize,
}

impl LayerSlot {
    /// This layer's kernel within a flat parameter (or gradient) vector, row-major.
    pub fn kernel<'a>(&self, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.kernel_offset..self.bias_offset]
    }

    /// This layer's bias within a flat parameter (or gradient) vector.
    pub fn bias<'a>(&self, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.bias_offset..self.bias_offset + self.units]
    }
}

/// Lays the layers of a network with these widths end to end: kernel, then bias, layer by layer.
pub fn layout(widths: &[usize]) -> (Vec<LayerSlot>, usize) {
    let mut slots = Vec::with_capacity(widths.len() - 1);
    let mut offset = 0;
    for pair in widths.windows(2) {
        let (inputs, units) = (pair[0], pair[1]);
        slots.push(LayerSlot {
            inputs,
            units,
            kernel_offset: offset,
            bias_offset: offset + inputs * units,
        });
        offset += inputs * units + units;
    }
    (slots, offset)
}

/// A fresh flat parameter vector for `config`: each kernel drawn from its initializer in layer
/// order, biases zero.
pub fn initial_params(config: &RunConfig, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (slots, total) = layout(&config.widths());
    let mut flat = vec![0f32; total];
    for slot in &slots {
        let kernel = draw_kernel(config, slot.inputs, slot.units, rng);
        flat[slot.kernel_offset..slot.bias_offset].copy_from_slice(&kernel);
    }
    flat
}

/// Views of one layer into the flat parameter and gradient tensors.
struct LayerViews {
    kernel: Tensor,
    kernel_t: Tensor,
    bias: Tensor,
    grad_kernel: Tensor,
    grad_bias: Tensor,
}

/// An MLP with one logit output. Holds no autograd state: nothing here builds a graph.
pub struct Mlp {
    /// Hidden-layer activation (the output layer is linear: its logit goes to the loss).
    pub activation: Activation,
    /// Where each layer sits in `params` and `grads`.
    pub slots: Vec<LayerSlot>,
    /// Every kernel and bias, flat, in `slots` order.
    pub params: Tensor,
    /// The gradient of the last `compute_gradients` call, laid out like `params`.
    pub grads: Tensor,
    views: Vec<LayerViews>,
}

impl Mlp {
    /// Wraps a flat parameter tensor (any float kind, any device) laid out as `layout(widths)`.
    pub fn from_flat(widths: &[usize], activation: Activation, params: Tensor) -> Mlp {
        let (slots, total) = layout(widths);
        assert_eq!(
            params.size(),
            [total as i64],
            "flat parameters do not match the widths"
        );
        let grads = params.zeros_like();
        let views = slots
            .iter()
            .map(|s| {
                let view = |t: &Tensor, offset: usize, shape: &[i64]| {
                    let len: i64 = shape.iter().product();
                    t.narrow(0, offset as i64, len).view(shape)
                };
                let kernel_shape = [s.inputs as i64, s.units as i64];
                let kernel = view(&params, s.kernel_offset, &kernel_shape);
                LayerViews {
                    kernel_t: kernel.tr(),
                    kernel,
                    bias: view(&params, s.bias_offset, &[s.units as i64]),
                    grad_kernel: view(&grads, s.kernel_offset, &kernel_shape),
                    grad_bias: view(&grads, s.bias_offset, &[s.units as i64]),
                }
            })
            .collect();
        Mlp {
            activation,
            slots,
            params,
            grads,
            views,
        }
    }

    /// Draws a fresh network for `config`: kernels from its initializer, biases zero (float32).
    pub fn init(config: &RunConfig, rng: &mut ChaCha8Rng, device: Device) -> Mlp {
        let params = Tensor::from_slice(&initial_params(config, rng)).to_device(device);
        Mlp::from_flat(&config.widths(), config.activation, params)
    }

    /// Logits for the inputs `x` (`[n, inputs]`), shape `[n, 1]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut a = x.shallow_clone();
        let last = self.views.len() - 1;
        for (l, layer) in self.views.iter().enumerate() {
            let z = layer.bias.addmm(&a, &layer.kernel);
            a = if l < last {
                self.activation.forward(&z)
            } else {
                z
            };
        }
        a
    }

    /// Forward and backward on one batch: fills `grads` with the gradient of the mean binary
    /// cross-entropy (computed from the logits) and returns the logits, `[n, 1]`.
    pub fn compute_gradients(&mut self, x: &Tensor, y: &Tensor) -> Tensor {
        self.compute_gradients_with(x, y, false).0
    }

    /// `compute_gradients`, and with `signals` also every layer's outputs and back-propagated
    /// gradient, flat on the device in `diagnostics::Signals` order (`[units][n]` each).
    pub fn compute_gradients_with(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        signals: bool,
    ) -> (Tensor, Option<Tensor>) {
        let dense = |l: usize, a: &Tensor| {
            let layer = &self.views[l];
            layer.bias.addmm(a, &layer.kernel)
        };
        let pass = Forward::run(x, self.views.len(), dense, |z| self.activation.forward(z));
        let (inputs, pre, logits) = (pass.inputs, pass.pre, pass.logits);

        // d(mean BCE)/d(logit) = (sigmoid(logit) - y) / n.
        let n = x.size()[0] as f64;
        let mut dz = (logits.sigmoid() - y) * (1.0 / n);

        // Backward, writing straight into the flat gradient's views.
        let mut backprop = Vec::new();
        for l in (0..self.views.len()).rev() {
            if signals {
                backprop.push(dz.shallow_clone());
            }
            let layer = &self.views[l];
            let _ = inputs[l].tr().mm_out(&layer.grad_kernel, &dz);
            let _ = dz.sum_intlist_out(&layer.grad_bias, [0i64].as_slice(), false, None::<Kind>);
            if l > 0 {
                let da = dz.mm(&layer.kernel_t);
                dz = self.activation.backward(&da, &pre[l - 1], &inputs[l]);
            }
        }
        let signals = signals.then(|| {
            backprop.reverse();
            let outputs = inputs[1..].iter().chain([&logits]);
            let parts: Vec<Tensor> = outputs
                .chain(&backprop)
                .map(|t| t.tr().reshape([-1]))
                .collect();
            Tensor::cat(&parts, 0)
        });
        (logits, signals)
    }
}

/// A forward pass that keeps what the backward pass needs.
pub struct Forward {
    /// Each layer's input (the data for the first).
    pub inputs: Vec<Tensor>,
    /// Each layer's pre-activations.
    pub pre: Vec<Tensor>,
    /// The output layer's pre-activations: the logits.
    pub logits: Tensor,
}

impl Forward {
    /// Runs `layers` dense layers from `x`: `dense(l, input)` gives layer l's pre-activations and
    /// `activate` the hidden activation (the output layer has none).
    pub fn run(
        x: &Tensor,
        layers: usize,
        dense: impl Fn(usize, &Tensor) -> Tensor,
        activate: impl Fn(&Tensor) -> Tensor,
    ) -> Forward {
        let mut inputs = Vec::with_capacity(layers);
        let mut pre = Vec::with_capacity(layers);
        let mut a = x.shallow_clone();
        for l in 0..layers {
            let z = dense(l, &a);
            let next = if l + 1 < layers {
                activate(&z)
            } else {
                z.shallow_clone()
            };
            inputs.push(a);
            pre.push(z);
            a = next;
        }
        Forward {
            inputs,
            pre,
            logits: a,
        }
    }
}

/// Mean binary cross-entropy of one logit against a 0/1 label, in the stable form
/// `max(z, 0) - z y + ln(1 + e^-|z|)` (what Keras computes for a sigmoid output from logits).
pub fn bce_from_logit(logit: f64, label: f64) -> f64 {
    logit.max(0.0) - logit * label + (-logit.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_packs_kernel_then_bias_per_layer() {
        let (slots, total) = layout(&[2, 5, 1]);
        assert_eq!(total, 2 * 5 + 5 + 5 + 1);
        assert_eq!(slots[0].bias_offset, 10);
        assert_eq!(slots[1].kernel_offset, 15);
        assert_eq!(slots[1].bias_offset, 20);
    }

    #[test]
    fn the_back_propagated_signal_matches_a_hand_computation() {
        // A 2-2-1 tanh network on two points, worked out in f64 below.
        let (k1, b1) = ([[0.5, -0.3], [0.2, 0.8]], [0.1, -0.2]);
        let (k2, b2) = ([1.5, -0.7], 0.05);
        let (x, y) = ([[1.0, 2.0], [-0.5, 0.3]], [1.0, 0.0]);
        let params: Vec<f32> = [0.5, -0.3, 0.2, 0.8, 0.1, -0.2, 1.5, -0.7, 0.05].to_vec();
        let mut mlp = Mlp::from_flat(&[2, 2, 1], Activation::Tanh, Tensor::from_slice(&params));
        let xs = Tensor::from_slice(&[1.0f32, 2.0, -0.5, 0.3]).view([2, 2]);
        let ys = Tensor::from_slice(&[1.0f32, 0.0]).view([2, 1]);
        let (_, signals) = mlp.compute_gradients_with(&xs, &ys, true);
        let got = Vec::<f32>::try_from(signals.unwrap()).unwrap();

        // Forward: z1 = x k1 + b1, a1 = tanh(z1), logit = a1 k2 + b2. Backward for the mean
        // loss over n = 2 points: dz2 = (sigmoid(logit) - y) / 2, dz1 = dz2 k2 (1 - a1^2).
        let mut want = vec![0.0f64; 12];
        for p in 0..2 {
            let mut a1 = [0.0; 2];
            for u in 0..2 {
                let z = x[p][0] * k1[0][u] + x[p][1] * k1[1][u] + b1[u];
                a1[u] = f64::tanh(z);
            }
            let logit = a1[0] * k2[0] + a1[1] * k2[1] + b2;
            let dz2 = (1.0 / (1.0 + (-logit).exp()) - y[p]) / 2.0;
            // Signals order: outputs [units][points] of layer 1, then layer 2's logits, then
            // the gradients in the same shapes.
            for u in 0..2 {
                want[u * 2 + p] = a1[u];
                want[6 + u * 2 + p] = dz2 * k2[u] * (1.0 - a1[u] * a1[u]);
            }
            want[4 + p] = logit;
            want[10 + p] = dz2;
        }
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn the_stable_cross_entropy_matches_the_naive_formula_where_that_is_finite() {
        for (z, y) in [(0.3f64, 1.0f64), (-2.0, 0.0), (4.0, 0.0), (-7.5, 1.0)] {
            let p = 1.0 / (1.0 + (-z).exp());
            let naive = -(y * p.ln() + (1.0 - y) * (1.0 - p).ln());
            assert!((bce_from_logit(z, y) - naive).abs() < 1e-12);
        }
        assert!(
            (bce_from_logit(-800.0, 1.0) - 800.0).abs() < 1e-9,
            "no overflow far out"
        );
    }
}
