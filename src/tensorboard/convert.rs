//! One run JSON as TensorBoard scalars and histograms.
//!
//! Every value is placed at the number of updates applied when it was measured, so all charts of
//! a run share one step axis: a gradient record at its `global_step` (read before that update),
//! an epoch's metrics and weights at the end of the epoch (epoch x steps per epoch), the
//! initial weights and the evaluation before training at 0, the one after training at the last
//! step. Tags are `quantity/layer`, so TensorBoard puts each quantity's layers side by side in
//! one section. Null numbers (a diverged run, a statistic a rule leaves undefined) are left out
//! rather than drawn as NaN.

use super::events::{EventFile, HistogramProto, SummaryValue};
use super::hparams::{self, Knobs};
use crate::diagnostics;
use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The scalars each gradient record's layers give: (key in the layer object, tag section).
const GRADIENT_SCALARS: [(&str, &str); 5] = [
    ("mean", "grad_mean"),
    ("sd", "grad_sd"),
    ("mean_abs", "grad_mean_abs"),
    ("l2", "grad_l2"),
    ("update_ratio", "update_ratio"),
];

/// The scalars of a layer's `activations` in a gradient record.
const ACTIVATION_SCALARS: [(&str, &str); 5] = [
    ("mean", "activation_mean"),
    ("sd", "activation_sd"),
    ("mean_slope", "activation_slope"),
    ("saturated", "saturated_share"),
    ("saturated_units", "saturated_units"),
];

/// The scalars of a layer's `backprop` (the back-propagated signal dLoss/dz).
const BACKPROP_SCALARS: [(&str, &str); 3] = [
    ("mean", "backprop_mean"),
    ("sd", "backprop_sd"),
    ("mean_abs", "backprop_mean_abs"),
];

/// A sweep run's place in TensorBoard's HParams table: its knobs and its session's name.
pub struct Session<'a> {
    /// The knobs that differ between the sweep's runs, with this run's values.
    pub knobs: &'a Knobs,
    /// The session's name, unique in the sweep.
    pub name: &'a str,
}

/// The run's event file. `end_time` (seconds since the Unix epoch) is when training ended; the
/// run's `wall_time_s` is spread evenly over its steps before it, so TensorBoard's relative-time
/// axis shows training time. A sweep's run also opens and closes its HParams session.
pub fn run_events(run: &Value, end_time: f64, session: Option<Session>) -> Result<Vec<u8>> {
    let layout = Layout::of(run)?;
    let clock = Clock::new(run, &layout, end_time);
    let mut file = EventFile::new(clock.at(0));

    // The whole training set before training, then each epoch's fit history and weights.
    let mut values = evaluation(&run["evaluation"]["before"], "before_training");
    if let Some(session) = &session {
        values.push(hparams::session_start(
            session.knobs,
            session.name,
            clock.at(0),
        ));
    }
    file.write(0, clock.at(0), values);
    let epochs = run["epochs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for epoch in epochs {
        let step = layout.epoch_end(
            epoch["epoch"]
                .as_u64()
                .context("an epoch without a number")?,
        );
        let mut values = Vec::new();
        scalar(&mut values, "loss/epoch", &epoch["loss"]);
        scalar(&mut values, "accuracy/epoch", &epoch["accuracy"]);
        file.write(step, clock.at(step), values);
    }
    for snapshot in run["weights"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let epoch = snapshot["epoch"]
            .as_u64()
            .context("a weight snapshot without an epoch")?;
        layout.check(snapshot, "weight snapshot")?;
        let step = layout.epoch_end(epoch);
        file.write(step, clock.at(step), weights(&layout, snapshot));
    }

    // Gradient records with their diagnostics, at the step they were read.
    for record in run["gradients"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let step = record["global_step"]
            .as_u64()
            .context("a gradient record without a step")?;
        layout.check(record, "gradient record")?;
        let step = step as i64;
        file.write(step, clock.at(step), gradients(&layout, record));
    }

    // The evaluation after training and the run's one-number summary, at its last step.
    let last = clock.last_step;
    let mut values = evaluation(&run["evaluation"]["after"], "after_training");
    scalar(
        &mut values,
        "vanishing_index/median_first_layer",
        &run["median_vanishing_index"],
    );
    if session.is_some() {
        let completed = run["status"].as_str() == Some("completed");
        values.push(hparams::session_end(completed, clock.at(last)));
    }
    file.write(last, clock.at(last), values);
    Ok(file.into_bytes())
}

/// The shape facts the step axis and the tags need.
struct Layout {
    /// Layer names, input side first (`dense_1`, ...).
    names: Vec<String>,
    /// Updates per epoch.
    steps_per_epoch: u64,
}

impl Layout {
    fn of(run: &Value) -> Result<Layout> {
        let names = run["layers"]
            .as_array()
            .context("no \"layers\" list")?
            .iter()
            .map(|l| l["name"].as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .context("a layer without a name")?;
        let samples = run["data"]["samples"].as_u64().context("no data.samples")?;
        let batch = run["config"]["batch_size"]
            .as_u64()
            .context("no config.batch_size")?;
        if samples == 0 || batch == 0 {
            bail!("data.samples and config.batch_size must be positive");
        }
        Ok(Layout {
            names,
            steps_per_epoch: samples.div_ceil(batch.min(samples)),
        })
    }

    /// A snapshot or record has one entry per layer, as `plot` also requires.
    fn check(&self, holder: &Value, what: &str) -> Result<()> {
        let found = holder["layers"].as_array().map_or(0, Vec::len);
        let layers = self.names.len();
        if found != layers {
            bail!("a {what} with {found} layers in a run of {layers}");
        }
        Ok(())
    }

    /// The step at which epoch `epoch` (from 1; 0 for initialization) ends.
    fn epoch_end(&self, epoch: u64) -> i64 {
        (epoch * self.steps_per_epoch) as i64
    }

    /// `section/layer` for layer `i`.
    fn tag(&self, section: &str, i: usize) -> String {
        format!("{section}/{}", self.names[i])
    }
}

/// Wall times for steps: training time spread evenly over the run's steps, ending at `end`.
struct Clock {
    start: f64,
    seconds_per_step: f64,
    last_step: i64,
}

impl Clock {
    fn new(run: &Value, layout: &Layout, end: f64) -> Clock {
        let trained = run["epochs"].as_array().map_or(0, Vec::len) as u64;
        let last_record = run["gradients"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["global_step"].as_u64())
            .unwrap_or(0) as i64;
        let last_step = layout.epoch_end(trained).max(last_record);
        let seconds = run["wall_time_s"].as_f64().unwrap_or(0.0).max(0.0);
        Clock {
            start: end - seconds,
            seconds_per_step: seconds / last_step.max(1) as f64,
            last_step,
        }
    }

    fn at(&self, step: i64) -> f64 {
        self.start + self.seconds_per_step * step as f64
    }
}

/// Pushes a scalar unless the JSON number is null (or missing).
fn scalar(values: &mut Vec<SummaryValue>, tag: impl Into<String>, number: &Value) {
    if let Some(x) = number.as_f64() {
        values.push(SummaryValue::scalar(tag, x));
    }
}

/// An evaluation on the whole training set as `loss/<when>` and `accuracy/<when>`. Before and
/// after training are separate tags, not two points of one, so that the HParams table's last
/// value of `accuracy/after_training` is never a diverged run's untrained accuracy.
fn evaluation(metrics: &Value, when: &str) -> Vec<SummaryValue> {
    let mut values = Vec::new();
    scalar(&mut values, format!("loss/{when}"), &metrics["loss"]);
    scalar(
        &mut values,
        format!("accuracy/{when}"),
        &metrics["accuracy"],
    );
    values
}

/// Each layer's kernel mean and S.D., and its histogram where the kernel was recorded.
fn weights(layout: &Layout, snapshot: &Value) -> Vec<SummaryValue> {
    let mut values = Vec::new();
    for (i, layer) in layers(snapshot, layout) {
        scalar(&mut values, layout.tag("weight_mean", i), &layer["mean"]);
        scalar(&mut values, layout.tag("weight_sd", i), &layer["sd"]);
        if let Some(kernel) = matrix(&layer["kernel"]) {
            values.push(SummaryValue::histogram(
                layout.tag("weights", i),
                histogram_of(&kernel),
            ));
        }
    }
    values
}

/// A gradient record: the loss on its batch, every layer's kernel-gradient statistics, update
/// ratio, vanishing index and diagnostics, and the histograms.
fn gradients(layout: &Layout, record: &Value) -> Vec<SummaryValue> {
    let mut values = Vec::new();
    scalar(&mut values, "loss/gradient_record", &record["loss"]);
    let index = record["vanishing_index"].as_array();
    for (i, layer) in layers(record, layout) {
        for (key, section) in GRADIENT_SCALARS {
            scalar(&mut values, layout.tag(section, i), &layer[key]);
        }
        if let Some(ratio) = index.and_then(|index| index.get(i)) {
            scalar(&mut values, layout.tag("vanishing_index", i), ratio);
        }

        // The recorded histogram where the diagnostics are on, else one of the full matrix.
        let gradient =
            if let Some(counts) = binned(&layer["histogram"], &layer["mean"], &layer["sd"]) {
                Some(counts)
            } else {
                matrix(&layer["kernel"]).map(|kernel| histogram_of(&kernel))
            };
        if let Some(histogram) = gradient {
            values.push(SummaryValue::histogram(
                layout.tag("gradients", i),
                histogram,
            ));
        }

        let activations = &layer["activations"];
        if activations.is_object() {
            for (key, section) in ACTIVATION_SCALARS {
                scalar(&mut values, layout.tag(section, i), &activations[key]);
            }
            let counts = &activations["histogram"];
            if let Some(histogram) = binned(counts, &activations["mean"], &activations["sd"]) {
                values.push(SummaryValue::histogram(
                    layout.tag("activations", i),
                    histogram,
                ));
            }
        }
        for (key, section) in BACKPROP_SCALARS {
            scalar(&mut values, layout.tag(section, i), &layer["backprop"][key]);
        }
    }
    values
}

/// The `layers` list of a snapshot or record, each with its index, no further than `layout`
/// names layers.
fn layers<'a>(holder: &'a Value, layout: &Layout) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
    let count = layout.names.len();
    holder["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .take(count)
        .enumerate()
}

/// A matrix (list of rows) as its entries, finite or not; None when absent or not numbers.
fn matrix(value: &Value) -> Option<Vec<f32>> {
    let rows = value.as_array()?;
    let mut entries = Vec::new();
    for row in rows {
        for x in row.as_array()? {
            entries.push(x.as_f64().map_or(f32::NAN, |x| x as f32));
        }
    }
    Some(entries)
}

/// The equal bins of a gradtrace histogram `{low, high, counts}` as TensorBoard buckets, with
/// the sum and sum of squares from the values' mean and population S.D.
fn binned(histogram: &Value, mean: &Value, sd: &Value) -> Option<HistogramProto> {
    let low = histogram["low"].as_f64()?;
    let high = histogram["high"].as_f64()?;
    let counts: Vec<f64> = histogram["counts"]
        .as_array()?
        .iter()
        .map(Value::as_f64)
        .collect::<Option<_>>()?;
    if counts.is_empty() {
        return None;
    }
    let num: f64 = counts.iter().sum();
    let (mean, sd) = (mean.as_f64().unwrap_or(0.0), sd.as_f64().unwrap_or(0.0));
    let (sum, sum_squares) = (mean * num, num * (sd * sd + mean * mean));
    Some(buckets(low, high, counts, sum, sum_squares))
}

/// A histogram of a whole matrix in `diagnostics::BINS` bins over its finite range, with its
/// exact sum and sum of squares.
fn histogram_of(values: &[f32]) -> HistogramProto {
    let (low, high) = diagnostics::finite_range(values);
    let (low, high) = if low.is_finite() {
        (low, high)
    } else {
        (0.0, 0.0)
    };
    let bins = diagnostics::histogram(values, low, high);
    let finite = values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let (sum, sum_squares) = finite.fold((0.0, 0.0), |(s, q), v| (s + v, q + v * v));
    let counts = bins.counts.iter().map(|&c| c as f64).collect();
    buckets(low, high, counts, sum, sum_squares)
}

/// Equal-width buckets from `low` to `high` (the last edge exactly `high`).
fn buckets(low: f64, high: f64, counts: Vec<f64>, sum: f64, sum_squares: f64) -> HistogramProto {
    let n = counts.len();
    let width = (high - low) / n as f64;
    let limits = (1..=n).map(|k| if k == n { high } else { low + width * k as f64 });
    HistogramProto {
        min: low,
        max: high,
        num: counts.iter().sum(),
        sum,
        sum_squares,
        bucket_limit: limits.collect(),
        bucket: counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorboard::events::{read_events, Payload, What};
    use serde_json::json;

    /// A two-layer run of 2 epochs at 3 steps an epoch (10 points, batch 4), with one gradient
    /// record holding diagnostics and one (after training) with the kernel histogram only.
    fn tiny_run() -> Value {
        let gradient = |sd: f64| {
            json!({"mean": 0.0, "sd": sd, "mean_abs": sd, "l2": 1.0, "update_ratio": null,
                   "histogram": {"low": -1.0, "high": 1.0, "counts": [1, 2, 3, 4]}})
        };
        let mut first = gradient(0.5);
        first["update_ratio"] = json!(0.01);
        first["activations"] = json!({"mean": 0.5, "sd": 0.1, "mean_slope": 0.2,
            "saturated": 0.0, "saturated_units": 0,
            "histogram": {"low": 0.0, "high": 1.0, "counts": [0, 6, 4, 0]}});
        first["backprop"] = json!({"mean": 0.0, "sd": 0.03, "mean_abs": 0.02});
        json!({
            "layers": [{"name": "dense_1"}, {"name": "dense_2"}],
            "data": {"samples": 10},
            "config": {"batch_size": 4},
            "evaluation": {"before": {"loss": 0.7, "accuracy": 0.5},
                           "after": {"loss": null, "accuracy": 0.9}},
            "epochs": [{"epoch": 1, "loss": 0.6, "accuracy": 0.6},
                       {"epoch": 2, "loss": 0.4, "accuracy": 0.8}],
            "weights": [{"epoch": 0, "layers": [
                {"mean": 0.0, "sd": 1.0, "kernel": [[-1.0, 1.0], [0.5, 0.5]]},
                {"mean": 0.1, "sd": 0.2}]}],
            "gradients": [
                {"global_step": 0, "loss": 0.7, "layers": [first, gradient(0.25)],
                 "vanishing_index": [2.0, 1.0]},
                {"global_step": 6, "loss": 0.3, "layers": [gradient(0.1), gradient(0.1)],
                 "vanishing_index": [1.0, 1.0]}],
            "median_vanishing_index": 1.5,
            "wall_time_s": 6.0,
        })
    }

    /// (step, wall time, tag) -> payload, for every value in the file.
    fn values(bytes: &[u8]) -> Vec<(i64, f64, String, Payload)> {
        let events = read_events(bytes).unwrap();
        let mut out = Vec::new();
        for event in events.into_iter().skip(1) {
            let Some(What::Summary(summary)) = event.what else {
                panic!("only the first event lacks a summary");
            };
            for value in summary.value {
                out.push((
                    event.step,
                    event.wall_time,
                    value.tag,
                    value.payload.unwrap(),
                ));
            }
        }
        out
    }

    fn scalar_at(all: &[(i64, f64, String, Payload)], tag: &str) -> Vec<(i64, f32)> {
        all.iter()
            .filter(|(_, _, t, _)| t == tag)
            .map(|(step, _, _, p)| match p {
                Payload::Scalar(x) => (*step, *x),
                other => panic!("{tag} is not a scalar: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_value_sits_at_the_updates_applied_when_it_was_measured() {
        let all = values(&run_events(&tiny_run(), 1000.0, None).unwrap());
        assert_eq!(scalar_at(&all, "loss/epoch"), vec![(3, 0.6), (6, 0.4)]);
        assert_eq!(scalar_at(&all, "grad_sd/dense_1"), vec![(0, 0.5), (6, 0.1)]);
        assert_eq!(
            scalar_at(&all, "vanishing_index/dense_1"),
            vec![(0, 2.0), (6, 1.0)]
        );
        assert_eq!(scalar_at(&all, "weight_sd/dense_2"), vec![(0, 0.2)]);
        assert_eq!(scalar_at(&all, "backprop_sd/dense_1"), vec![(0, 0.03)]);
        assert_eq!(scalar_at(&all, "saturated_units/dense_1"), vec![(0, 0.0)]);
        assert_eq!(
            scalar_at(&all, "vanishing_index/median_first_layer"),
            vec![(6, 1.5)]
        );

        // Nulls are left out: the loss after training, the update ratio after training.
        assert_eq!(scalar_at(&all, "loss/before_training"), vec![(0, 0.7)]);
        assert_eq!(scalar_at(&all, "loss/after_training"), vec![]);
        assert_eq!(scalar_at(&all, "accuracy/before_training"), vec![(0, 0.5)]);
        assert_eq!(scalar_at(&all, "accuracy/after_training"), vec![(6, 0.9)]);
        assert_eq!(scalar_at(&all, "update_ratio/dense_1"), vec![(0, 0.01)]);

        // 6 s of training over 6 steps ending at t = 1000: step k at 994 + k.
        for (step, wall, tag, _) in &all {
            assert_eq!(*wall, 994.0 + *step as f64, "{tag} at step {step}");
        }
    }

    #[test]
    fn histograms_keep_the_recorded_bins_and_the_values_moments() {
        let all = values(&run_events(&tiny_run(), 0.0, None).unwrap());
        let histogram = |tag: &str| {
            let found = all.iter().find(|(_, _, t, _)| t == tag);
            match found.map(|(_, _, _, p)| p) {
                Some(Payload::Histogram(h)) => h.clone(),
                other => panic!("{tag}: {other:?}"),
            }
        };

        let gradient = histogram("gradients/dense_1");
        assert_eq!(
            (gradient.min, gradient.max, gradient.num),
            (-1.0, 1.0, 10.0)
        );
        assert_eq!(gradient.bucket_limit, vec![-0.5, 0.0, 0.5, 1.0]);
        assert_eq!(gradient.bucket, vec![1.0, 2.0, 3.0, 4.0]);
        // mean 0, S.D. 0.5 over 10 values: sum 0, sum of squares 10 x 0.25.
        assert_eq!((gradient.sum, gradient.sum_squares), (0.0, 2.5));

        let activations = histogram("activations/dense_1");
        assert_eq!(activations.bucket, vec![0.0, 6.0, 4.0, 0.0]);
        assert!((activations.sum_squares - 10.0 * (0.01 + 0.25)).abs() < 1e-12);

        // The recorded kernel -1, 1, 0.5, 0.5 in 32 bins over [-1, 1], with exact moments.
        let weights = histogram("weights/dense_1");
        assert_eq!((weights.min, weights.max, weights.num), (-1.0, 1.0, 4.0));
        assert_eq!((weights.sum, weights.sum_squares), (1.0, 2.5));
        assert_eq!(weights.bucket.len(), diagnostics::BINS);
        assert_eq!(
            (weights.bucket[0], weights.bucket[24], weights.bucket[31]),
            (1.0, 2.0, 1.0)
        );
        assert_eq!(*weights.bucket_limit.last().unwrap(), 1.0);
        assert!(
            all.iter().all(|(_, _, t, _)| t != "weights/dense_2"),
            "no kernel, no histogram"
        );
    }

    #[test]
    fn a_file_without_layers_or_sizes_or_with_a_short_record_is_refused() {
        let mut run = tiny_run();
        run["layers"] = json!(null);
        assert!(run_events(&run, 0.0, None)
            .unwrap_err()
            .to_string()
            .contains("layers"));
        let mut run = tiny_run();
        run["config"]["batch_size"] = json!(0);
        assert!(run_events(&run, 0.0, None).is_err());
        let mut run = tiny_run();
        run["gradients"][1]["layers"] = json!([]);
        let error = run_events(&run, 0.0, None).unwrap_err().to_string();
        assert_eq!(error, "a gradient record with 0 layers in a run of 2");
    }
}
