//! `--seeds`, `--engine` and `--max-ensemble` end to end: which engine trains what, where the
//! runs go, and what is refused before anything trains.

mod common;

use common::{assert_json_close, gradtrace, listing, read_json, SMALL_DATA, TINY};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

fn run_seeds(out_dir: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args(["--name", "t", "--out-dir"])
        .arg(out_dir)
        .args(extra)
        .assert()
}

#[test]
fn seeds_train_as_one_ensemble_and_write_one_file_per_seed() {
    let dir = TempDir::new().unwrap();
    run_seeds(dir.path(), &["--seed", "5", "--seeds", "3", "--jobs", "1"]).success();
    assert_eq!(listing(dir.path()), ["t-s5.json", "t-s6.json", "t-s7.json"]);
    for (seed, name) in [(5, "t-s5.json"), (7, "t-s7.json")] {
        let json = read_json(&dir.path().join(name));
        assert_eq!(json["config"]["seed"], seed);
        assert_eq!(json["config"]["name"], name.trim_end_matches(".json"));
        assert_eq!(json["engine"]["name"], "ensemble");
        assert_eq!(json["engine"]["models"], 3);
    }
}

#[test]
fn the_engines_agree_and_say_which_trained_the_run() {
    let dir = TempDir::new().unwrap();
    let (single, ensemble) = (dir.path().join("single"), dir.path().join("ensemble"));
    run_seeds(&single, &["--seeds", "2", "--engine", "single"]).success();
    run_seeds(&ensemble, &["--seeds", "2", "--engine", "ensemble"]).success();
    for name in ["t-s0.json", "t-s1.json"] {
        let (a, b) = (
            read_json(&single.join(name)),
            read_json(&ensemble.join(name)),
        );
        assert_eq!(a["engine"]["name"], "single");
        assert_eq!(b["engine"]["name"], "ensemble");
        // Three epochs: float32 rounding has not had time to grow (see tests/ensemble.rs).
        let history = |v: &Value| serde_json::json!([v["weights"], v["gradients"]]);
        assert_json_close(&history(&a), &history(&b), 1e-3);
        assert_json_close(&a["evaluation"], &b["evaluation"], 1e-5);
    }
}

#[test]
fn max_ensemble_splits_the_seeds() {
    let dir = TempDir::new().unwrap();
    run_seeds(
        dir.path(),
        &["--seeds", "5", "--jobs", "1", "--max-ensemble", "2"],
    )
    .success();
    let models: Vec<u64> = listing(dir.path())
        .iter()
        .map(|name| {
            read_json(&dir.path().join(name))["engine"]["models"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Five seeds, at most two a batch: ensembles of 1, 2 and 2 (the lone one on the single
    // engine under auto).
    let mut sorted = models.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 2, 2, 2], "{models:?}");
}

#[test]
fn many_seeds_print_totals_and_refuse_taken_names_before_training() {
    let dir = TempDir::new().unwrap();
    let twelve = || {
        let mut command = gradtrace();
        command
            .args([
                "run",
                "--hidden",
                "3",
                "--epochs",
                "2",
                "--seeds",
                "12",
                "--samples",
                "64",
            ])
            .arg("--out-dir")
            .arg(dir.path());
        command
    };
    twelve()
        .assert()
        .success()
        .stdout(contains("12 runs: final accuracy median"));

    // A second time: every name is taken; nothing is trained or replaced.
    let one = dir.path().join("sigmoid-glorot-uniform-rmsprop-3-s4.json");
    let before = std::fs::read(&one).unwrap();
    twelve()
        .assert()
        .failure()
        .stderr(contains("--out-dir").and(contains("exists; pass --force")));
    assert_eq!(before, std::fs::read(&one).unwrap());
    assert_eq!(listing(dir.path()).len(), 12);
}

#[test]
fn one_file_for_many_seeds_is_refused() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("x.json");
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(["--seeds", "3", "--out"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(contains("--out names one file").and(contains("--out-dir")));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn a_sweep_trains_the_same_runs_on_either_engine() {
    let dir = TempDir::new().unwrap();
    let sweep = |folder: &Path, engine: &str| {
        gradtrace()
            .args([
                "sweep",
                "--activation",
                "tanh,relu",
                "--lr",
                "0.001,0.01",
                "--seed-count",
                "3",
            ])
            .args([
                "--hidden",
                "4,3",
                "--epochs",
                "3",
                "--samples",
                "100",
                "--quiet",
                "--jobs",
                "2",
            ])
            .arg("--engine")
            .arg(engine)
            .arg("--out-dir")
            .arg(folder)
            .assert()
            .success();
    };
    let (single, ensemble) = (dir.path().join("single"), dir.path().join("ensemble"));
    sweep(&single, "single");
    sweep(&ensemble, "auto");
    let runs = |folder: &Path| listing(&folder.join("runs"));
    assert_eq!(runs(&single), runs(&ensemble));
    assert_eq!(runs(&single).len(), 12);

    // Activations and learning rates share ensembles: with two workers, two ensembles of six.
    let json = read_json(&ensemble.join("runs").join(&runs(&ensemble)[0]));
    assert_eq!(json["engine"]["name"], "ensemble");
    assert_eq!(json["engine"]["models"], 6);
    for name in runs(&single) {
        let a = read_json(&single.join("runs").join(&name));
        let b = read_json(&ensemble.join("runs").join(&name));
        assert_eq!(a["config"], b["config"]);
        assert_json_close(&a["weights"], &b["weights"], 1e-3);
    }
}

#[test]
fn the_path_without_fused_multiply_add_agrees_too() {
    // GRADTRACE_NO_FMA=1 takes the baseline x86-64 loops even on a CPU with FMA: the same
    // history to float32 rounding, and bit for bit the same on any x86-64 machine.
    let dir = TempDir::new().unwrap();
    let (plain, fused) = (dir.path().join("plain"), dir.path().join("fused"));
    let seeds = |out: &Path, no_fma: bool| {
        let mut command = gradtrace();
        if no_fma {
            command.env("GRADTRACE_NO_FMA", "1");
        }
        command
            .arg("run")
            .args(TINY)
            .args(SMALL_DATA)
            .args([
                "--name",
                "t",
                "--seeds",
                "2",
                "--engine",
                "ensemble",
                "--out-dir",
            ])
            .arg(out)
            .assert()
            .success();
    };
    seeds(&plain, true);
    seeds(&fused, false);
    for name in ["t-s0.json", "t-s1.json"] {
        let (a, b) = (read_json(&plain.join(name)), read_json(&fused.join(name)));
        let history = |v: &Value| serde_json::json!([v["weights"], v["gradients"]]);
        assert_json_close(&history(&a), &history(&b), 1e-3);
    }
}
