//! Small fixtures shared by the unit tests.

use crate::config::{Activation, DataConfig, Init, OptimizerKind, RunConfig};

/// A run that trains in milliseconds: 2-3-3-1 tanh on 64 points for 3 epochs.
pub fn tiny_config() -> RunConfig {
    let mut config = RunConfig::study(
        "tiny",
        vec![3, 3],
        Activation::Tanh,
        Init::Normal,
        OptimizerKind::Rmsprop,
    );
    config.epochs = 3;
    config.batch_size = 16;
    config.seed = 7;
    config.data = DataConfig::TwoCircles {
        samples: 64,
        factor: 0.5,
        noise: 0.1,
        seed: 0,
    };
    config
}
