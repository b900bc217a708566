//! The update rules of `optim.rs` over lane-major parameters (`[P][R]`), one learning rate per
//! lane. The formulas and their order of operations are those of `optim.rs` (which libtorch
//! carries out there): a running average as `s + w (x - s)`, then the step as a division by a
//! scaled denominator.

use super::simd::dispatch;
use crate::config::{OptimizerConfig, OptimizerKind};

/// Optimizer state for R models, lane-major like their parameters.
pub struct LaneOptimizer {
    config: OptimizerConfig,
    rates: Vec<f64>,
    /// RMSprop: running mean of g². Adam: first moment. SGD: velocity.
    first: Vec<f32>,
    /// Adam: second moment.
    second: Vec<f32>,
    steps: u64,
}

impl LaneOptimizer {
    /// Zero state for `params` (`[P][R]`), lane r learning at `rates[r]`.
    pub fn new(config: &OptimizerConfig, params: &[f32], rates: &[f64]) -> LaneOptimizer {
        LaneOptimizer {
            config: config.clone(),
            rates: rates.to_vec(),
            first: vec![0.0; params.len()],
            second: vec![0.0; params.len()],
            steps: 0,
        }
    }

    /// One update of every lane; see `optim::Optimizer::step` for the rules.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let c = &self.config;
        self.steps += 1;
        let per_lane = |f: &dyn Fn(f64) -> f64| -> Vec<f32> {
            self.rates.iter().map(|&lr| f(lr) as f32).collect()
        };
        match c.kind {
            OptimizerKind::Rmsprop => {
                let scale = per_lane(&|lr| -1.0 / lr);
                let (keep, eps) = ((1.0 - c.rho) as f32, c.epsilon as f32);
                rmsprop(params, grads, &mut self.first, &scale, keep, eps);
            }
            OptimizerKind::Adam => {
                let t = self.steps as f64;
                let (root, denominator) = ((1.0 - c.beta2.powf(t)).sqrt(), 1.0 - c.beta1.powf(t));
                let scale = per_lane(&|lr| -1.0 / (lr * root / denominator));
                let weights = [
                    (1.0 - c.beta1) as f32,
                    (1.0 - c.beta2) as f32,
                    c.epsilon as f32,
                ];
                adam(
                    params,
                    grads,
                    &mut self.first,
                    &mut self.second,
                    &scale,
                    weights,
                );
            }
            OptimizerKind::Sgd => {
                let rates = per_lane(&|lr| lr);
                sgd(params, grads, &mut self.first, &rates, c.momentum as f32);
            }
        }
    }

    /// Zeroes the state of these lanes (models taken out of the ensemble).
    pub fn clear(&mut self, lanes: &[usize]) {
        let r = self.rates.len();
        for state in [&mut self.first, &mut self.second] {
            for row in state.chunks_exact_mut(r) {
                lanes.iter().for_each(|&l| row[l] = 0.0);
            }
        }
    }
}

dispatch!(
    /// Keras RMSprop over every row of lanes.
    rmsprop, rmsprop_avx2, rmsprop_with,
    (params: &mut [f32], grads: &[f32], mean_square: &mut [f32], scale: &[f32], keep: f32,
     eps: f32)
);

#[inline(always)]
fn rmsprop_with<const FMA: bool>(
    params: &mut [f32],
    grads: &[f32],
    mean_square: &mut [f32],
    scale: &[f32],
    keep: f32,
    eps: f32,
) {
    let lanes = scale.len();
    let rows = params
        .chunks_exact_mut(lanes)
        .zip(grads.chunks_exact(lanes))
        .zip(mean_square.chunks_exact_mut(lanes));
    for ((w, g), s) in rows {
        for (((w, &g), s), &scale) in w.iter_mut().zip(g).zip(s.iter_mut()).zip(scale) {
            *s += keep * (g * g - *s);
            let denom = (*s + eps).sqrt() * scale;
            *w += g / denom;
        }
    }
}

dispatch!(
    /// Keras Adam over every row of lanes; `weights` are 1 - beta1, 1 - beta2 and epsilon.
    adam, adam_avx2, adam_with,
    (params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], scale: &[f32],
     weights: [f32; 3])
);

#[inline(always)]
fn adam_with<const FMA: bool>(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    scale: &[f32],
    weights: [f32; 3],
) {
    let [w1, w2, eps] = weights;
    let lanes = scale.len();
    let rows = params
        .chunks_exact_mut(lanes)
        .zip(grads.chunks_exact(lanes))
        .zip(m.chunks_exact_mut(lanes))
        .zip(v.chunks_exact_mut(lanes));
    for (((w, g), m), v) in rows {
        let lanes = w
            .iter_mut()
            .zip(g)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .zip(scale);
        for ((((w, &g), m), v), &scale) in lanes {
            *m += w1 * (g - *m);
            *v += w2 * (g * g - *v);
            let denom = (v.sqrt() + eps) * scale;
            *w += *m / denom;
        }
    }
}

dispatch!(
    /// Keras SGD (with momentum when it is not 0) over every row of lanes.
    sgd, sgd_avx2, sgd_with,
    (params: &mut [f32], grads: &[f32], velocity: &mut [f32], rates: &[f32], momentum: f32)
);

#[inline(always)]
fn sgd_with<const FMA: bool>(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    rates: &[f32],
    momentum: f32,
) {
    let lanes = rates.len();
    let rows = params
        .chunks_exact_mut(lanes)
        .zip(grads.chunks_exact(lanes))
        .zip(velocity.chunks_exact_mut(lanes));
    for ((w, g), u) in rows {
        for (((w, &g), u), &lr) in w.iter_mut().zip(g).zip(u.iter_mut()).zip(rates) {
            if momentum == 0.0 {
                *w -= g * lr;
            } else {
                *u = *u * momentum - g * lr;
                *w += *u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;
    use tch::Tensor;

    /// Two lanes with different rates against `optim.rs` run on each lane alone: the same
    /// numbers to float32 rounding, for every rule.
    #[test]
    fn each_lane_follows_the_tensor_optimizer() {
        let grads: [[f32; 2]; 3] = [[0.5, -2.0], [-1.0, 4.0], [0.25, 0.5]];
        for kind in [
            OptimizerKind::Rmsprop,
            OptimizerKind::Adam,
            OptimizerKind::Sgd,
        ] {
            let mut config = OptimizerConfig::keras(kind);
            config.momentum = 0.5;
            let rates = [0.1, 0.003];
            // Two parameters, two lanes: row j holds parameter j of both models.
            let mut lanes = vec![1.0f32; 4];
            let mut opt = LaneOptimizer::new(&config, &lanes, &rates);
            for g in grads {
                opt.step(&mut lanes, &[g[0], g[0], g[1], g[1]]);
            }
            for (lane, &lr) in rates.iter().enumerate() {
                let mut alone = config.clone();
                alone.learning_rate = lr;
                let mut w = Tensor::from_slice(&[1.0f32, 1.0]);
                let mut reference = Optimizer::new(&alone, &w);
                for g in grads {
                    reference.step(&mut w, &Tensor::from_slice(&g));
                }
                let want = Vec::<f32>::try_from(&w).unwrap();
                for (j, want) in want.iter().enumerate() {
                    let got = lanes[j * 2 + lane];
                    assert!(
                        (got - want).abs() <= 2e-7 * want.abs().max(1.0),
                        "{kind:?}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
