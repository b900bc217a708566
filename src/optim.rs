//! The update rules, written out over the flat parameter tensor with Keras's constants.
//!
//! libtorch's built-in optimizers differ from Keras in where epsilon goes, so the study's numbers
//! would not reproduce with them. Each update here is a few in-place libtorch calls on the whole
//! network at once, applied after the gradient has been read and outside any autograd graph.

use crate::config::{OptimizerConfig, OptimizerKind};
use tch::Tensor;

/// Optimizer state for one network: up to two slots shaped like the flat parameters.
pub struct Optimizer {
    config: OptimizerConfig,
    /// RMSprop: running mean of g². Adam: first moment m. SGD: velocity.
    first: Tensor,
    /// Adam: second moment v. Unused otherwise.
    second: Tensor,
    /// Steps taken so far (Adam's bias correction needs it).
    steps: u64,
}

impl Optimizer {
    /// Fresh state (all slots zero, as in Keras) for parameters shaped like `params`.
    pub fn new(config: &OptimizerConfig, params: &Tensor) -> Optimizer {
        Optimizer {
            config: config.clone(),
            first: params.zeros_like(),
            second: params.zeros_like(),
            steps: 0,
        }
    }

    /// Applies one update to `params` from `grads`.
    ///
    /// - RMSprop (Keras): `s = rho s + (1 - rho) g²`, `w -= lr g / sqrt(s + eps)`. PyTorch adds
    ///   epsilon outside the square root instead.
    /// - Adam (Keras): `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g²`,
    ///   `w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`: epsilon is not
    ///   bias-corrected, unlike PyTorch's Adam.
    /// - SGD (Keras): `u = momentum u - lr g`, `w += u`.
    pub fn step(&mut self, params: &mut Tensor, grads: &Tensor) {
        let c = &self.config;
        self.steps += 1;
        match c.kind {
            OptimizerKind::Rmsprop => {
                let _ = self.first.lerp_(&grads.square(), 1.0 - c.rho);
                let mut denom = &self.first + c.epsilon;
                let _ = denom.sqrt_().g_mul_scalar_(-1.0 / c.learning_rate);
                let _ = params.addcdiv_(grads, &denom);
            }
            OptimizerKind::Adam => {
                let t = self.steps as f64;
                let rate =
                    c.learning_rate * (1.0 - c.beta2.powf(t)).sqrt() / (1.0 - c.beta1.powf(t));
                let _ = self.first.lerp_(grads, 1.0 - c.beta1);
                let _ = self.second.lerp_(&grads.square(), 1.0 - c.beta2);
                let mut denom = self.second.sqrt();
                let _ = denom.g_add_scalar_(c.epsilon).g_mul_scalar_(-1.0 / rate);
                let _ = params.addcdiv_(&self.first, &denom);
            }
            OptimizerKind::Sgd => {
                if c.momentum == 0.0 {
                    let _ = params.g_sub_(&(grads * c.learning_rate));
                } else {
                    let _ = self
                        .first
                        .g_mul_scalar_(c.momentum)
                        .g_sub_(&(grads * c.learning_rate));
                    let _ = params.g_add_(&self.first);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn config(kind: OptimizerKind, learning_rate: f64) -> OptimizerConfig {
        OptimizerConfig {
            kind,
            learning_rate,
            rho: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            momentum: 0.0,
        }
    }

    fn run(config: &OptimizerConfig, grads: &[&[f64]]) -> Vec<f64> {
        let mut w = Tensor::from_slice(&[1.0f64, 1.0]);
        let mut opt = Optimizer::new(config, &w);
        for g in grads {
            opt.step(&mut w, &Tensor::from_slice(g));
        }
        Vec::<f64>::try_from(&w.to_kind(Kind::Double)).unwrap()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn rmsprop_puts_epsilon_inside_the_square_root() {
        // Step 1, lr 0.1, g = (0.5, -2): s = 0.1 g² = (0.025, 0.4);
        // w = 1 - 0.1 * 0.5 / sqrt(0.025 + 1e-7) = 1 - 0.05 / 0.15811419... = 0.68377...
        // w = 1 + 0.1 * 2 / sqrt(0.4 + 1e-7) = 1 + 0.2 / 0.63245561... = 1.31622772...
        let w = run(&config(OptimizerKind::Rmsprop, 0.1), &[&[0.5, -2.0]]);
        let want0 = 1.0 - 0.05 / (0.025f64 + 1e-7).sqrt();
        let want1 = 1.0 + 0.2 / (0.4f64 + 1e-7).sqrt();
        assert_close(&w, &[want0, want1]);
        assert!((w[0] - 0.683_772_866_4).abs() < 1e-9, "{}", w[0]);
    }

    #[test]
    fn rmsprop_second_step_uses_the_decayed_average() {
        // Step 2 with g = (0.5, 0): s = 0.9 * 0.025 + 0.1 * 0.25 = 0.0475 for the first entry;
        // the second entry's s = 0.9 * 0.4 = 0.36 but its gradient is 0, so it stays put.
        let w = run(
            &config(OptimizerKind::Rmsprop, 0.1),
            &[&[0.5, -2.0], &[0.5, 0.0]],
        );
        let after_one = 1.0 - 0.05 / (0.025f64 + 1e-7).sqrt();
        let want0 = after_one - 0.05 / (0.0475f64 + 1e-7).sqrt();
        let want1 = 1.0 + 0.2 / (0.4f64 + 1e-7).sqrt();
        assert_close(&w, &[want0, want1]);
    }

    #[test]
    fn adam_folds_bias_correction_into_the_rate_and_adds_epsilon_after_the_root() {
        // Step 1, lr 0.1, g = (0.5, -2): m = 0.1 g, v = 0.001 g²,
        // rate = 0.1 sqrt(1 - 0.999) / (1 - 0.9) = 0.0316227766...,
        // w -= rate * m / (sqrt(v) + 1e-7).
        let w = run(&config(OptimizerKind::Adam, 0.1), &[&[0.5, -2.0]]);
        let rate = 0.1 * (1.0f64 - 0.999).sqrt() / (1.0 - 0.9);
        let step = |g: f64| rate * (0.1 * g) / ((0.001 * g * g).sqrt() + 1e-7);
        assert_close(&w, &[1.0 - step(0.5), 1.0 - step(-2.0)]);
        assert!((w[0] - 0.900_000_632_4).abs() < 1e-9, "{}", w[0]);
    }

    #[test]
    fn adam_second_step_uses_both_moments_and_t_2() {
        let w = run(
            &config(OptimizerKind::Adam, 0.01),
            &[&[0.5, -2.0], &[-1.0, 4.0]],
        );
        let mut want = vec![];
        for (g1, g2) in [(0.5f64, -1.0f64), (-2.0, 4.0)] {
            let rate1 = 0.01 * (1.0f64 - 0.999).sqrt() / (1.0 - 0.9);
            let (m1, v1) = (0.1 * g1, 0.001 * g1 * g1);
            let w1 = 1.0 - rate1 * m1 / (v1.sqrt() + 1e-7);
            let rate2 = 0.01 * (1.0f64 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
            let (m2, v2) = (0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 * g2);
            want.push(w1 - rate2 * m2 / (v2.sqrt() + 1e-7));
        }
        assert_close(&w, &want);
    }

    #[test]
    fn sgd_with_and_without_momentum() {
        let w = run(&config(OptimizerKind::Sgd, 0.1), &[&[0.5, -2.0]]);
        assert_close(&w, &[0.95, 1.2]);
        let mut with_momentum = config(OptimizerKind::Sgd, 0.1);
        with_momentum.momentum = 0.5;
        // u1 = -0.1 g1; u2 = 0.5 u1 - 0.1 g2; w = 1 + u1 + u2.
        let w = run(&with_momentum, &[&[0.5, -2.0], &[0.5, -2.0]]);
        assert_close(&w, &[1.0 - 0.05 - 0.075, 1.0 + 0.2 + 0.3]);
    }
}
