//! R networks of one shape as one set of batched tensors: the ensemble engine's model.
//!
//! Parameters are a `[R, P]` tensor, row r being model r's flat vector in `model::layout` order,
//! so a row is exactly what the single-model `Mlp` holds. Activations are feature-major,
//! `[R, units, batch]`, so that each unit's values over a batch are contiguous. Every model sees
//! only its own weights and its own batch. Models may differ in their hidden activation: each
//! activation is applied to its own contiguous block of rows.
//!
//! The products run one of two ways. On the CPU in float32, the loops of `kernels.rs`, model by
//! model, on slices of the tensors (libtorch's batched product dispatches every small matrix on
//! its own, which costs more than the arithmetic). Elsewhere (CUDA, or float64 in tests),
//! libtorch's batched matrix products, one kernel launch for all models.

use crate::config::Activation;
use crate::kernels;
use crate::model::{layout, Forward, LayerSlot};
use tch::{Device, Kind, Tensor};

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
    /// The products run in `kernels.rs` (CPU, float32) rather than as libtorch batched products.
    native: bool,
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
        let native = params.device() == Device::Cpu && params.kind() == Kind::Float;
        StackedMlp {
            slots,
            params,
            grads,
            layers,
            blocks: blocks(activations),
            native,
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
        let dense = |l: usize, a: &Tensor| self.dense(l, a);
        let pass = Forward::run(x, self.layers.len(), dense, |z| self.activate(z));
        let (inputs, pre, logits) = (pass.inputs, pass.pre, pass.logits);

        // d(mean BCE)/d(logit) = (sigmoid(logit) - y) / b, per model.
        let b = x.size()[2] as f64;
        let mut dz = (logits.sigmoid() - y) * (1.0 / b);

        // Backward: each layer's parameter gradients, then the gradient for the layer below.
        for l in (0..self.layers.len()).rev() {
            self.parameter_gradients(l, &inputs[l], &dz);
            if l > 0 {
                let da = self.backprop(l, &dz);
                dz = self.activate_backward(&da, &pre[l - 1], &inputs[l]);
            }
        }
        logits
    }

    /// Layer l's pre-activations `[R, units, b]` from its input `a` (`[R, inputs, b]`).
    fn dense(&self, l: usize, a: &Tensor) -> Tensor {
        if !self.native {
            let layer = &self.layers[l];
            return layer.bias.baddbmm(&layer.kernel_t, a, 1, 1);
        }
        let a = &rows_contiguous(a);
        let slot = self.slots[l];
        let (models, len) = (self.models(), a.size()[2]);
        let z = Tensor::empty([models, slot.units as i64, len], (Kind::Float, Device::Cpu));
        let params = host_slice(&self.params);
        let (input, a_strides) = (host_slice(a), a.stride());
        let out = host_slice_mut(&z);
        let width = params.len() / models as usize;
        for r in 0..models as usize {
            let row = &params[r * width..(r + 1) * width];
            let a_r = &input[r * a_strides[0] as usize..];
            let z_r = &mut out[r * slot.units * len as usize..][..slot.units * len as usize];
            let (kernel, bias) = (slot.kernel(row), slot.bias(row));
            kernels::forward(kernel, bias, a_r, a_strides[1] as usize, len as usize, z_r);
        }
        z
    }

    /// Writes layer l's kernel and bias gradients into `grads` from its input `a` and the
    /// gradient `dz` with respect to its pre-activations.
    fn parameter_gradients(&mut self, l: usize, a: &Tensor, dz: &Tensor) {
        if !self.native {
            let layer = &mut self.layers[l];
            layer.grad_kernel.copy_(&a.bmm(&dz.transpose(1, 2)));
            layer
                .grad_bias
                .copy_(&dz.sum_dim_intlist(2, false, None::<Kind>));
            return;
        }
        let a = &rows_contiguous(a);
        let slot = self.slots[l];
        let dz = dz.contiguous();
        let (models, len) = (self.models() as usize, dz.size()[2] as usize);
        let (input, a_strides) = (host_slice(a), a.stride());
        let (dz_all, grads) = (host_slice(&dz), host_slice_mut(&self.grads));
        let width = grads.len() / models;
        for r in 0..models {
            let row = &mut grads[r * width..(r + 1) * width];
            let (kernel_part, rest) =
                row[slot.kernel_offset..].split_at_mut(slot.inputs * slot.units);
            let bias_part = &mut rest[..slot.units];
            let a_r = &input[r * a_strides[0] as usize..];
            let dz_r = &dz_all[r * slot.units * len..][..slot.units * len];
            kernels::gradients(
                a_r,
                a_strides[1] as usize,
                dz_r,
                len,
                kernel_part,
                bias_part,
            );
        }
    }

    /// The gradient with respect to layer l's input, `[R, inputs, b]`.
    fn backprop(&self, l: usize, dz: &Tensor) -> Tensor {
        if !self.native {
            return self.layers[l].kernel.bmm(dz);
        }
        let slot = self.slots[l];
        let dz = dz.contiguous();
        let (models, len) = (self.models(), dz.size()[2]);
        let da = Tensor::empty(
            [models, slot.inputs as i64, len],
            (Kind::Float, Device::Cpu),
        );
        let (params, dz_all, out) = (
            host_slice(&self.params),
            host_slice(&dz),
            host_slice_mut(&da),
        );
        let (models, len) = (models as usize, len as usize);
        let width = params.len() / models;
        for r in 0..models {
            let kernel = slot.kernel(&params[r * width..(r + 1) * width]);
            let dz_r = &dz_all[r * slot.units * len..][..slot.units * len];
            let da_r = &mut out[r * slot.inputs * len..][..slot.inputs * len];
            kernels::backprop(kernel, dz_r, len, da_r);
        }
        da
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

/// `t`, copied only if its rows (last dimension) are not contiguous.
fn rows_contiguous(t: &Tensor) -> Tensor {
    if t.stride().last() == Some(&1) {
        t.shallow_clone()
    } else {
        t.contiguous()
    }
}

/// Every float32 a CPU tensor view can reach, from its first element to its last, as a slice.
fn host_slice(t: &Tensor) -> &[f32] {
    // SAFETY: the tensor is a float32 CPU tensor (checked), so `data_ptr` points at its first
    // element and the `extent` floats after it belong to its storage. The slice borrows `t`, and
    // within this module no tensor is written while a slice of it is alive.
    unsafe { std::slice::from_raw_parts(checked_pointer(t), extent(t)) }
}

/// As `host_slice`, writable: only for tensors this module allocated or owns outright (`grads`
/// and fresh outputs), never aliased by another slice while the result lives.
#[allow(clippy::mut_from_ref)]
fn host_slice_mut(t: &Tensor) -> &mut [f32] {
    // SAFETY: as in `host_slice`; callers hold no other slice of `t` while writing.
    unsafe { std::slice::from_raw_parts_mut(checked_pointer(t), extent(t)) }
}

fn checked_pointer(t: &Tensor) -> *mut f32 {
    assert!(
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.stride().last() == Some(&1),
        "native products need float32 CPU tensors with contiguous rows"
    );
    t.data_ptr() as *mut f32
}

/// Floats from a view's first element to its last, inclusive.
fn extent(t: &Tensor) -> usize {
    let (size, stride) = (t.size(), t.stride());
    if size.contains(&0) {
        return 0;
    }
    1 + size
        .iter()
        .zip(&stride)
        .map(|(&n, &s)| ((n - 1) * s) as usize)
        .sum::<usize>()
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
        // Three models, two activations, different weights and different batches; float64 takes
        // libtorch's batched products, float32 the native loops.
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
            assert_eq!(stacked.native, kind == Kind::Float);
            let logits = stacked.compute_gradients(&x.transpose(1, 2), &y.transpose(1, 2));
            for r in 0..3 {
                let mut alone = Mlp::from_flat(&widths, acts[r as usize], params.get(r).copy());
                let want = alone.compute_gradients(&x.get(r), &y.get(r));
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

    #[test]
    fn the_extent_of_a_strided_view_ends_at_its_last_element() {
        let t = Tensor::zeros([4, 3, 10], (Kind::Float, tch::Device::Cpu));
        // [4, 3, 5] with strides [30, 10, 1]: 1 + 3 * 30 + 2 * 10 + 4 * 1.
        assert_eq!(extent(&t.narrow(2, 2, 5)), 115);
        assert_eq!(extent(&t), 120);
    }
}
