//! Forward and hand-written backward of every hidden activation, each one libtorch kernel where
//! libtorch has one.
//!
//! The engine back-propagates by hand instead of through autograd: building and walking a graph
//! costs more than the arithmetic of these tiny layers. `tests/gradients.rs` checks every
//! derivative here against central finite differences and against autograd.

use crate::config::Activation;
use tch::Tensor;

/// Keras's default negative slope for `leaky_relu`.
pub const LEAKY_SLOPE: f64 = 0.2;
/// SELU's alpha and scale (Klambauer et al., 2017).
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

impl Activation {
    /// Applies the activation to pre-activations `z`.
    pub fn forward(self, z: &Tensor) -> Tensor {
        match self {
            Activation::Sigmoid => z.sigmoid(),
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.relu(),
            Activation::LeakyRelu => z.maximum(&(z * LEAKY_SLOPE)),
            Activation::Elu => z.elu(),
            Activation::Selu => z.selu(),
            Activation::Gelu => z.gelu("none"),
            Activation::Softplus => z.softplus(),
            Activation::Softsign => z / (z.abs() + 1.0),
            Activation::Linear => z.shallow_clone(),
        }
    }

    /// Gradient with respect to the pre-activations `z`, given the gradient `grad` with respect
    /// to the outputs `a = forward(z)`. Each rule uses whichever of `z` and `a` is cheaper.
    pub fn backward(self, grad: &Tensor, z: &Tensor, a: &Tensor) -> Tensor {
        match self {
            Activation::Sigmoid => Tensor::sigmoid_backward(grad, a),
            Activation::Tanh => Tensor::tanh_backward(grad, a),
            Activation::Relu => a.threshold_backward(grad, 0.0),
            Activation::LeakyRelu => z.leaky_relu_backward(grad, LEAKY_SLOPE, false),
            Activation::Elu => Tensor::elu_backward(grad, 1.0, 1.0, 1.0, true, a),
            Activation::Selu => Tensor::elu_backward(grad, SELU_ALPHA, SELU_SCALE, 1.0, true, a),
            Activation::Gelu => z.gelu_backward(grad, "none"),
            Activation::Softplus => z.softplus_backward(grad, 1.0, 20.0),
            Activation::Softsign => grad / (z.abs() + 1.0).square(),
            Activation::Linear => grad.shallow_clone(),
        }
    }
}
