//! The variance predictions of two initialization papers, measured at initialization.
//!
//! Glorot and Bengio (2010) show that, for a deep tanh network in its linear regime, each layer
//! multiplies the variance of the activations going forward, and of the back-propagated gradient
//! going toward the input, by `n Var(W)`: 1/3 with the then-standard U[-1/sqrt(n), 1/sqrt(n)],
//! 1 with their normalized initialization. He et al. (2015) show that a ReLU layer multiplies
//! them by `n Var(W) / 2` (a ReLU passes half of a symmetric signal's second moment): 1 with
//! their Var(W) = 2/n, 1/2 with Var(W) = 1/n. Each experiment here builds such a network with
//! zero biases, feeds it Gaussian points, back-propagates a random readout's gradient, and
//! measures every hidden layer's activation variance and the variance of the gradient with
//! respect to its pre-activations.

use crate::config::Activation;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::Serialize;
use tch::Tensor;

/// How an experiment's kernels are drawn; n is a layer's width (all layers are square).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaperInit {
    /// U[-1/sqrt(n), 1/sqrt(n)]: n Var(W) = 1/3 (the "standard" of Glorot and Bengio).
    Standard,
    /// U[-sqrt(6 / 2n), sqrt(6 / 2n)]: n Var(W) = 1 (their normalized initialization).
    Normalized,
    /// Normal with Var(W) = 2/n (He et al.).
    He,
    /// Normal with Var(W) = 1/n (what He et al. compare against).
    UnitVariance,
}

impl PaperInit {
    /// n Var(W).
    pub fn gain(self) -> f64 {
        match self {
            PaperInit::Standard => 1.0 / 3.0,
            PaperInit::Normalized | PaperInit::UnitVariance => 1.0,
            PaperInit::He => 2.0,
        }
    }

    fn draw(self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let count = n * n;
        let width = n as f64;
        let uniform = |limit: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
            let u = Uniform::new_inclusive(-limit, limit);
            (0..count).map(|_| u.sample(rng) as f32).collect()
        };
        let normal = |sd: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
            let d = Normal::new(0.0, sd).expect("a positive S.D.");
            (0..count).map(|_| d.sample(rng) as f32).collect()
        };
        match self {
            PaperInit::Standard => uniform(1.0 / width.sqrt(), rng),
            PaperInit::Normalized => uniform((6.0 / (2.0 * width)).sqrt(), rng),
            PaperInit::He => normal((2.0 / width).sqrt(), rng),
            PaperInit::UnitVariance => normal((1.0 / width).sqrt(), rng),
        }
    }
}

/// One network and what theory predicts for it.
#[derive(Clone, Debug, Serialize)]
pub struct Experiment {
    /// Short name, used in tables, files and figures.
    pub name: &'static str,
    /// Where the prediction comes from.
    pub source: &'static str,
    /// Hidden activation.
    pub activation: Activation,
    /// Kernel initializer.
    pub init: PaperInit,
    /// Hidden layers.
    pub layers: usize,
    /// Units per layer, and the input's width.
    pub width: usize,
    /// S.D. of the Gaussian input (small for tanh, to stay in its linear regime).
    pub input_sd: f64,
    /// Predicted ratio of one layer's variance to the previous layer's (forward, activations)
    /// and to the next layer's (backward, gradients): `n Var(W)`, halved for ReLU.
    pub predicted_ratio: f64,
}

/// The four experiments: the two papers' cases, each against its counterpart.
pub fn experiments() -> Vec<Experiment> {
    let glorot = "Glorot and Bengio (2010), deep tanh network near its linear regime";
    let he = "He, Zhang, Ren and Sun (2015), deep ReLU network";
    let tanh = |name, init: PaperInit| Experiment {
        name,
        source: glorot,
        activation: Activation::Tanh,
        init,
        layers: 5,
        width: 1000,
        input_sd: 0.1,
        predicted_ratio: init.gain(),
    };
    let relu = |name, init: PaperInit| Experiment {
        name,
        source: he,
        activation: Activation::Relu,
        init,
        layers: 20,
        width: 500,
        input_sd: 1.0,
        predicted_ratio: init.gain() / 2.0,
    };
    vec![
        tanh("tanh-standard", PaperInit::Standard),
        tanh("tanh-normalized", PaperInit::Normalized),
        relu("relu-he", PaperInit::He),
        relu("relu-unit-variance", PaperInit::UnitVariance),
    ]
}

/// Largest relative error allowed between the measured and the predicted ratio (geometric mean
/// over the layers). Each layer's ratio scatters by about sqrt(2 / n) (4% at n = 1000, 6% at
/// 500) around its expectation; tanh's curvature lowers the ratio a little even at S.D. 0.1.
pub const TOLERANCE: f64 = 0.1;

/// What one experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// The experiment.
    #[serde(flatten)]
    pub experiment: Experiment,
    /// Points fed through the network.
    pub batch: usize,
    /// Seed of the kernels, the input and the readout.
    pub seed: u64,
    /// Per hidden layer (input side first), the variance of its activations.
    pub activation_variance: Vec<f64>,
    /// Per hidden layer, the variance of the loss's gradient with respect to its
    /// pre-activations (the back-propagated signal).
    pub gradient_variance: Vec<f64>,
    /// Geometric mean over consecutive layers of activation_variance[l] / [l - 1].
    pub forward_ratio: f64,
    /// Geometric mean over consecutive layers of gradient_variance[l] / [l + 1].
    pub backward_ratio: f64,
    /// Both ratios within `TOLERANCE` of the prediction.
    pub agrees: bool,
}

/// Runs one experiment on `batch` points (float32, on the CPU).
pub fn measure(experiment: &Experiment, batch: usize, seed: u64) -> Measurement {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = experiment.width as i64;
    let gaussian = |count: usize, sd: f64, rng: &mut ChaCha8Rng| -> Tensor {
        let d = Normal::new(0.0, sd).expect("a positive S.D.");
        Tensor::from_slice(&(0..count).map(|_| d.sample(rng) as f32).collect::<Vec<_>>())
    };
    let kernels: Vec<Tensor> = (0..experiment.layers)
        .map(|_| Tensor::from_slice(&experiment.init.draw(experiment.width, &mut rng)).view([n, n]))
        .collect();
    let x =
        gaussian(batch * experiment.width, experiment.input_sd, &mut rng).view([batch as i64, n]);

    // Forward, keeping every pre-activation and activation.
    let mut pre = Vec::with_capacity(experiment.layers);
    let mut post = Vec::with_capacity(experiment.layers);
    let mut a = x;
    for kernel in &kernels {
        let z = a.mm(kernel);
        a = experiment.activation.forward(&z);
        pre.push(z);
        post.push(a.shallow_clone());
    }

    // Backward from a random linear readout of the last layer: its gradient is N(0, 1).
    let mut grad_a = gaussian(batch * experiment.width, 1.0, &mut rng).view([batch as i64, n]);
    let mut gradient_variance = vec![0.0; experiment.layers];
    for l in (0..experiment.layers).rev() {
        let grad_z = experiment.activation.backward(&grad_a, &pre[l], &post[l]);
        gradient_variance[l] = variance(&grad_z);
        grad_a = grad_z.mm(&kernels[l].tr());
    }
    let activation_variance: Vec<f64> = post.iter().map(variance).collect();

    let forward = geometric_mean(activation_variance.windows(2).map(|w| w[1] / w[0]));
    let backward = geometric_mean(gradient_variance.windows(2).map(|w| w[0] / w[1]));
    let close = |measured: f64| (measured / experiment.predicted_ratio - 1.0).abs() <= TOLERANCE;
    Measurement {
        experiment: experiment.clone(),
        batch,
        seed,
        agrees: close(forward) && close(backward),
        activation_variance,
        gradient_variance,
        forward_ratio: forward,
        backward_ratio: backward,
    }
}

/// Population variance of every entry, in f64.
fn variance(t: &Tensor) -> f64 {
    t.to_kind(tch::Kind::Double).var(false).double_value(&[])
}

fn geometric_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0), |(s, c), v| (s + v.ln(), c + 1));
    (sum / count as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prediction_is_reproduced() {
        // A smaller batch than the command's default: the ratios depend on the widths far more
        // than on the number of points.
        for experiment in experiments() {
            let m = measure(&experiment, 200, 1);
            assert!(
                m.agrees,
                "{}: forward {:.3}, backward {:.3}, predicted {:.3}",
                experiment.name, m.forward_ratio, m.backward_ratio, experiment.predicted_ratio
            );
        }
    }

    #[test]
    fn the_gains_are_those_of_the_distributions() {
        // Var U[-a, a] = a² / 3; n Var(W) from 250 000 draws of a 500-wide layer.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for init in [
            PaperInit::Standard,
            PaperInit::Normalized,
            PaperInit::He,
            PaperInit::UnitVariance,
        ] {
            let w = init.draw(500, &mut rng);
            let var = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64;
            assert!(
                (500.0 * var / init.gain() - 1.0).abs() < 0.01,
                "{init:?}: {}",
                500.0 * var
            );
        }
    }
}
