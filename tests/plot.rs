//! `gradtrace plot` end to end: figures for a run, a folder of runs and a sweep, drawn by the
//! project's Python (`$GRADTRACE_PYTHON`, else `.venv/bin/python`, as the binary finds it), and
//! bad paths refused before anything is drawn.
//!
//! The diagnostics figures (saturation, backprop, histograms) need the run JSON's diagnostics
//! keys. A run from this binary is checked both ways: with the keys, every figure must be drawn;
//! without them, none of the three may be. `tests/fixtures/diagnostics.py` adds made-up keys to
//! a run (or strips them), so both cases are drawn whatever this binary writes.

mod common;

use common::{gradtrace, listing, python, read_json, SMALL_DATA, TINY, TINY_SWEEP};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Per-run figures that need the diagnostics keys.
const DIAGNOSTICS: [&str; 3] = ["saturation", "backprop", "histograms"];

/// Runs the fixture maker: `mode` is `add` or `strip`.
fn fixture(mode: &str, from: &Path, to: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnostics.py");
    let status = std::process::Command::new(python())
        .arg(script)
        .arg(mode)
        .arg(from)
        .arg(to)
        .status()
        .expect("the project's Python starts");
    assert!(status.success(), "diagnostics.py {mode} failed");
}

/// A tiny run with gradient records, written to `path`.
fn tiny_run(path: &Path) {
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .arg("--out")
        .arg(path)
        .assert()
        .success();
}

/// `<stem>.<view>.png` beside a run JSON.
fn figure(run: &Path, view: &str) -> PathBuf {
    run.with_extension(format!("{view}.png"))
}

/// Asserts a real PNG of some size (a blank or broken figure is far smaller).
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    assert!(
        bytes.len() > 10_000,
        "{}: {} bytes",
        path.display(),
        bytes.len()
    );
}

#[test]
fn a_run_gets_its_figures_beside_it_and_the_diagnostics_ones_exactly_when_it_has_the_data() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run.json");
    tiny_run(&run);

    let output = gradtrace().arg("plot").arg(&run).assert().success();
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    for view in ["weights", "gradients"] {
        assert_png(&figure(&run, view));
        assert!(stdout.contains(&figure(&run, view).display().to_string()));
    }
    let has_diagnostics = read_json(&run).get("saturation").is_some();
    for view in DIAGNOSTICS {
        assert_eq!(
            figure(&run, view).exists(),
            has_diagnostics,
            "{view}: drawn exactly when the run JSON has the diagnostics keys"
        );
        if has_diagnostics {
            assert_png(&figure(&run, view));
        }
    }
}

#[test]
fn a_folder_of_runs_draws_diagnostics_figures_only_for_runs_that_carry_them() {
    let dir = TempDir::new().unwrap();
    let plain = dir.path().join("plain.json");
    tiny_run(&plain);
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let (with, without) = (runs.join("with.json"), runs.join("without.json"));
    fixture("add", &plain, &with);
    fixture("strip", &plain, &without);
    std::fs::write(runs.join("notes.json"), "{\"mine\": true}\n").unwrap();

    gradtrace()
        .args(["plot", "--jobs", "2"])
        .arg(&runs)
        .assert()
        .success()
        .stderr(contains("plot: 7 figures for 2 runs and 0 sweeps"));
    for view in ["weights", "gradients"].into_iter().chain(DIAGNOSTICS) {
        assert_png(&figure(&with, view));
    }
    assert_png(&figure(&without, "weights"));
    for view in DIAGNOSTICS {
        assert!(
            !figure(&without, view).exists(),
            "{view} drawn without data"
        );
    }
}

#[test]
fn a_sweep_gets_its_figures_in_its_folder_and_still_resumes_afterwards() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("sweep");
    gradtrace().args(TINY_SWEEP).arg(&folder).assert().success();

    gradtrace()
        .arg("plot")
        .arg(&folder)
        .assert()
        .success()
        .stdout(contains("sweep.heatmaps.png"))
        .stdout(contains("sweep.accuracy.png"));
    assert_png(&folder.join("sweep.heatmaps.png"));
    assert_png(&folder.join("sweep.accuracy.png"));
    assert!(
        !listing(&folder.join("runs"))
            .iter()
            .any(|f| f.ends_with(".png")),
        "a sweep's runs are drawn only when its runs/ folder is given"
    );

    // The figures are the sweep's own files: the same sweep resumes into the folder.
    gradtrace().args(TINY_SWEEP).arg(&folder).assert().success();

    // Its runs/ folder is a folder of runs.
    gradtrace()
        .arg("plot")
        .arg(folder.join("runs"))
        .assert()
        .success();
    let weights = listing(&folder.join("runs"))
        .into_iter()
        .filter(|f| f.ends_with(".weights.png"))
        .count();
    assert_eq!(weights, 4);
}

#[test]
fn bad_paths_are_refused_naming_the_path_before_anything_is_drawn() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run.json");
    tiny_run(&run);
    let not_a_run = dir.path().join("notes.json");
    std::fs::write(&not_a_run, "{\"format\": \"something-else\"}\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let unfinished = dir.path().join("unfinished");
    std::fs::create_dir_all(unfinished.join("runs")).unwrap();
    std::fs::write(unfinished.join("sweep.json"), "{}\n").unwrap();
    let missing = dir.path().join("missing.json");
    // A run cut short, alone and in a folder beside other JSON; a run without its layer list; a
    // run from a newer gradtrace.
    let text = std::fs::read_to_string(&run).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&not_a_run, folder.join("notes.json")).unwrap();
    std::fs::copy(&truncated, folder.join("cut.json")).unwrap();
    let mut history = read_json(&run);
    history.as_object_mut().unwrap().remove("layers");
    let no_layers = dir.path().join("no-layers.json");
    std::fs::write(&no_layers, history.to_string()).unwrap();
    let mut history = read_json(&run);
    history["version"] = 99.into();
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, history.to_string()).unwrap();

    let cases: [(&Path, &str); 8] = [
        (&missing, "no such file or folder"),
        (&not_a_run, "not a gradtrace run JSON"),
        (&empty, "no gradtrace run JSON in this folder"),
        (&unfinished, "a sweep with no finished runs"),
        (&truncated, "cut short or damaged"),
        (&folder, "cut.json: a gradtrace run JSON that is cut short"),
        (&no_layers, "missing field `layers`"),
        (&newer, "run format version 99"),
    ];
    for (path, expected) in cases {
        // The good run comes first: nothing may be drawn for it either.
        gradtrace()
            .arg("plot")
            .arg(&run)
            .arg(path)
            .assert()
            .code(1)
            .stderr(contains(path.display().to_string()))
            .stderr(contains(expected));
        assert!(!figure(&run, "weights").exists(), "{expected}: drew anyway");
    }
}

#[test]
fn epochs_pick_the_histograms_records_and_an_epoch_without_one_is_refused_before_drawing() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run.json");
    tiny_run(&run);
    assert!(
        read_json(&run).get("saturation").is_some(),
        "a default run has diagnostics"
    );

    // Each epoch once, and only where run figures are drawn.
    gradtrace()
        .args(["plot", "--epochs", "1,3,1"])
        .arg(&run)
        .assert()
        .code(1)
        .stderr(contains("--epochs 1: named twice"));
    let sweep = dir.path().join("sweep");
    gradtrace().args(TINY_SWEEP).arg(&sweep).assert().success();
    gradtrace()
        .args(["plot", "--epochs", "1"])
        .arg(&sweep)
        .assert()
        .code(1)
        .stderr(contains("only sweep folders were given"));

    // TINY trains 3 epochs: epoch 4 has no record, and nothing is drawn.
    gradtrace()
        .args(["plot", "--epochs", "1,4"])
        .arg(&run)
        .assert()
        .code(1)
        .stderr(contains("--epochs 4").and(contains("epochs 1 to 3")));
    assert!(
        !figure(&run, "weights").exists(),
        "drew despite a bad --epochs"
    );

    gradtrace()
        .args(["plot", "--epochs", "1,3"])
        .arg(&run)
        .assert()
        .success();
    for view in DIAGNOSTICS {
        assert_png(&figure(&run, view));
    }
}
