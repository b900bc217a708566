//! gradtrace: train small multilayer perceptrons with libtorch and record how every layer's
//! gradients and weights evolve, as JSON histories for analysis and plotting.
//!
//! The binary (`main.rs`) is a thin command line over this library; tests use the library
//! directly where a command line would only get in the way.

#![warn(missing_docs)]

pub mod activation;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod figures;
pub mod init;
pub mod interrupt;
pub mod json;
pub mod lanes;
pub mod model;
pub mod optim;
pub mod output;
pub mod paper;
pub mod pool;
pub mod record;
pub mod schedule;
pub mod stacked;
pub mod sweep;
pub mod tensorboard;
pub mod train;

#[cfg(test)]
pub(crate) mod testing;
