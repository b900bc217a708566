//! Small fixtures shared by the unit tests.

use crate::config::{
    Activation, DataConfig, GradEvery, Init, OptimizerConfig, OptimizerKind, RecordLevel, RunConfig,
};

/// A run that trains in milliseconds: 2-3-3-1 tanh on 64 points for 3 epochs.
pub fn tiny_config() -> RunConfig {
    RunConfig {
        name: "tiny".to_string(),
        hidden: vec![3, 3],
        activation: Activation::Tanh,
        init: Init::Normal,
        init_mean: 0.0,
        init_sd: 1.0,
        init_low: -0.05,
        init_high: 0.05,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Rmsprop,
            learning_rate: 1e-3,
            rho: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            momentum: 0.0,
        },
        epochs: 3,
        batch_size: 16,
        seed: 7,
        shuffle: true,
        grad_every: GradEvery::Epoch,
        record: RecordLevel::Full,
        data: DataConfig::TwoCircles {
            samples: 64,
            factor: 0.5,
            noise: 0.1,
            seed: 0,
        },
    }
}
