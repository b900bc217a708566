//! Helpers shared by the end-to-end tests: the binary, a scratch folder, tiny run flags.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

/// The `gradtrace` binary built with the tests.
pub fn gradtrace() -> Command {
    Command::cargo_bin("gradtrace").expect("the binary is built with the tests")
}

/// Flags for a run that finishes in well under a second (add `SMALL_DATA` unless using --csv).
pub const TINY: &[&str] = &[
    "--hidden",
    "4,3",
    "--activation",
    "tanh",
    "--init",
    "normal",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--quiet",
];

/// `gradtrace tutorial` at one epoch without figures, quietly; add `--out-dir`.
pub fn tiny_tutorial() -> Command {
    let mut command = gradtrace();
    command.args(["tutorial", "--epochs", "1", "--no-plots", "--quiet"]);
    command
}

/// Starts the binary in the background (for tests that interrupt or kill it).
pub fn spawn(args: &[&str], out: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("gradtrace"))
        .args(args)
        .arg(out)
        .spawn()
        .expect("the binary starts")
}

/// Polls `ready` every 10 ms (at most 2 minutes) while `child` keeps running.
pub fn wait_until(child: &mut std::process::Child, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() && started.elapsed().as_secs() < 120 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The project's Python, as the binary finds it: `$GRADTRACE_PYTHON`, else `.venv/bin/python`.
pub fn python() -> std::path::PathBuf {
    std::env::var_os("GRADTRACE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every entry of a folder, recursively, as paths relative to it (to prove nothing was written).
pub fn listing(folder: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(folder).unwrap().display().to_string());
            if path.is_dir() {
                found.extend(
                    listing(&path)
                        .into_iter()
                        .map(|p| format!("{}/{p}", entry.file_name().to_string_lossy())),
                );
            }
        }
    }
    found.sort();
    found
}

/// Two circles of 100 points: 4 steps an epoch at batch 32.
pub const SMALL_DATA: &[&str] = &["--samples", "100"];

use gradtrace::config::{Activation, DataConfig, Init, OptimizerKind, RecordLevel, RunConfig};

/// The study's 2-5-5-5-5-1 network with normal(0, 1) kernels and Keras RMSprop, on a reduced
/// budget: 600 points, 60 epochs, batch 32, statistics only.
pub fn study_config(activation: Activation, seed: u64) -> RunConfig {
    let name = format!("study-{activation:?}-{seed}");
    let mut config = RunConfig::study(
        name,
        vec![5; 4],
        activation,
        Init::Normal,
        OptimizerKind::Rmsprop,
    );
    config.epochs = 60;
    config.seed = seed;
    config.record = RecordLevel::Stats;
    config.data = DataConfig::TwoCircles {
        samples: 600,
        factor: 0.5,
        noise: 0.1,
        seed: 0,
    };
    config
}

/// Asserts that two JSON values are equal except that numbers may differ by `relative` of their
/// size: for results that may come from ensembles of different make-up, which round the last
/// float32 digits differently.
#[allow(dead_code)]
pub fn assert_json_close(a: &Value, b: &Value, relative: f64) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= relative * x.abs().max(y.abs()),
                "{x} and {y} differ by more than {relative} of their size"
            );
        }
        (Value::Array(xs), Value::Array(ys)) => {
            assert_eq!(xs.len(), ys.len(), "{a} vs {b}");
            xs.iter()
                .zip(ys)
                .for_each(|(x, y)| assert_json_close(x, y, relative));
        }
        (Value::Object(xs), Value::Object(ys)) => {
            assert_eq!(xs.keys().collect::<Vec<_>>(), ys.keys().collect::<Vec<_>>());
            for (key, x) in xs {
                assert_json_close(x, &ys[key], relative);
            }
        }
        _ => assert_eq!(a, b),
    }
}

/// A tiny 4-run sweep (2 activations x 2 seeds), the folder to follow.
pub const TINY_SWEEP: &[&str] = &[
    "sweep",
    "--activation",
    "sigmoid,tanh",
    "--seed-count",
    "2",
    "--hidden",
    "4,3",
    "--epochs",
    "3",
    "--samples",
    "100",
    "--quiet",
    "--out-dir",
];
