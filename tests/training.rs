//! Training as a whole: reproducibility, and the study's finding on a budget of seconds.

mod common;

use common::study_config;
use gradtrace::config::{Activation, RecordLevel};
use gradtrace::data::Dataset;
use gradtrace::pool::map_parallel;
use gradtrace::record::{median, GradientRecord, RunRecord};
use gradtrace::train::train;
use tch::Device;

/// A run's gradient records taken during training, each of which carries the diagnostics.
fn records_with_signals(r: &RunRecord) -> Vec<&GradientRecord> {
    let in_training: Vec<_> = r.gradients.iter().filter(|g| g.step == 0).collect();
    assert!(in_training.iter().all(|g| g.layers[0].backprop.is_some()));
    in_training
}

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

    // The diagnostics tell the same story from the back-propagated signal, and say why: every
    // sigmoid layer passes back at most a quarter of the signal it receives.
    let backprop_sd = |runs: &[&RunRecord], layer: usize| {
        median(runs.iter().map(|r| {
            let sds = records_with_signals(r).into_iter();
            median(sds.map(|g| g.layers[layer].backprop.unwrap().sd))
        }))
    };
    let last = sigmoid[0].layers.len() - 1;
    let signal_ratio = |runs: &[&RunRecord]| backprop_sd(runs, 0) / backprop_sd(runs, last);
    let ratio = signal_ratio(&sigmoid);
    assert!(
        ratio < 0.1,
        "sigmoid first/output back-propagated S.D. {ratio}"
    );
    for (name, runs) in [("tanh", &tanh), ("relu", &relu)] {
        let theirs = signal_ratio(runs);
        assert!(
            theirs > 3.0 * ratio,
            "{name}: {theirs} vs sigmoid's {ratio}"
        );
    }
    for layer in 0..last {
        let (here, above) = (
            backprop_sd(&sigmoid, layer),
            backprop_sd(&sigmoid, layer + 1),
        );
        assert!(
            here < above,
            "sigmoid layer {layer}: {here} not below {above}"
        );
    }
    for r in &sigmoid {
        for g in records_with_signals(r) {
            for layer in &g.layers[..last] {
                let slope = layer.activations.as_ref().unwrap().mean_slope.unwrap();
                assert!(slope <= 0.25, "a sigmoid's slope is at most 1/4: {slope}");
            }
        }
    }
}

#[test]
fn wide_sigmoid_and_tanh_layers_saturate_where_the_studys_five_unit_layers_do_not() {
    // The same normal(0, 1) kernels: a unit of a 100-wide layer sums 100 inputs instead of 5,
    // so its pre-activation spreads about sqrt(20) times wider and lands in the flat tails.
    let mut configs = Vec::new();
    for activation in [Activation::Sigmoid, Activation::Tanh] {
        for width in [5, 100] {
            for seed in 0..3 {
                let mut config = study_config(activation, seed);
                config.hidden = vec![width; 4];
                config.epochs = 2;
                configs.push(config);
            }
        }
    }
    let records = map_parallel(&configs, 2, train_cpu, |_| ());

    // Median over runs of the first record's saturated share in hidden layers 2 to 4.
    let share = |activation: Activation, width: usize| {
        let runs = records
            .iter()
            .filter(|r| r.config.activation == activation && r.config.hidden[0] == width);
        median(runs.map(|r| {
            let first = &records_with_signals(r)[0];
            let hidden = &first.layers[1..4];
            median(
                hidden
                    .iter()
                    .map(|l| l.activations.as_ref().unwrap().saturated.unwrap()),
            )
        }))
    };
    for activation in [Activation::Sigmoid, Activation::Tanh] {
        let (narrow, wide) = (share(activation, 5), share(activation, 100));
        assert!(wide > 0.4, "{activation:?} 100 wide: {wide} saturated");
        assert!(narrow < 0.2, "{activation:?} 5 wide: {narrow} saturated");
    }
}
