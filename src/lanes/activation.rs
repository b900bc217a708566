//! Every hidden activation and its derivative, element by element on float32 slices, for the lane
//! engine. The rules are those of `activation.rs` (libtorch's kernels), written out: the same
//! formulas, the same choices at the kinks (ReLU's gradient is 0 where the output is 0, leaky
//! ReLU's slope is taken below and at 0), the same cut-over of softplus at 20. Sigmoid and tanh,
//! the study's, use a polynomial e^x so that their loops vectorize; the others use the standard
//! library's functions one value at a time.

use super::simd::{dispatch, exp, madd};
use crate::activation::LEAKY_SLOPE;
use crate::config::Activation;

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
const SOFTPLUS_THRESHOLD: f32 = 20.0;

/// The logistic function with the polynomial e^x.
#[inline(always)]
pub fn sigmoid<const FMA: bool>(z: f32) -> f32 {
    1.0 / (1.0 + exp::<FMA>(-z))
}

/// tanh(z): through e^(2|z|) away from 0; below |z| = 0.55, where `1 - 2 / (e^2|z| + 1)`
/// cancels digits, its Taylor series to z^17 (the next term is below 1e-8 of the value there).
/// Within 4 ulp of the true value everywhere (tested).
#[inline(always)]
fn tanh<const FMA: bool>(z: f32) -> f32 {
    const SERIES: [f32; 8] = [
        -1.0 / 3.0,
        2.0 / 15.0,
        -17.0 / 315.0,
        62.0 / 2835.0,
        -1382.0 / 155_925.0,
        21844.0 / 6_081_075.0,
        -929_569.0 / 638_512_875.0,
        6_404_582.0 / 10_854_718_875.0,
    ];
    let far = 1.0 - 2.0 / (exp::<FMA>(2.0 * z.abs()) + 1.0);
    let far = if z < 0.0 { -far } else { far };
    let z2 = z * z;
    let mut p = 0.0;
    for c in SERIES.iter().rev() {
        p = madd::<FMA>(p, z2, *c);
    }
    let near = madd::<FMA>(z * z2, p, z);
    if z.abs() < 0.55 {
        near
    } else {
        far
    }
}

dispatch!(
    /// `a = activation(z)`, elementwise.
    forward, forward_avx2, forward_with, (activation: Activation, z: &[f32], a: &mut [f32])
);

#[inline(always)]
fn forward_with<const FMA: bool>(activation: Activation, z: &[f32], a: &mut [f32]) {
    let each = |f: &dyn Fn(f32) -> f32, a: &mut [f32]| {
        for (a, &z) in a.iter_mut().zip(z) {
            *a = f(z);
        }
    };
    match activation {
        Activation::Sigmoid => {
            for (a, &z) in a.iter_mut().zip(z) {
                *a = sigmoid::<FMA>(z);
            }
        }
        Activation::Tanh => {
            for (a, &z) in a.iter_mut().zip(z) {
                *a = tanh::<FMA>(z);
            }
        }
        Activation::Relu => {
            // Written so that NaN passes through, as libtorch's relu lets it.
            for (a, &z) in a.iter_mut().zip(z) {
                *a = if z <= 0.0 { 0.0 } else { z };
            }
        }
        Activation::LeakyRelu => each(&|z| if z > 0.0 { z } else { z * LEAKY_SLOPE as f32 }, a),
        Activation::Elu => each(&|z| if z > 0.0 { z } else { z.exp_m1() }, a),
        Activation::Selu => each(
            &|z| SELU_SCALE * if z > 0.0 { z } else { SELU_ALPHA * z.exp_m1() },
            a,
        ),
        Activation::Gelu => each(
            // erfc(-z / sqrt 2) = 1 + erf(z / sqrt 2), without the cancellation for z << 0.
            &|z| 0.5 * z * libm::erfcf(-z * std::f32::consts::FRAC_1_SQRT_2),
            a,
        ),
        Activation::Softplus => each(
            &|z| {
                if z > SOFTPLUS_THRESHOLD {
                    z
                } else {
                    z.exp().ln_1p()
                }
            },
            a,
        ),
        Activation::Softsign => each(&|z| z / (1.0 + z.abs()), a),
        Activation::Linear => a.copy_from_slice(z),
    }
}

dispatch!(
    /// `grad *= activation'(z)`, elementwise, from the pre-activations `z` and outputs `a`.
    backward, backward_avx2, backward_with,
    (activation: Activation, grad: &mut [f32], z: &[f32], a: &[f32])
);

#[inline(always)]
fn backward_with<const FMA: bool>(activation: Activation, grad: &mut [f32], z: &[f32], a: &[f32]) {
    let by_z = |f: &dyn Fn(f32) -> f32, grad: &mut [f32]| {
        for (g, &z) in grad.iter_mut().zip(z) {
            *g *= f(z);
        }
    };
    let by_a = |f: &dyn Fn(f32) -> f32, grad: &mut [f32]| {
        for (g, &a) in grad.iter_mut().zip(a) {
            *g *= f(a);
        }
    };
    match activation {
        Activation::Sigmoid => {
            for (g, &a) in grad.iter_mut().zip(a) {
                *g = *g * (1.0 - a) * a;
            }
        }
        Activation::Tanh => {
            for (g, &a) in grad.iter_mut().zip(a) {
                *g *= 1.0 - a * a;
            }
        }
        Activation::Relu => {
            for (g, &a) in grad.iter_mut().zip(a) {
                *g = if a <= 0.0 { 0.0 } else { *g };
            }
        }
        Activation::LeakyRelu => by_z(&|z| if z > 0.0 { 1.0 } else { LEAKY_SLOPE as f32 }, grad),
        Activation::Elu => by_a(&|a| if a > 0.0 { 1.0 } else { a + 1.0 }, grad),
        Activation::Selu => by_a(
            &|a| {
                if a > 0.0 {
                    SELU_SCALE
                } else {
                    a + SELU_ALPHA * SELU_SCALE
                }
            },
            grad,
        ),
        Activation::Gelu => by_z(
            &|z| {
                let cdf = 0.5 * libm::erfcf(-z * std::f32::consts::FRAC_1_SQRT_2);
                let pdf = (-0.5 * z * z).exp() * 0.398_942_3;
                cdf + z * pdf
            },
            grad,
        ),
        Activation::Softplus => by_z(
            &|z| {
                if z > SOFTPLUS_THRESHOLD {
                    1.0
                } else {
                    let e = z.exp();
                    e / (e + 1.0)
                }
            },
            grad,
        ),
        Activation::Softsign => by_z(&|z| 1.0 / (1.0 + z.abs()).powi(2), grad),
        Activation::Linear => {}
    }
}

dispatch!(
    /// `dz = (sigmoid(logit) - y) * scale`: the gradient of the binary cross-entropy computed
    /// from the logit, `scale` folding in the mean over the batch.
    logit_gradient, logit_gradient_avx2, logit_gradient_with,
    (logits: &[f32], y: &[f32], scale: f32, dz: &mut [f32])
);

#[inline(always)]
fn logit_gradient_with<const FMA: bool>(logits: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) {
    for ((d, &z), &y) in dz.iter_mut().zip(logits).zip(y) {
        *d = (sigmoid::<FMA>(z) - y) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;
    use tch::Tensor;

    #[test]
    fn tanh_is_within_four_ulp() {
        let mut z = -9.0f32;
        while z < 9.0 {
            for got in [tanh::<false>(z), tanh::<true>(z)] {
                let want = (z as f64).tanh();
                let ulp = ((want as f32).abs() * f32::EPSILON).max(f32::MIN_POSITIVE) as f64;
                assert!(
                    (got as f64 - want).abs() <= 4.0 * ulp,
                    "tanh({z}) = {got}, want {want}"
                );
            }
            z += 0.000_731;
        }
    }

    /// Each activation and derivative against `activation.rs` (libtorch) on the same values.
    #[test]
    fn every_rule_matches_libtorch() {
        let z: Vec<f32> = (-300..300)
            .map(|k| k as f32 * 0.037)
            .chain([0.0, 25.0, -25.0])
            .collect();
        let g: Vec<f32> = z.iter().map(|v| (v * 1.7).cos()).collect();
        for &act in Activation::value_variants() {
            let zt = Tensor::from_slice(&z);
            let want_a = Vec::<f32>::try_from(act.forward(&zt)).unwrap();
            let mut a = vec![0.0; z.len()];
            forward(act, &z, &mut a);

            let at = Tensor::from_slice(&a);
            let want_g =
                Vec::<f32>::try_from(act.backward(&Tensor::from_slice(&g), &zt, &at)).unwrap();
            let mut got_g = g.clone();
            backward(act, &mut got_g, &z, &a);

            for k in 0..z.len() {
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0);
                assert!(
                    close(a[k], want_a[k]),
                    "{act:?}({}) = {} vs {}",
                    z[k],
                    a[k],
                    want_a[k]
                );
                assert!(
                    close(got_g[k], want_g[k]),
                    "{act:?}'({}) = {} vs {}",
                    z[k],
                    got_g[k],
                    want_g[k]
                );
            }
        }
    }
}
