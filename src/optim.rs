//! The update rules, written out over the flat parameter tensor with Keras's constants.
//!
//! libtorch's built-in optimizers differ from Keras in where epsilon goes, so the study's numbers
//! would not reproduce with them. Each update here is a few in-place libtorch calls on the whole
//! network at once, applied after the gradient has been read and outside any autograd graph.

use crate::config::{OptimizerConfig, OptimizerKind};
use tch::{Device, Tensor};

/// Optimizer state for one network (flat parameters `[P]`) or for an ensemble (`[R, P]`, one
/// row per model, each row with its own learning rate).
pub struct Optimizer {
    config: OptimizerConfig,
    rates: Rates,
    /// RMSprop: running mean of g². Adam: first moment m. SGD: velocity.
    first: Tensor,
    /// Adam: second moment v. Unused otherwise.
    second: Tensor,
    /// Steps taken so far (Adam's bias correction needs it).
    steps: u64,
}

/// Learning rates: one for all, or one per row of an ensemble. A per-row rate enters the update
/// as a float32 `[R, 1]` tensor holding exactly the float32 value the shared path would use, so
/// each row's arithmetic is the one-network arithmetic, bit for bit.
enum Rates {
    Shared,
    PerRow {
        rates: Vec<f64>,
        device: Device,
        /// The column of a factor that does not change from step to step, made once.
        fixed: Option<Tensor>,
    },
}

impl Optimizer {
    /// Fresh state (all slots zero, as in Keras) for parameters shaped like `params`.
    pub fn new(config: &OptimizerConfig, params: &Tensor) -> Optimizer {
        Optimizer {
            config: config.clone(),
            rates: Rates::Shared,
            first: params.zeros_like(),
            second: params.zeros_like(),
            steps: 0,
        }
    }

    /// Fresh state for an ensemble's `[R, P]` parameters, row r learning at `rates[r]`; every
    /// other constant comes from `config`.
    pub fn per_row(config: &OptimizerConfig, params: &Tensor, rates: &[f64]) -> Optimizer {
        assert_eq!(
            params.size()[0],
            rates.len() as i64,
            "one learning rate per row"
        );
        let mut optimizer = Optimizer::new(config, params);
        match rates {
            [first, rest @ ..] if rest.iter().all(|r| r == first) => {
                optimizer.config.learning_rate = *first;
            }
            _ => {
                optimizer.rates = Rates::PerRow {
                    rates: rates.to_vec(),
                    device: params.device(),
                    fixed: None,
                }
            }
        }
        optimizer
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
                let _ = denom.sqrt_();
                self.rates
                    .scale(&mut denom, c.learning_rate, false, |lr| -1.0 / lr);
                let _ = params.addcdiv_(grads, &denom);
            }
            OptimizerKind::Adam => {
                let t = self.steps as f64;
                let (root, denominator) = ((1.0 - c.beta2.powf(t)).sqrt(), 1.0 - c.beta1.powf(t));
                let _ = self.first.lerp_(grads, 1.0 - c.beta1);
                let _ = self.second.lerp_(&grads.square(), 1.0 - c.beta2);
                let mut denom = self.second.sqrt();
                let _ = denom.g_add_scalar_(c.epsilon);
                self.rates.scale(&mut denom, c.learning_rate, true, |lr| {
                    -1.0 / (lr * root / denominator)
                });
                let _ = params.addcdiv_(&self.first, &denom);
            }
            OptimizerKind::Sgd => {
                let mut step = grads.copy();
                self.rates.scale(&mut step, c.learning_rate, false, |lr| lr);
                if c.momentum == 0.0 {
                    let _ = params.g_sub_(&step);
                } else {
                    let _ = self.first.g_mul_scalar_(c.momentum).g_sub_(&step);
                    let _ = params.g_add_(&self.first);
                }
            }
        }
    }

    /// Zeroes the state of the rows where `rows` (bool, `[R, 1]`) is true: for models taken out
    /// of an ensemble, so that nothing non-finite stays in flight.
    pub fn clear_rows(&mut self, rows: &Tensor) {
        let _ = self.first.masked_fill_(rows, 0.0);
        let _ = self.second.masked_fill_(rows, 0.0);
    }
}

impl Rates {
    /// Multiplies `t` in place by `factor(learning rate)`, per row when the rates differ.
    /// `per_step`: the factor changes every step (Adam's bias correction), so its column cannot
    /// be kept.
    fn scale(&mut self, t: &mut Tensor, shared: f64, per_step: bool, factor: impl Fn(f64) -> f64) {
        match self {
            Rates::Shared => {
                let _ = t.g_mul_scalar_(factor(shared));
            }
            Rates::PerRow {
                rates,
                device,
                fixed,
            } => {
                let kind = t.kind();
                let make = || {
                    let values: Vec<f32> = rates.iter().map(|&lr| factor(lr) as f32).collect();
                    Tensor::from_slice(&values)
                        .view([-1, 1])
                        .to_device(*device)
                        .to_kind(kind)
                };
                if per_step {
                    let _ = t.g_mul_(&make());
                } else {
                    let column = fixed.get_or_insert_with(make);
                    let _ = t.g_mul_(column);
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

    #[test]
    fn per_row_rates_give_each_row_exactly_its_own_single_network_update() {
        let grads: [&[f64]; 3] = [&[0.5, -2.0], &[-1.0, 4.0], &[0.25, 0.5]];
        for kind in [
            OptimizerKind::Rmsprop,
            OptimizerKind::Adam,
            OptimizerKind::Sgd,
        ] {
            let mut momentum = config(kind, 0.0);
            momentum.momentum = 0.5;
            let rates = [0.1, 0.003];
            let mut w = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0]).view([2, 2]);
            let mut opt = Optimizer::per_row(&momentum, &w, &rates);
            for g in grads {
                let g: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                let both = Tensor::from_slice(&[g.clone(), g].concat()).view([2, 2]);
                opt.step(&mut w, &both);
            }
            for (row, &lr) in rates.iter().enumerate() {
                let mut alone = momentum.clone();
                alone.learning_rate = lr;
                let mut single = Tensor::from_slice(&[1.0f32, 1.0]);
                let mut opt = Optimizer::new(&alone, &single);
                for g in grads {
                    let g: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                    opt.step(&mut single, &Tensor::from_slice(&g));
                }
                assert!(
                    w.get(row as i64).equal(&single),
                    "{kind:?} row {row}: {w} vs {single}"
                );
            }
        }
    }
}
