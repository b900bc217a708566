//! `gradtrace tensorboard` end to end: runs and sweeps exported, then read back with
//! TensorBoard's own loader (`tests/fixtures/read_events.py`) and compared with the run JSON
//! they came from; earlier exports replaced only with `--force`, other programs' files never
//! touched, and bad input refused with nothing written.

mod common;

use common::{gradtrace, listing, python, read_json, SMALL_DATA, TINY, TINY_SWEEP};
use predicates::str::contains;
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

/// Reads a log folder back with TensorBoard: `{"runs": {run: {scalars, histograms, hparams}}}`.
fn read_back(logdir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read_events.py");
    let output = std::process::Command::new(python())
        .arg(script)
        .arg(logdir)
        .output()
        .expect("the project's Python starts");
    assert!(
        output.status.success(),
        "read_events.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read_events.py prints JSON")
}

/// A tiny run with full records (matrices and diagnostics), written to `path`.
fn tiny_run(path: &Path, extra: &[&str]) {
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args(extra)
        .arg("--out")
        .arg(path)
        .assert()
        .success();
}

/// `gradtrace tensorboard PATHS... --out-dir LOGDIR`, ready for more flags.
fn export<P: AsRef<std::ffi::OsStr>>(paths: &[P], logdir: &Path) -> assert_cmd::Command {
    let mut command = gradtrace();
    command
        .arg("tensorboard")
        .args(paths)
        .arg("--out-dir")
        .arg(logdir);
    command
}

/// `[[step, value], ...]` of a scalar tag as (step, value) pairs.
fn series(run: &Value, tag: &str) -> Vec<(u64, f64)> {
    let points = run["scalars"][tag]
        .as_array()
        .unwrap_or_else(|| panic!("no scalar {tag}"));
    points
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// Asserts float32 agreement (TensorBoard keeps scalars as float32).
fn assert_f32(read: f64, written: f64, what: &str) {
    assert_eq!(
        read as f32, written as f32,
        "{what}: read {read}, wrote {written}"
    );
}

#[test]
fn a_run_reads_back_in_tensorboard_with_the_values_of_its_json() {
    let dir = TempDir::new().unwrap();
    let json = dir.path().join("t.json");
    tiny_run(&json, &[]);
    let logdir = dir.path().join("logs");
    export(&[&json], &logdir)
        .assert()
        .success()
        .stderr(contains("1 run and 0 sweeps"));

    let history = read_json(&json);
    let back = read_back(&logdir);
    let runs = back["runs"].as_object().unwrap();
    assert_eq!(runs.keys().collect::<Vec<_>>(), vec!["t"]);
    let run = &back["runs"]["t"];

    // 100 points at batch 32: 4 updates an epoch; epoch e's values at step 4e.
    let epochs = history["epochs"].as_array().unwrap();
    let loss = series(run, "loss/epoch");
    assert_eq!(loss.len(), epochs.len());
    for ((step, value), epoch) in loss.iter().zip(epochs) {
        assert_eq!(*step, 4 * epoch["epoch"].as_u64().unwrap());
        assert_f32(*value, epoch["loss"].as_f64().unwrap(), "epoch loss");
    }
    let before = history["evaluation"]["before"]["accuracy"]
        .as_f64()
        .unwrap();
    let after = history["evaluation"]["after"]["accuracy"].as_f64().unwrap();
    let accuracy = [
        series(run, "accuracy/before_training"),
        series(run, "accuracy/after_training"),
    ];
    assert_eq!(accuracy.iter().map(|s| s.len()).collect::<Vec<_>>(), [1, 1]);
    assert_eq!((accuracy[0][0].0, accuracy[1][0].0), (0, 12));
    assert_f32(accuracy[0][0].1, before, "accuracy before");
    assert_f32(accuracy[1][0].1, after, "accuracy after");

    // Every gradient record, every layer: statistics at the record's global step, the
    // diagnostics' histogram bins as TensorBoard buckets, the vanishing index.
    let records = history["gradients"].as_array().unwrap();
    for (layer, name) in ["dense_1", "dense_2", "dense_3"].iter().enumerate() {
        let sd = series(run, &format!("grad_sd/{name}"));
        let index = series(run, &format!("vanishing_index/{name}"));
        let histograms = run["histograms"][format!("gradients/{name}")]
            .as_array()
            .unwrap();
        assert_eq!(sd.len(), records.len(), "{name}: one S.D. per record");
        assert_eq!(
            histograms.len(),
            records.len(),
            "{name}: one histogram per record"
        );
        for (k, record) in records.iter().enumerate() {
            let step = record["global_step"].as_u64().unwrap();
            let recorded = &record["layers"][layer];
            assert_eq!(sd[k].0, step);
            assert_f32(sd[k].1, recorded["sd"].as_f64().unwrap(), "gradient S.D.");
            let ratio = record["vanishing_index"][layer].as_f64().unwrap();
            assert_f32(index[k].1, ratio, "vanishing index");

            let (at, histogram) = (&histograms[k][0], &histograms[k][1]);
            assert_eq!(at.as_u64().unwrap(), step);
            let counts: Vec<f64> = recorded["histogram"]["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_f64().unwrap())
                .collect();
            assert_eq!(histogram["counts"].as_array().unwrap().len(), counts.len());
            for (read, written) in histogram["counts"].as_array().unwrap().iter().zip(&counts) {
                assert_eq!(read.as_f64().unwrap(), *written);
            }
            let high = recorded["histogram"]["high"].as_f64().unwrap();
            assert_eq!(histogram["max"].as_f64().unwrap(), high);
            assert_eq!(
                histogram["limits"].as_array().unwrap().last().unwrap(),
                high
            );
        }
    }

    // The diagnostics of the first record, and the weights' histograms from the matrices.
    let first = &records[0]["layers"][0];
    let backprop = series(run, "backprop_sd/dense_1");
    assert_f32(
        backprop[0].1,
        first["backprop"]["sd"].as_f64().unwrap(),
        "signal S.D.",
    );
    let saturated = series(run, "saturated_share/dense_1");
    let share = first["activations"]["saturated"].as_f64().unwrap();
    assert_f32(saturated[0].1, share, "saturated share");
    let activations = run["histograms"]["activations/dense_1"].as_array().unwrap();
    assert_eq!(activations.len(), records.len() - 1, "none after training");
    let weights = run["histograms"]["weights/dense_1"].as_array().unwrap();
    assert_eq!(weights.len(), history["weights"].as_array().unwrap().len());
    assert_eq!(
        weights[0][1]["num"].as_f64().unwrap(),
        2.0 * 4.0,
        "2 x 4 kernel"
    );
    assert!(
        run["hparams"].as_object().unwrap().is_empty(),
        "a lone run has no HParams"
    );
}

#[test]
fn a_run_recorded_without_matrices_or_diagnostics_still_exports_its_statistics() {
    let dir = TempDir::new().unwrap();
    let (stats, kernels) = (
        dir.path().join("stats.json"),
        dir.path().join("kernels.json"),
    );
    tiny_run(&stats, &["--record", "stats"]);
    tiny_run(&kernels, &["--record", "kernels"]);
    let logdir = dir.path().join("logs");
    export(&[&stats, &kernels], &logdir).assert().success();

    let back = read_back(&logdir);
    let (stats, kernels) = (&back["runs"]["stats"], &back["runs"]["kernels"]);
    assert!(
        stats["histograms"]["gradients/dense_1"].is_array(),
        "the diagnostics' bins"
    );
    assert!(
        stats["histograms"]["weights/dense_1"].is_null(),
        "no matrices, no weights"
    );
    assert!(stats["scalars"]["weight_sd/dense_1"].is_array());
    // kernels: no diagnostics, so the gradient histograms come from the recorded matrices.
    assert!(kernels["histograms"]["gradients/dense_1"].is_array());
    assert!(kernels["scalars"]["backprop_sd/dense_1"].is_null());
    assert!(kernels["scalars"]["grad_sd/dense_1"].is_array());
}

#[test]
fn a_sweep_becomes_one_run_per_grid_point_with_its_knobs_in_the_hparams_dashboard() {
    let dir = TempDir::new().unwrap();
    let sweep = dir.path().join("grid");
    gradtrace().args(TINY_SWEEP).arg(&sweep).assert().success();
    let logdir = dir.path().join("logs");
    export(&[&sweep], &logdir)
        .assert()
        .success()
        .stderr(contains("4 runs and 1 sweep"));

    let back = read_back(&logdir);
    let names: Vec<&String> = back["runs"].as_object().unwrap().keys().collect();
    let expected = [
        "grid",
        "grid/activation=sigmoid,seed=0",
        "grid/activation=sigmoid,seed=1",
        "grid/activation=tanh,seed=0",
        "grid/activation=tanh,seed=1",
    ];
    assert_eq!(names, expected);

    // The experiment names the swept knobs, with their values and types, and the metrics.
    let experiment = &back["runs"]["grid"]["hparams"]["experiment"];
    assert_eq!(
        experiment["hparams"]["activation"],
        serde_json::json!(["sigmoid", "tanh"])
    );
    assert_eq!(experiment["hparams"]["seed"], serde_json::json!([0.0, 1.0]));
    assert_eq!(experiment["types"]["seed"], "DATA_TYPE_FLOAT64");
    assert_eq!(
        experiment["differs"],
        serde_json::json!({"activation": true, "seed": true})
    );
    let metrics = experiment["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m == "accuracy/after_training"));
    assert!(metrics
        .iter()
        .any(|m| m == "vanishing_index/median_first_layer"));

    // Each run is a session with its own values, ended as its JSON says, and its metrics.
    let run = &back["runs"]["grid/activation=tanh,seed=1"];
    assert_eq!(
        run["hparams"]["session"],
        serde_json::json!({"activation": "tanh", "seed": 1.0})
    );
    assert_eq!(run["hparams"]["status"], "STATUS_SUCCESS");
    for metric in metrics {
        assert!(
            run["scalars"][metric.as_str().unwrap()].is_array(),
            "{metric} missing"
        );
    }
}

#[test]
fn an_earlier_export_is_replaced_only_with_force_and_then_exactly_once() {
    let dir = TempDir::new().unwrap();
    let json = dir.path().join("t.json");
    tiny_run(&json, &[]);
    let logdir = dir.path().join("logs");
    let again = || export(&[&json], &logdir);
    again().assert().success();
    let first = listing(&logdir);

    again()
        .assert()
        .code(1)
        .stderr(contains("holds an earlier export; pass --force"));
    assert_eq!(listing(&logdir), first, "a refused export changes nothing");

    // A retrained run (a newer JSON) replaces the old export instead of adding to it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    tiny_run(&json, &["--force", "--seed", "5"]);
    again().arg("--force").assert().success();
    let files = listing(&logdir.join("t"));
    assert_eq!(files.len(), 1, "one event file per run: {files:?}");
    assert_ne!(
        listing(&logdir),
        first,
        "the newer export replaced the older"
    );
}

#[test]
fn another_programs_event_files_are_never_touched() {
    let dir = TempDir::new().unwrap();
    let json = dir.path().join("t.json");
    tiny_run(&json, &[]);
    let logdir = dir.path().join("logs");
    std::fs::create_dir_all(logdir.join("t")).unwrap();
    let theirs = logdir.join("t/events.out.tfevents.1700000000.otherhost");
    std::fs::write(&theirs, b"someone else's").unwrap();

    for force in [false, true] {
        let mut command = export(&[&json], &logdir);
        if force {
            command.arg("--force");
        }
        command
            .assert()
            .code(1)
            .stderr(contains("an event file gradtrace did not write"));
        assert_eq!(std::fs::read(&theirs).unwrap(), b"someone else's");
        assert_eq!(
            listing(&logdir),
            ["t", "t/events.out.tfevents.1700000000.otherhost"]
        );
    }
}

#[test]
fn bad_input_is_refused_naming_it_and_nothing_is_written() {
    let dir = TempDir::new().unwrap();
    let good = dir.path().join("good.json");
    tiny_run(&good, &[]);
    let missing = dir.path().join("missing.json");
    let not_a_run = dir.path().join("notes.json");
    std::fs::write(&not_a_run, "{\"format\": \"something-else\"}\n").unwrap();
    // Two folders of one name, each holding good.json: both would be `other/good`.
    let (other, nested) = (dir.path().join("other"), dir.path().join("nested/other"));
    for folder in [&other, &nested] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::copy(&good, folder.join("good.json")).unwrap();
    }
    // Claims to be a run but is not one: found only while converting, after `good` was written.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"format\": \"gradtrace-run\", \"version\": 1, \"layers\": 3}\n",
    )
    .unwrap();
    let logdir = dir.path().join("logs");

    let cases: [(&[&Path], &str); 4] = [
        (&[&good, &missing], "no such file or folder"),
        (&[&good, &not_a_run], "not a gradtrace run JSON"),
        (&[&good, &broken], "not a run history"),
        (
            &[&good, &other, &nested],
            "would both become the TensorBoard run",
        ),
    ];
    for (paths, expected) in cases {
        let output = export(paths, &logdir)
            .arg("--jobs")
            .arg("1")
            .assert()
            .code(1)
            .stderr(contains(expected));
        let stderr = String::from_utf8_lossy(&output.get_output().stderr).to_string();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!logdir.exists(), "{expected}: wrote {:?}", listing(&logdir));
    }
}

#[test]
fn a_forced_export_that_fails_midway_keeps_the_earlier_export_as_it_was() {
    let dir = TempDir::new().unwrap();
    let good = dir.path().join("good.json");
    tiny_run(&good, &[]);
    let logdir = dir.path().join("logs");
    export(&[&good], &logdir).assert().success();
    let before = listing(&logdir);
    let event_file = logdir.join(&before[1]);
    let bytes = std::fs::read(&event_file).unwrap();

    // `good` converts (to the same file name, as its JSON is unchanged) before `broken` fails.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"format\": \"gradtrace-run\", \"version\": 1, \"layers\": 3}\n",
    )
    .unwrap();
    export(&[&good, &broken], &logdir)
        .args(["--force", "--jobs", "1"])
        .assert()
        .code(1)
        .stderr(contains("not a run history"));
    assert_eq!(listing(&logdir), before, "no file added, none taken away");
    assert_eq!(std::fs::read(&event_file).unwrap(), bytes);
}

#[test]
fn a_grown_sweep_re_exported_with_force_lists_each_run_once_and_its_own_folder_is_refused() {
    let dir = TempDir::new().unwrap();
    let sweep = dir.path().join("grid");
    gradtrace().args(TINY_SWEEP).arg(&sweep).assert().success();
    let logdir = dir.path().join("logs");
    // One folder spelled two ways is one input.
    let again = sweep.join("..").join("grid");
    export(&[&sweep, &again], &logdir)
        .assert()
        .success()
        .stderr(contains("4 runs and 1 sweep"));

    // A second learning rate renames every run (the knob now differs): the old names go.
    gradtrace()
        .args(TINY_SWEEP)
        .arg(&sweep)
        .args(["--lr", "1e-3,1e-2", "--extend"])
        .assert()
        .success();
    export(&[&sweep], &logdir).arg("--force").assert().success();
    let runs: Vec<String> = listing(&logdir.join("grid"))
        .into_iter()
        .filter(|p| !p.contains('/') && !p.contains("tfevents"))
        .collect();
    assert_eq!(runs.len(), 8, "{runs:?}");
    assert!(runs.iter().all(|r| r.contains("optimizer.learning_rate=")));

    // A log folder inside the sweep would stop it from resuming, and so would one above it
    // that puts the export into the sweep's own folder.
    export(&[&sweep], &sweep.join("tb"))
        .assert()
        .code(1)
        .stderr(contains("inside the sweep folder"));
    assert!(!sweep.join("tb").exists());
    let before = listing(&sweep);
    export(&[&sweep], dir.path())
        .assert()
        .code(1)
        .stderr(contains("would be written inside the sweep folder"));
    assert_eq!(listing(&sweep), before);
}

#[test]
fn inputs_that_would_share_a_folder_are_refused_and_a_renamed_run_is_not_shown_twice() {
    let dir = TempDir::new().unwrap();
    let sweep = dir.path().join("grid");
    gradtrace().args(TINY_SWEEP).arg(&sweep).assert().success();
    let folder = dir.path().join("other/grid");
    std::fs::create_dir_all(&folder).unwrap();
    tiny_run(&folder.join("a.json"), &[]);
    let logdir = dir.path().join("logs");
    export(&[&sweep, &folder], &logdir)
        .assert()
        .code(1)
        .stderr(contains("would share the TensorBoard folder grid"));
    assert!(!logdir.exists());

    // A run file renamed in its folder: the re-export with --force keeps only the new name.
    export(&[&folder], &logdir).assert().success();
    std::fs::rename(folder.join("a.json"), folder.join("b.json")).unwrap();
    export(&[&folder], &logdir)
        .arg("--force")
        .assert()
        .success();
    let runs: Vec<String> = listing(&logdir.join("grid"))
        .into_iter()
        .filter(|p| !p.contains('/'))
        .collect();
    assert_eq!(runs, ["b"]);
}
