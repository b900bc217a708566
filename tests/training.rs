//! Training as a whole: reproducibility, and the study's finding on a budget of seconds.

mod common;

use common::study_config;
use gradtrace::config::{Activation, RecordLevel};
use gradtrace::data::Dataset;
use gradtrace::pool::map_parallel;
use gradtrace::record::{median, RunRecord};
use gradtrace::train::train;
use tch::Device;

fn train_cpu(config: &gradtrace::config::RunConfig) -> RunRecord {
    tch::set_num_threads(1);
    let data = Dataset::load(&config.data).unwrap();
    train(config, &data, Device::Cpu, |_| ()).unwrap()
}

/// The history without its wall time, which is the one field allowed to differ.
fn history(record: &RunRecord) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap();
    value.as_object_mut().unwrap().remove("wall_time_s");
    value
}

#[test]
fn the_same_run_twice_gives_identical_histories() {
    let mut config = study_config(Activation::Sigmoid, 3);
    config.epochs = 5;
    config.record = RecordLevel::Full;
    let (first, second) = (train_cpu(&config), train_cpu(&config));
    assert_eq!(history(&first), history(&second));

    config.seed = 4;
    assert_ne!(
        history(&first)["weights"],
        history(&train_cpu(&config))["weights"]
    );
}

#[test]
fn sigmoid_gradients_vanish_toward_the_input_while_tanh_and_relu_learn() {
    let seeds = 0..5u64;
    let configs: Vec<_> = [Activation::Sigmoid, Activation::Tanh, Activation::Relu]
        .into_iter()
        .flat_map(|a| seeds.clone().map(move |s| study_config(a, s)))
        .collect();
    let records = map_parallel(&configs, 2, train_cpu, |_| ());

    let per_activation = |activation: Activation| -> Vec<&RunRecord> {
        records
            .iter()
            .filter(|r| r.config.activation == activation)
            .collect()
    };
    let median_accuracy =
        |runs: &[&RunRecord]| median(runs.iter().map(|r| r.evaluation.after.accuracy));
    // Median over runs of (median over records of first-layer S.D. / last-layer S.D.).
    let first_to_last = |runs: &[&RunRecord]| {
        median(runs.iter().map(|r| {
            let last = r.layers.len() - 1;
            median(
                r.gradients
                    .iter()
                    .map(|g| g.layers[0].sd / g.layers[last].sd),
            )
        }))
    };

    let sigmoid = per_activation(Activation::Sigmoid);
    let (tanh, relu) = (
        per_activation(Activation::Tanh),
        per_activation(Activation::Relu),
    );
    assert!(
        median_accuracy(&sigmoid) < 0.8,
        "sigmoid median accuracy {}",
        median_accuracy(&sigmoid)
    );
    assert!(
        median_accuracy(&tanh) >= 0.95,
        "tanh median accuracy {}",
        median_accuracy(&tanh)
    );
    assert!(
        median_accuracy(&relu) >= 0.95,
        "relu median accuracy {}",
        median_accuracy(&relu)
    );
    // The run JSON's own summary of the same thing, run by run.
    for record in &records {
        let by_hand = first_to_last(&[record]);
        assert!((record.median_vanishing_index - by_hand).abs() <= 1e-12 * by_hand);
    }
    let ratio = first_to_last(&sigmoid);
    assert!(
        ratio < 0.1,
        "sigmoid first/last layer gradient S.D. is {ratio}, expected well below 1"
    );
    assert!(
        first_to_last(&tanh) > 3.0 * ratio,
        "tanh's first layer keeps more of its gradient than sigmoid's: {} vs {ratio}",
        first_to_last(&tanh)
    );
    assert!(
        first_to_last(&relu) > 3.0 * ratio,
        "relu's first layer keeps more of its gradient than sigmoid's: {} vs {ratio}",
        first_to_last(&relu)
    );
}
