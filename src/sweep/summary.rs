//! Merging sweep indexes into one row per configuration, aggregated over seeds.

use super::grid::run_id;
use super::index::IndexEntry;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One configuration (every knob but the seed) and its runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    /// The knobs that differ between rows, as `knob path -> value` (e.g. `activation`,
    /// `optimizer.learning_rate`), so the table shows what was swept.
    pub knobs: BTreeMap<String, String>,
    /// Runs with a history (completed or diverged).
    pub runs: usize,
    /// Runs that raised an error (no history).
    pub failed: usize,
    /// Mean over runs of the final training-set accuracy.
    pub accuracy_mean: Option<f64>,
    /// Sample S.D. (n - 1) over runs of the final accuracy; none for a single run.
    pub accuracy_sd: Option<f64>,
    /// Mean over runs of the final training-set loss (finite values only).
    pub loss_mean: Option<f64>,
    /// Sample S.D. over runs of the final loss.
    pub loss_sd: Option<f64>,
    /// Share of runs whose loss became non-finite.
    pub diverged_share: f64,
    /// Mean over runs of first-layer over last-layer kernel-gradient S.D., at the first
    /// gradient record (below 1: the gradient shrinks toward the input).
    pub first_to_last_sd_ratio: Option<f64>,
    /// Mean over runs of each run's median first-layer vanishing index (first-layer over
    /// output-layer kernel-gradient S.D., median over the run's gradient records).
    pub vanishing_index: Option<f64>,
}

/// Deduplicates by run id (a successful line wins over a failed one), groups by configuration
/// without the seed, and aggregates. Rows come sorted by their knob values.
pub fn summarize(entries: &[IndexEntry]) -> Vec<SummaryRow> {
    let mut by_id: BTreeMap<&str, &IndexEntry> = BTreeMap::new();
    for entry in entries {
        let keep = match by_id.get(entry.id.as_str()) {
            Some(kept) => kept.status == "failed" && entry.status != "failed",
            None => true,
        };
        if keep {
            by_id.insert(&entry.id, entry);
        }
    }

    let mut groups: BTreeMap<String, (Value, Vec<&IndexEntry>)> = BTreeMap::new();
    for entry in by_id.values() {
        let mut config = entry.config.clone();
        config.seed = 0;
        let key = run_id(&config);
        let mut flat = serde_json::to_value(&config).expect("a config serializes");
        if let Some(object) = flat.as_object_mut() {
            object.remove("name");
            object.remove("seed");
        }
        groups
            .entry(key)
            .or_insert_with(|| (flat, Vec::new()))
            .1
            .push(entry);
    }

    // Only knobs that vary between groups become columns.
    let flats: Vec<BTreeMap<String, String>> = groups.values().map(|(v, _)| flatten(v)).collect();
    let varying: BTreeSet<&String> = flats
        .iter()
        .flat_map(|f| f.keys())
        .filter(|k| {
            flats
                .iter()
                .map(|f| f.get(*k))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();

    let mut rows: Vec<SummaryRow> = groups
        .values()
        .zip(&flats)
        .map(|((_, runs), flat)| {
            let knobs = flat
                .iter()
                .filter(|(k, _)| varying.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            aggregate(knobs, runs)
        })
        .collect();
    rows.sort_by(|a, b| {
        let pairs = a.knobs.values().zip(b.knobs.values());
        pairs
            .map(|(x, y)| natural(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows
}

/// Numbers by value (2 before 10), anything else as text.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

fn aggregate(knobs: BTreeMap<String, String>, entries: &[&IndexEntry]) -> SummaryRow {
    let finished: Vec<&&IndexEntry> = entries.iter().filter(|e| e.status != "failed").collect();
    let accuracy: Vec<f64> = finished.iter().filter_map(|e| e.final_accuracy).collect();
    let loss: Vec<f64> = finished.iter().filter_map(|e| e.final_loss).collect();
    let ratios: Vec<f64> = finished
        .iter()
        .filter_map(|e| {
            let first = (*e.first_record_sd.first()?)?;
            let last = (*e.first_record_sd.last()?)?;
            let ratio = first / last;
            ratio.is_finite().then_some(ratio)
        })
        .collect();
    let vanishing: Vec<f64> = finished
        .iter()
        .filter_map(|e| e.median_vanishing_index)
        .collect();
    let diverged = finished.iter().filter(|e| e.diverged).count();
    SummaryRow {
        knobs,
        runs: finished.len(),
        failed: entries.len() - finished.len(),
        accuracy_mean: mean(&accuracy),
        accuracy_sd: sample_sd(&accuracy),
        loss_mean: mean(&loss),
        loss_sd: sample_sd(&loss),
        diverged_share: if finished.is_empty() {
            0.0
        } else {
            diverged as f64 / finished.len() as f64
        },
        first_to_last_sd_ratio: mean(&ratios),
        vanishing_index: mean(&vanishing),
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn sample_sd(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    (values.len() > 1).then(|| {
        (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    })
}

/// `{"optimizer": {"kind": "adam"}}` -> `{"optimizer.kind": "adam"}`; lists as JSON text.
fn flatten(value: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    fn entry(id: &str, activation: Activation, seed: u64, acc: f64, loss: f64) -> IndexEntry {
        let mut config = crate::testing::tiny_config();
        config.activation = activation;
        config.seed = seed;
        IndexEntry {
            id: id.into(),
            status: "completed".into(),
            config,
            final_accuracy: Some(acc),
            final_loss: Some(loss),
            diverged: false,
            first_record_sd: vec![Some(0.001), Some(0.5), Some(0.01)],
            last_record_sd: vec![Some(0.1), Some(0.1), Some(0.1)],
            median_vanishing_index: Some(seed as f64 * 0.01),
            wall_time_s: 1.0,
            error: None,
        }
    }

    #[test]
    fn numbers_equal_a_hand_computation() {
        let mut diverged = entry("t3", Activation::Tanh, 3, 0.5, f64::NAN);
        diverged.status = "diverged".into();
        diverged.diverged = true;
        diverged.final_loss = None;
        diverged.first_record_sd = vec![Some(0.02), None, Some(0.01)];
        let mut failed = entry("t4", Activation::Tanh, 4, 0.0, 0.0);
        failed.status = "failed".into();
        let entries = vec![
            entry("s1", Activation::Sigmoid, 1, 0.6, 0.7),
            entry("s2", Activation::Sigmoid, 2, 0.7, 0.6),
            entry("s1", Activation::Sigmoid, 1, 0.6, 0.7), // the same run from another shard
            entry("t1", Activation::Tanh, 1, 0.9, 0.1),
            entry("t2", Activation::Tanh, 2, 1.0, 0.3),
            diverged,
            failed,
        ];
        let rows = summarize(&entries);
        assert_eq!(rows.len(), 2);

        // Sigmoid: accuracies 0.6, 0.7 -> mean 0.65, sample S.D. sqrt(2 * 0.05² / 1) = 0.0707...;
        // ratio 0.001 / 0.01 = 0.1 for both runs.
        let sigmoid = &rows[0];
        assert_eq!(sigmoid.knobs["activation"], "sigmoid");
        assert_eq!(sigmoid.knobs.len(), 1, "only the activation varies");
        assert_eq!((sigmoid.runs, sigmoid.failed), (2, 0));
        assert!((sigmoid.accuracy_mean.unwrap() - 0.65).abs() < 1e-12);
        assert!((sigmoid.accuracy_sd.unwrap() - 0.005f64.sqrt()).abs() < 1e-12);
        assert!((sigmoid.loss_mean.unwrap() - 0.65).abs() < 1e-12);
        assert!((sigmoid.first_to_last_sd_ratio.unwrap() - 0.1).abs() < 1e-12);
        // Vanishing indexes seed * 0.01: seeds 1 and 2 -> mean 0.015.
        assert!((sigmoid.vanishing_index.unwrap() - 0.015).abs() < 1e-12);

        // Tanh: three runs with histories (one diverged, loss unknown), one failed.
        // Accuracy 0.9, 1.0, 0.5 -> mean 0.8, deviations 0.1, 0.2, -0.3 -> S.D. sqrt(0.14 / 2).
        // Loss 0.1, 0.3 -> mean 0.2. Ratios 0.1, 0.1, 2.0 -> mean 2.2 / 3. Diverged 1 of 3.
        let tanh = &rows[1];
        assert_eq!((tanh.runs, tanh.failed), (3, 1));
        assert!((tanh.accuracy_mean.unwrap() - 0.8).abs() < 1e-12);
        assert!((tanh.accuracy_sd.unwrap() - 0.07f64.sqrt()).abs() < 1e-12);
        assert!((tanh.loss_mean.unwrap() - 0.2).abs() < 1e-12);
        assert!((tanh.first_to_last_sd_ratio.unwrap() - 2.2 / 3.0).abs() < 1e-12);
        assert!((tanh.diverged_share - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn numeric_knobs_sort_by_value() {
        let rows: Vec<IndexEntry> = [100, 2, 10]
            .into_iter()
            .enumerate()
            .map(|(i, epochs)| {
                let mut e = entry(&format!("e{i}"), Activation::Tanh, 0, 0.9, 0.1);
                e.config.epochs = epochs;
                e
            })
            .collect::<Vec<_>>();
        let rows = summarize(&rows);
        let order: Vec<&str> = rows.iter().map(|r| r.knobs["epochs"].as_str()).collect();
        assert_eq!(order, ["2", "10", "100"]);
    }

    #[test]
    fn a_single_run_has_no_spread() {
        let rows = summarize(&[entry("a", Activation::Relu, 0, 0.9, 0.2)]);
        assert_eq!(rows[0].accuracy_sd, None);
        assert!(rows[0].knobs.is_empty());
    }
}
