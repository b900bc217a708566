//! Kernel initializers, drawn on the host from the run's own seeded generator.
//!
//! Drawing here rather than with libtorch's global generator keeps each run's weights a function
//! of its seed alone: the same on CPU and CUDA, and the same whichever thread or sweep runs it.

use crate::config::{Init, RunConfig};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};

/// Keras divides a truncated normal's S.D. by this so that, cut at two S.D., it keeps the
/// intended variance: the S.D. of a standard normal truncated to [-2, 2].
const TRUNCATION_SD: f64 = 0.879_625_661_034_239_8;

/// Draws one `fan_in x fan_out` kernel, row-major (entry `[i][j]` connects input i to unit j).
pub fn draw_kernel(
    config: &RunConfig,
    fan_in: usize,
    fan_out: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n = fan_in * fan_out;
    let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
    let draw: Box<dyn FnMut(&mut ChaCha8Rng) -> f64> = match config.init {
        Init::Normal => {
            let normal = Normal::new(config.init_mean, config.init_sd).expect("validated S.D.");
            Box::new(move |rng| normal.sample(rng))
        }
        Init::Uniform => {
            let uniform = Uniform::new(config.init_low, config.init_high);
            Box::new(move |rng| uniform.sample(rng))
        }
        Init::GlorotUniform => symmetric_uniform((6.0 / (fan_in + fan_out)).sqrt()),
        Init::HeUniform => symmetric_uniform((6.0 / fan_in).sqrt()),
        Init::GlorotNormal => truncated_normal((2.0 / (fan_in + fan_out)).sqrt()),
        Init::HeNormal => truncated_normal((2.0 / fan_in).sqrt()),
        Init::LecunNormal => truncated_normal((1.0 / fan_in).sqrt()),
    };
    let mut draw = draw;
    (0..n).map(|_| draw(rng) as f32).collect()
}

fn symmetric_uniform(limit: f64) -> Box<dyn FnMut(&mut ChaCha8Rng) -> f64> {
    Box::new(move |rng| rng.gen_range(-limit..=limit))
}

/// Normal with S.D. `sd`, as Keras draws it: a standard normal cut at ±2, scaled.
fn truncated_normal(sd: f64) -> Box<dyn FnMut(&mut ChaCha8Rng) -> f64> {
    let scale = sd / TRUNCATION_SD;
    Box::new(move |rng| loop {
        let z: f64 = StandardNormal.sample(rng);
        if z.abs() <= 2.0 {
            return z * scale;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Init;
    use rand::SeedableRng;

    fn moments(values: &[f32]) -> (f64, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let max = values.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        (mean, var.sqrt(), max)
    }

    fn draw(init: Init, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let mut config = crate::testing::tiny_config();
        config.init = init;
        draw_kernel(&config, fan_in, fan_out, &mut ChaCha8Rng::seed_from_u64(1))
    }

    #[test]
    fn each_initializer_has_the_variance_keras_documents() {
        // (initializer, fan_in, fan_out, expected S.D.)
        let cases = [
            (Init::GlorotUniform, 300, 100, (2.0f64 / 400.0).sqrt()),
            (Init::GlorotNormal, 300, 100, (2.0f64 / 400.0).sqrt()),
            (Init::HeUniform, 300, 100, (2.0f64 / 300.0).sqrt()),
            (Init::HeNormal, 300, 100, (2.0f64 / 300.0).sqrt()),
            (Init::LecunNormal, 300, 100, (1.0f64 / 300.0).sqrt()),
            (Init::Normal, 300, 100, 1.0),
        ];
        for (init, fan_in, fan_out, sd) in cases {
            let (mean, got, _) = moments(&draw(init, fan_in, fan_out));
            assert!(mean.abs() < 0.02 * sd.max(0.05), "{init:?}: mean {mean}");
            assert!(
                (got / sd - 1.0).abs() < 0.03,
                "{init:?}: S.D. {got}, expected {sd}"
            );
        }
    }

    #[test]
    fn bounded_initializers_stay_in_their_bounds() {
        let limit = (6.0f64 / 400.0).sqrt();
        assert!(moments(&draw(Init::GlorotUniform, 300, 100)).2 <= limit + 1e-6);
        let sd = (2.0f64 / 300.0).sqrt() / TRUNCATION_SD;
        assert!(moments(&draw(Init::HeNormal, 300, 100)).2 <= 2.0 * sd + 1e-6);
        let uniform = draw(Init::Uniform, 100, 100);
        assert!(uniform.iter().all(|&v| (-0.05..=0.05).contains(&v)));
    }
}
