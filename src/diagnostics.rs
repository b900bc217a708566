//! What a gradient record says beyond the kernel gradient: how saturated each layer's
//! activations are, the back-propagated signal, and fixed-bin histograms.
//!
//! An engine copies out, at a record point only, each layer's outputs and the gradient with
//! respect to its pre-activations over the step's batch (see `Signals`); everything here turns
//! those host copies into the few numbers per layer the JSON keeps. Both engines share it, so
//! their records differ only where their arithmetic does.

use crate::config::Activation;
use crate::model::LayerSlot;
use crate::record::{summarize, ActivationStats, Histogram, SaturationRule, SignalStats};

/// Bins of every histogram: enough to see a shape, few enough that a large network's history
/// stays small.
pub const BINS: usize = 32;

/// How close to its bound a bounded activation must come to count as saturated: within 3% of
/// its range, where its derivative has fallen below about 3% (sigmoid) or 6% (tanh) of its peak.
const MARGIN: f64 = 0.03;

/// SELU's negative bound is -scale * alpha (Klambauer et al., 2017).
const SELU_FLOOR: f64 = 1.050_700_987_355_480_5 * 1.673_263_242_354_377_3;

/// The saturation rule of a hidden activation. Activations with no flat region (leaky ReLU,
/// GELU, softplus, linear) have none: their saturated share is null.
pub fn hidden_rule(activation: Activation) -> SaturationRule {
    let name = crate::cli::kebab(activation);
    let hi = 1.0 - MARGIN;
    match activation {
        Activation::Sigmoid => SaturationRule::outside(name, MARGIN, hi),
        Activation::Tanh | Activation::Softsign => SaturationRule::outside(name, -hi, hi),
        Activation::Relu => SaturationRule {
            activation: name,
            rule: "a == 0 (dead)".to_string(),
            below: None,
            above: None,
            equals: Some(0.0),
        },
        Activation::Elu => SaturationRule::below(name, -hi),
        Activation::Selu => SaturationRule::below(name, -hi * SELU_FLOOR),
        Activation::LeakyRelu | Activation::Gelu | Activation::Softplus | Activation::Linear => {
            SaturationRule {
                activation: name,
                rule: "none".to_string(),
                below: None,
                above: None,
                equals: None,
            }
        }
    }
}

/// The output layer's rule, applied to the network's probability sigmoid(logit).
pub fn output_rule() -> SaturationRule {
    let mut rule = SaturationRule::outside("sigmoid".to_string(), MARGIN, 1.0 - MARGIN);
    rule.rule = format!("p < {MARGIN} or p > {}, p = sigmoid(logit)", 1.0 - MARGIN);
    rule
}

impl SaturationRule {
    fn outside(activation: String, below: f64, above: f64) -> SaturationRule {
        SaturationRule {
            activation,
            rule: format!("a < {below} or a > {above}"),
            below: Some(below),
            above: Some(above),
            equals: None,
        }
    }

    fn below(activation: String, below: f64) -> SaturationRule {
        SaturationRule {
            activation,
            rule: format!("a < {below}"),
            below: Some(below),
            above: None,
            equals: None,
        }
    }

    /// False for an activation with no rule.
    pub fn applies(&self) -> bool {
        self.below.is_some() || self.above.is_some() || self.equals.is_some()
    }

    /// True when the output `a` is saturated by this rule.
    pub fn saturates(&self, a: f64) -> bool {
        self.below.is_some_and(|b| a < b)
            || self.above.is_some_and(|b| a > b)
            || self.equals.is_some_and(|e| a == e)
    }
}

/// The activation's derivative f'(z) from its output a = f(z), where the output determines
/// it (GELU's does not). At a kink (ReLU at 0) the derivative of the side libtorch uses.
fn slope(activation: Activation, a: f64) -> Option<f64> {
    let selu_scale = 1.050_700_987_355_480_5;
    Some(match activation {
        Activation::Sigmoid => a * (1.0 - a),
        Activation::Tanh => 1.0 - a * a,
        Activation::Relu => f64::from(u8::from(a > 0.0)),
        Activation::LeakyRelu if a > 0.0 => 1.0,
        Activation::LeakyRelu => crate::activation::LEAKY_SLOPE,
        Activation::Elu if a > 0.0 => 1.0,
        Activation::Elu => a + 1.0,
        Activation::Selu if a > 0.0 => selu_scale,
        Activation::Selu => a + SELU_FLOOR,
        Activation::Softplus => -(-a).exp_m1(),
        Activation::Softsign => (1.0 - a.abs()).powi(2),
        Activation::Linear => 1.0,
        Activation::Gelu => return None,
    })
}

/// The mean of f'(z) over outputs `a`: on average, the factor by which the layer's activation
/// scales the signal flowing back through it (sigmoid's is at most 0.25, which is why a deep
/// sigmoid network's gradient shrinks toward the input even where no unit saturates).
fn mean_slope(activation: Activation, a: &[f32]) -> Option<f64> {
    let total: Option<f64> = a.iter().map(|&v| slope(activation, v as f64)).sum();
    total.map(|t| t / a.len() as f64)
}

/// The fixed histogram range of an activation's outputs, where it has one.
fn bounded_range(activation: Activation) -> Option<(f64, f64)> {
    match activation {
        Activation::Sigmoid => Some((0.0, 1.0)),
        Activation::Tanh | Activation::Softsign => Some((-1.0, 1.0)),
        _ => None,
    }
}

/// `BINS` equal-width bins from `low` to `high`; a value equal to `high` goes in the last bin,
/// values outside the range or not finite are left out. With `low == high` every value equal to
/// it lands in bin 0.
pub fn histogram(values: &[f32], low: f64, high: f64) -> Histogram {
    let mut counts = vec![0u64; BINS];
    let width = (high - low) / BINS as f64;
    for &v in values {
        let v = v as f64;
        if !(v >= low && v <= high) {
            continue;
        }
        let bin = if width > 0.0 {
            (((v - low) / width) as usize).min(BINS - 1)
        } else {
            0
        };
        counts[bin] += 1;
    }
    Histogram { low, high, counts }
}

/// The finite values' smallest and largest (NaN, NaN when there are none).
pub fn finite_range(values: &[f32]) -> (f64, f64) {
    let finite = values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    finite.fold((f64::NAN, f64::NAN), |(lo, hi), v| (v.min(lo), v.max(hi)))
}

/// A kernel gradient's histogram over [-m, m], m its largest magnitude, so that zero sits in
/// the middle and a sign bias shows.
pub fn gradient_histogram(kernel: &[f32]) -> Histogram {
    let (lo, hi) = finite_range(kernel);
    let m = lo.abs().max(hi.abs());
    histogram(kernel, -m, m)
}

/// Statistics of one layer's outputs `a`, laid out `[units][points]`.
pub fn activation_stats(
    a: &[f32],
    units: usize,
    rule: &SaturationRule,
    range: Option<(f64, f64)>,
) -> ActivationStats {
    let s = summarize(a);
    let (low, high) = range.unwrap_or_else(|| finite_range(a));
    let (saturated, saturated_units) = if rule.applies() && !a.is_empty() {
        let hit = |v: &f32| rule.saturates(*v as f64);
        let share = a.iter().filter(|v| hit(v)).count() as f64 / a.len() as f64;
        let points = a.len() / units;
        let whole = a.chunks_exact(points).filter(|u| u.iter().all(hit)).count();
        (Some(share), Some(whole))
    } else {
        (None, None)
    };
    ActivationStats {
        mean: s.mean,
        sd: s.sd,
        mean_slope: None,
        saturated,
        saturated_units,
        histogram: histogram(a, low, high),
    }
}

/// Mean, S.D. and mean magnitude of a back-propagated signal.
pub fn signal_stats(dz: &[f32]) -> SignalStats {
    let s = summarize(dz);
    SignalStats {
        mean: s.mean,
        sd: s.sd,
        mean_abs: s.mean_abs,
    }
}

/// Where each layer's copies sit in one model's signals over `points` points: every layer's
/// outputs (the logits for the output layer), input side first, then every layer's gradient
/// with respect to its pre-activations; each `[units][points]`.
pub struct Signals<'a> {
    values: &'a [f32],
    slots: &'a [LayerSlot],
    points: usize,
}

impl<'a> Signals<'a> {
    /// Floats one model's signals take over `points` points.
    pub fn len(slots: &[LayerSlot], points: usize) -> usize {
        2 * points * slots.iter().map(|s| s.units).sum::<usize>()
    }

    /// Reads one model's signals; panics when `values` has the wrong length (an engine bug).
    pub fn new(values: &'a [f32], slots: &'a [LayerSlot], points: usize) -> Signals<'a> {
        assert_eq!(
            values.len(),
            Signals::len(slots, points),
            "signal copy size"
        );
        Signals {
            values,
            slots,
            points,
        }
    }

    fn offset(&self, layer: usize) -> usize {
        self.points * self.slots[..layer].iter().map(|s| s.units).sum::<usize>()
    }

    /// Layer l's outputs (the logits for the output layer), `[units][points]`.
    pub fn outputs(&self, layer: usize) -> &'a [f32] {
        let start = self.offset(layer);
        &self.values[start..start + self.slots[layer].units * self.points]
    }

    /// The gradient with respect to layer l's pre-activations, `[units][points]`.
    pub fn backprop(&self, layer: usize) -> &'a [f32] {
        let start = self.values.len() / 2 + self.offset(layer);
        &self.values[start..start + self.slots[layer].units * self.points]
    }

    /// Every layer's activation statistics, the output layer's from sigmoid(logit).
    pub fn activation_stats(&self, activation: Activation) -> Vec<ActivationStats> {
        let last = self.slots.len() - 1;
        let hidden = hidden_rule(activation);
        (0..=last)
            .map(|l| {
                let units = self.slots[l].units;
                if l < last {
                    let a = self.outputs(l);
                    let mut stats = activation_stats(a, units, &hidden, bounded_range(activation));
                    stats.mean_slope = mean_slope(activation, a);
                    return stats;
                }
                let p: Vec<f32> = self
                    .outputs(l)
                    .iter()
                    .map(|&z| (1.0 / (1.0 + (-(z as f64)).exp())) as f32)
                    .collect();
                activation_stats(&p, units, &output_rule(), Some((0.0, 1.0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_shares_and_saturated_units_by_hand() {
        // Two sigmoid units over four points: unit 0 = 0.01, 0.5, 0.99, 0.98 (three saturated),
        // unit 1 = 0.02, 0.985, 0.001, 0.999 (all four): share 7 / 8, one unit saturated
        // throughout.
        let a = [0.01, 0.5, 0.99, 0.98, 0.02, 0.985, 0.001, 0.999];
        let rule = hidden_rule(Activation::Sigmoid);
        let s = activation_stats(&a, 2, &rule, Some((0.0, 1.0)));
        assert_eq!(s.saturated, Some(7.0 / 8.0));
        assert_eq!(s.saturated_units, Some(1));
        assert_eq!(s.histogram.counts.iter().sum::<u64>(), 8);

        // tanh by magnitude: -0.98 and 0.975 are saturated, 0.96 and -0.5 are not.
        let a = [-0.98, 0.96, 0.975, -0.5];
        let s = activation_stats(&a, 1, &hidden_rule(Activation::Tanh), Some((-1.0, 1.0)));
        assert_eq!((s.saturated, s.saturated_units), (Some(0.5), Some(0)));

        // ReLU: exactly zero is dead; 1e-30 is alive. Three units over two points: unit 1 is
        // dead at both, unit 2 at one.
        let a = [0.3, 1.2, 0.0, 0.0, 0.0, 1e-30];
        let s = activation_stats(&a, 3, &hidden_rule(Activation::Relu), None);
        assert_eq!((s.saturated, s.saturated_units), (Some(0.5), Some(1)));

        // The slope from the outputs: sigmoid a(1 - a), tanh 1 - a^2; none for GELU.
        let sigmoid = mean_slope(Activation::Sigmoid, &[0.5, 0.9]).unwrap();
        assert!((sigmoid - (0.25 + 0.09) / 2.0).abs() < 1e-7, "{sigmoid}");
        assert!((mean_slope(Activation::Tanh, &[0.5, -0.5]).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(mean_slope(Activation::Relu, &[0.0, 2.0]), Some(0.5));
        assert_eq!(mean_slope(Activation::Gelu, &[0.5]), None);

        // No rule for GELU: nulls, not zeros.
        let s = activation_stats(&a, 3, &hidden_rule(Activation::Gelu), None);
        assert_eq!((s.saturated, s.saturated_units), (None, None));
    }

    #[test]
    fn histogram_bins_by_hand() {
        // [0, 1] in 32 bins of 1/32: 0 -> bin 0, 0.5 -> bin 16, 1 (the upper edge) -> bin 31;
        // 1.5 and NaN are left out.
        let h = histogram(&[0.0, 0.5, 1.0, 1.5, f32::NAN], 0.0, 1.0);
        let nonzero: Vec<(usize, u64)> = h
            .counts
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, c)| c > 0)
            .collect();
        assert_eq!(nonzero, [(0, 1), (16, 1), (31, 1)]);

        // A gradient's range is symmetric about zero.
        let h = gradient_histogram(&[-0.25, 1.0, 0.5]);
        assert_eq!((h.low, h.high), (-1.0, 1.0));
        assert_eq!(h.counts.iter().sum::<u64>(), 3);

        // All values equal: one full bin.
        let h = histogram(&[2.0, 2.0], 2.0, 2.0);
        assert_eq!(h.counts[0], 2);
    }

    #[test]
    fn signals_split_by_layer_and_the_output_is_a_probability() {
        // A 2-3-1 network over two points: outputs of 3 + 1 units, then their gradients.
        let (slots, _) = crate::model::layout(&[2, 3, 1]);
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let signals = Signals::new(&values, &slots, 2);
        assert_eq!(signals.outputs(0), &values[0..6]);
        assert_eq!(signals.outputs(1), &values[6..8]);
        assert_eq!(signals.backprop(0), &values[8..14]);
        assert_eq!(signals.backprop(1), &values[14..16]);

        // Logits 0 and 0 are probabilities 0.5: mean 0.5, nothing saturated.
        let mut values = vec![0.5f32; 16];
        values[6..8].fill(0.0);
        let stats = Signals::new(&values, &slots, 2).activation_stats(Activation::Sigmoid);
        assert_eq!(stats[1].mean, 0.5);
        assert_eq!(stats[1].saturated, Some(0.0));
    }
}
