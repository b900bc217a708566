//! The hand-written back-propagation against two outside references, in double precision:
//! central finite differences of the loss, and libtorch's autograd on the same network.

use gradtrace::config::Activation;
use gradtrace::model::{layout, Mlp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Reduction, Tensor};

const WIDTHS: [usize; 4] = [2, 4, 3, 1];
const ACTIVATIONS: [Activation; 10] = [
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Relu,
    Activation::LeakyRelu,
    Activation::Elu,
    Activation::Selu,
    Activation::Gelu,
    Activation::Softplus,
    Activation::Softsign,
    Activation::Linear,
];

/// A random network and batch (8 points, labels 0/1), all f64, from a fixed seed.
fn fixture(seed: u64) -> (Vec<f64>, Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (_, total) = layout(&WIDTHS);
    let params: Vec<f64> = (0..total).map(|_| rng.gen_range(-1.5..1.5)).collect();
    let x: Vec<f64> = (0..16).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let y: Vec<f64> = (0..8).map(|i| (i % 2) as f64).collect();
    (
        params,
        Tensor::from_slice(&x).view([8, 2]),
        Tensor::from_slice(&y).view([8, 1]),
    )
}

fn loss(params: &[f64], activation: Activation, x: &Tensor, y: &Tensor) -> f64 {
    let model = Mlp::from_flat(&WIDTHS, activation, Tensor::from_slice(params));
    model
        .logits(x)
        .binary_cross_entropy_with_logits::<Tensor>(y, None, None, Reduction::Mean)
        .double_value(&[])
}

fn engine_gradient(params: &[f64], activation: Activation, x: &Tensor, y: &Tensor) -> Vec<f64> {
    let mut model = Mlp::from_flat(&WIDTHS, activation, Tensor::from_slice(params));
    let _ = model.compute_gradients(x, y);
    Vec::<f64>::try_from(&model.grads).unwrap()
}

#[test]
fn gradients_equal_central_finite_differences_for_every_layer_and_activation() {
    let h = 1e-6;
    for activation in ACTIVATIONS {
        let (params, x, y) = fixture(11);
        let analytic = engine_gradient(&params, activation, &x, &y);
        let (slots, _) = layout(&WIDTHS);
        for (layer, slot) in slots.iter().enumerate() {
            for i in slot.kernel_offset..slot.bias_offset + slot.units {
                let (mut up, mut down) = (params.clone(), params.clone());
                up[i] += h;
                down[i] -= h;
                let numeric =
                    (loss(&up, activation, &x, &y) - loss(&down, activation, &x, &y)) / (2.0 * h);
                let error = (numeric - analytic[i]).abs();
                assert!(
                    error <= 1e-7 * numeric.abs().max(1.0),
                    "{activation:?} layer {} parameter {i}: backprop {} vs finite difference {}",
                    layer + 1,
                    analytic[i],
                    numeric
                );
            }
        }
    }
}

#[test]
fn gradients_equal_libtorch_autograd_for_every_activation() {
    for activation in ACTIVATIONS {
        let (params, x, y) = fixture(5);
        let engine = engine_gradient(&params, activation, &x, &y);

        // The same network as autograd leaves, kernel [inputs, units] and bias per layer.
        let (slots, _) = layout(&WIDTHS);
        let leaves: Vec<(Tensor, Tensor)> = slots
            .iter()
            .map(|s| {
                let kernel = Tensor::from_slice(&params[s.kernel_offset..s.bias_offset])
                    .view([s.inputs as i64, s.units as i64])
                    .set_requires_grad(true);
                let bias = Tensor::from_slice(&params[s.bias_offset..s.bias_offset + s.units])
                    .set_requires_grad(true);
                (kernel, bias)
            })
            .collect();
        let mut a = x.shallow_clone();
        for (l, (kernel, bias)) in leaves.iter().enumerate() {
            let z = a.matmul(kernel) + bias;
            a = if l + 1 < leaves.len() {
                activation.forward(&z)
            } else {
                z
            };
        }
        a.binary_cross_entropy_with_logits::<Tensor>(&y, None, None, Reduction::Mean)
            .backward();

        let mut autograd = Vec::new();
        for (kernel, bias) in &leaves {
            autograd.extend(Vec::<f64>::try_from(&kernel.grad().reshape([-1])).unwrap());
            autograd.extend(Vec::<f64>::try_from(&bias.grad()).unwrap());
        }
        assert_eq!(autograd.len(), engine.len());
        for (i, (a, e)) in autograd.iter().zip(&engine).enumerate() {
            assert!(
                (a - e).abs() <= 1e-12,
                "{activation:?} entry {i}: autograd {a}, engine {e}"
            );
        }
    }
}

#[test]
fn the_engine_accepts_float32_and_matches_float64_closely() {
    let (params, x, y) = fixture(3);
    let wide = engine_gradient(&params, Activation::Sigmoid, &x, &y);
    let params32 = Tensor::from_slice(&params).to_kind(Kind::Float);
    let mut model = Mlp::from_flat(&WIDTHS, Activation::Sigmoid, params32);
    let _ = model.compute_gradients(&x.to_kind(Kind::Float), &y.to_kind(Kind::Float));
    let narrow = Vec::<f32>::try_from(&model.grads).unwrap();
    for (w, n) in wide.iter().zip(narrow) {
        assert!((w - n as f64).abs() < 1e-5, "{w} vs {n}");
    }
}
