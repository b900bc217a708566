//! End to end through the command line: what `gradtrace run` writes, and how it refuses bad input.

mod common;

use common::{gradtrace, listing, read_json, spawn, tiny_tutorial, wait_until, SMALL_DATA, TINY};
use predicates::str::contains;
use tempfile::TempDir;

#[test]
fn run_writes_a_history_with_the_right_records_layers_and_shapes() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("run.json");
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();

    let json = read_json(&out);
    assert_eq!(json["format"], "gradtrace-run");
    assert_eq!(json["version"], 1);
    assert_eq!(json["device"], "cpu");
    assert_eq!(json["status"], "completed");
    assert!(json["tool"]["libtorch"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    assert_eq!(json["data"]["samples"], 100);
    assert_eq!(json["data"]["sha256"].as_str().unwrap().len(), 64);

    let names: Vec<&str> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dense_1", "dense_2", "dense_3"]);
    let shapes: Vec<Vec<u64>> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["kernel_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(shapes, [vec![2, 4], vec![4, 3], vec![3, 1]]);

    // 3 epochs: weights at init + 3; gradients at each epoch's first step + 1 after training.
    assert_eq!(json["weights"].as_array().unwrap().len(), 4);
    assert_eq!(json["epochs"].as_array().unwrap().len(), 3);
    let grads = json["gradients"].as_array().unwrap();
    assert_eq!(grads.len(), 4);
    assert_eq!(grads[1]["epoch"], 2);
    assert_eq!(grads[1]["step"], 0);
    assert_eq!(
        grads[1]["global_step"], 4,
        "100 samples at batch 32 is 4 steps an epoch"
    );
    assert_eq!(
        grads[3]["samples"], 100,
        "the last record covers the whole training set"
    );

    // Full matrices are oriented [inputs][units].
    let kernel = grads[0]["layers"][1]["kernel"].as_array().unwrap();
    assert_eq!((kernel.len(), kernel[0].as_array().unwrap().len()), (4, 3));
    let weights = json["weights"][0]["layers"][0]["kernel"]
        .as_array()
        .unwrap();
    assert_eq!(
        (weights.len(), weights[0].as_array().unwrap().len()),
        (2, 4)
    );
    assert!(json["weights"][0]["layers"][0]["bias"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b == 0.0));
}

#[test]
fn record_stats_leaves_out_the_matrices_but_keeps_the_statistics() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("stats.json");
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args(["--record", "stats", "--out"])
        .arg(&out)
        .assert()
        .success();
    let json = read_json(&out);
    let layer = &json["gradients"][0]["layers"][0];
    assert!(layer.get("kernel").is_none());
    assert!(layer["sd"].as_f64().unwrap() > 0.0);
    assert!(json["weights"][0]["layers"][0].get("kernel").is_none());
}

#[test]
fn record_levels_choose_matrices_and_diagnostics() {
    let dir = TempDir::new().unwrap();
    let run = |level: &str| {
        let out = dir.path().join(format!("{level}.json"));
        gradtrace()
            .arg("run")
            .args(TINY)
            .args(SMALL_DATA)
            .args(["--record", level, "--out"])
            .arg(&out)
            .assert()
            .success();
        read_json(&out)
    };
    let diagnostics = ["activations", "backprop", "histogram"];

    // full and stats: every in-training record has all three, and the rules are stated.
    for level in ["full", "stats"] {
        let json = run(level);
        assert_eq!(json["saturation"]["hidden"]["above"], 0.97, "{level}");
        let layer = &json["gradients"][0]["layers"][0];
        for key in diagnostics {
            assert!(layer[key].is_object(), "{level}: {key}");
        }
        let counts = layer["activations"]["histogram"]["counts"]
            .as_array()
            .unwrap();
        assert_eq!(counts.len(), 32);
        // The record after training has the gradient's histogram only.
        let after = json["gradients"].as_array().unwrap().last().unwrap();
        assert!(after["layers"][0]["histogram"].is_object());
        assert!(after["layers"][0].get("activations").is_none());
    }

    // kernels: the matrices without any diagnostics.
    let json = run("kernels");
    assert!(json.get("saturation").is_none());
    let layer = &json["gradients"][0]["layers"][0];
    assert!(layer["kernel"].is_array());
    for key in diagnostics {
        assert!(layer.get(key).is_none(), "kernels: {key}");
    }
}

#[test]
fn grad_every_n_steps_records_every_nth_step() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("every.json");
    // 3 epochs x 4 steps = 12 steps; every 5 -> steps 0, 5, 10, plus the last record.
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args(["--grad-every", "5", "--out"])
        .arg(&out)
        .assert()
        .success();
    let steps: Vec<u64> = read_json(&out)["gradients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["global_step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 5, 10, 12]);
}

#[test]
fn csv_data_trains_and_a_header_row_is_accepted() {
    let dir = TempDir::new().unwrap();
    let csv = dir.path().join("points.csv");
    let mut text = String::from("x0,x1,label\n");
    for i in 0..40 {
        let label = i % 2;
        text.push_str(&format!(
            "{},{},{label}\n",
            i as f32 / 40.0,
            label as f32 - 0.5
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("csv.json");
    gradtrace()
        .arg("run")
        .args(TINY)
        .arg("--csv")
        .arg(&csv)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let json = read_json(&out);
    assert_eq!(json["data"]["samples"], 40);
    assert_eq!(json["data"]["positives"], 20);
    assert_eq!(json["config"]["data"]["source"], "csv");
}

#[test]
fn an_existing_output_is_kept_unless_force_is_given() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("mine.json");
    std::fs::write(&out, "precious").unwrap();
    gradtrace()
        .arg("run")
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .assert()
        .failure()
        .stderr(contains("--out").and(contains("--force")));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    gradtrace()
        .arg("run")
        .args(TINY)
        .arg("--force")
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(read_json(&out)["format"], "gradtrace-run");
}

/// Runs `gradtrace run` with the tiny flags plus `extra`, in a fresh folder, and checks it fails
/// with one line on stderr that contains every `expected` piece, writing nothing.
fn rejects(extra: &[&str], expected: &[&str]) {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out").join("run.json");
    let assert = gradtrace()
        .current_dir(dir.path())
        .arg("run")
        .args(TINY)
        .args(extra)
        .arg("--out")
        .arg(&out)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line for {extra:?}, got:\n{stderr}"
    );
    for piece in expected {
        assert!(
            stderr.contains(piece),
            "{extra:?}: `{piece}` missing from: {stderr}"
        );
    }
    let left: Vec<String> = listing(dir.path())
        .into_iter()
        .filter(|p| !p.ends_with(".csv"))
        .collect();
    assert!(left.is_empty(), "{extra:?} left files behind: {left:?}");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn unknown_activation_and_initializer_are_rejected_naming_the_flag() {
    rejects(
        &["--activation", "swish2"],
        &["--activation", "possible values", "sigmoid"],
    );
    rejects(&["--init", "xavier"], &["--init", "glorot-uniform"]);
    rejects(&["--optimizer", "adagrad"], &["--optimizer"]);
}

#[test]
fn zero_epochs_batch_size_or_width_are_rejected() {
    rejects(&["--epochs", "0"], &["--epochs", "at least 1"]);
    rejects(&["--batch-size", "0"], &["--batch-size", "at least 1"]);
    rejects(&["--hidden", "5,0,5"], &["--hidden", "layer 2 has width 0"]);
    rejects(&["--grad-every", "0"], &["--grad-every"]);
}

#[test]
fn impossible_two_circles_are_rejected() {
    rejects(&["--noise", "-0.1"], &["--noise", "0 or a positive"]);
    rejects(&["--factor", "1.0"], &["--factor", "between 0 and 1"]);
    rejects(&["--factor", "0"], &["--factor"]);
    rejects(&["--factor", "-2"], &["--factor"]);
}

#[test]
fn bad_csv_files_are_rejected_naming_the_line() {
    let dir = TempDir::new().unwrap();
    let case = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let missing = dir.path().join("absent.csv").display().to_string();
    rejects(
        &["--csv", &missing],
        &["--csv", "absent.csv", "cannot open"],
    );
    rejects(
        &["--csv", &case("empty.csv", "")],
        &["empty.csv", "no data rows"],
    );
    rejects(
        &["--csv", &case("header.csv", "x0,x1,label\n")],
        &["header.csv", "no data rows"],
    );
    rejects(
        &["--csv", &case("ragged.csv", "0,0,1\n1,1\n")],
        &["ragged.csv:2", "3 fields"],
    );
    rejects(
        &["--csv", &case("words.csv", "0,0,1\n0.5,abc,0\n")],
        &["words.csv:2", "x1", "abc"],
    );
    rejects(
        &["--csv", &case("labels.csv", "0,0,1\n1,1,0\n2,2,2\n")],
        &["labels.csv:3", "0 or 1"],
    );
}

#[test]
fn an_unwritable_output_folder_is_rejected_before_training() {
    let dir = TempDir::new().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    gradtrace()
        .arg("run")
        .args(TINY)
        .arg("--out")
        .arg(blocker.join("run.json"))
        .assert()
        .failure()
        .stderr(contains("--out").and(contains("cannot create the folder")));
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a folder");
}

#[test]
fn cuda_is_refused_clearly_where_libtorch_sees_none() {
    if tch::Cuda::is_available() {
        return; // This check is about machines without a GPU.
    }
    rejects(
        &["--device", "cuda"],
        &["--device cuda", "no CUDA device", "cpu"],
    );
    rejects(&["--device", "gpu"], &["--device", "cuda:N"]);
}

#[test]
fn a_diverging_run_is_marked_with_its_epoch_and_step() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("boom.json");
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args([
            "--activation",
            "linear",
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
            "--epochs",
            "5",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(contains("diverged").and(contains("epoch 1")));
    let json = read_json(&out);
    assert_eq!(json["status"], "diverged");
    assert_eq!(json["diverged_at"]["epoch"], 1);
    let step = json["diverged_at"]["step"].as_u64().unwrap();
    assert!(
        (1..4).contains(&step),
        "the first step's loss is finite; got step {step}"
    );
    assert_eq!(
        json["epochs"].as_array().unwrap().len(),
        1,
        "training stopped in epoch 1"
    );
}

#[test]
fn non_finite_and_oversized_values_are_refused_before_anything_is_allocated() {
    rejects(
        &["--init", "uniform", "--init-low", "nan"],
        &["--init-low", "finite"],
    );
    rejects(
        &[
            "--init",
            "uniform",
            "--init-low=-1e308",
            "--init-high",
            "1e308",
        ],
        &["--init-low"],
    );
    rejects(&["--init-mean", "inf"], &["--init-mean", "finite"]);
    rejects(&["--init-sd", "1e39"], &["--init-sd", "finite"]);
    rejects(&["--noise", "1e300"], &["--noise", "finite"]);
    rejects(&["--epsilon", "inf"], &["--epsilon"]);
    rejects(
        &["--samples", "18446744073709551615"],
        &["--samples", "at most"],
    );
    rejects(&["--hidden", "100000,100000"], &["--hidden", "parameters"]);
    rejects(&["--hidden", "10000000"], &["activations would not fit"]);
    rejects(
        &["--epochs", "100000000000000"],
        &["--epochs", "--record stats"],
    );
}

#[test]
fn negative_counts_name_their_flag() {
    rejects(&["--epochs", "-1"], &["--epochs"]);
    rejects(&["--hidden", "-1"], &["--hidden"]);
    rejects(&["--lr", "-1"], &["--lr", "positive"]);
}

#[test]
fn an_output_path_that_names_a_folder_is_refused() {
    let dir = TempDir::new().unwrap();
    let out = format!("{}/new/", dir.path().display());
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(["--out", &out])
        .assert()
        .failure()
        .stderr(contains("names a folder"));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn a_run_that_breaks_its_weights_on_the_last_update_is_still_marked_diverged() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("last.json");
    // One epoch of one full batch: the only update is the last; it leaves finite weights so
    // large (about 3e38) that the logits overflow.
    gradtrace()
        .arg("run")
        .args(TINY)
        .args(SMALL_DATA)
        .args(["--activation", "linear", "--lr", "1e38", "--epochs", "1"])
        .args(["--batch-size", "100", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr(contains("diverged"));
    let json = read_json(&out);
    assert_eq!(json["status"], "diverged");
    assert_eq!(json["diverged_at"]["step"], 0);
    assert!(
        json["evaluation"]["after"]["accuracy"].is_null(),
        "a broken model has no accuracy"
    );
}

#[test]
fn ctrl_c_stops_a_run_with_status_130_and_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("new").join("run.json");
    let args = [
        "run",
        "--epochs",
        "1000000",
        "--record",
        "stats",
        "--grad-every",
        "never",
    ];
    let mut child = spawn(&[&args[..], &["--quiet", "--out"]].concat(), &out);
    // Wait until the run has reserved its output (the folder appears), then interrupt it.
    wait_until(&mut child, || out.parent().unwrap().exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        listing(dir.path()).is_empty(),
        "left behind: {:?}",
        listing(dir.path())
    );
}

#[test]
fn the_tutorial_refuses_a_folder_holding_other_files_and_touches_none_of_them() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("summary.json"), "my own notes").unwrap();
    tiny_tutorial()
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(contains("--out-dir").and(contains("no earlier tutorial")));
    assert_eq!(listing(dir.path()), ["summary.json"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        "my own notes"
    );
}

#[test]
fn the_tutorial_writes_every_run_and_replaces_only_its_own_earlier_results() {
    let dir = TempDir::new().unwrap();
    let run = |init: &str| {
        tiny_tutorial()
            .args(["--init", init])
            .arg("--out-dir")
            .arg(dir.path())
            .assert()
            .success()
            .stdout(contains("3-gradients-sigmoid-normal").and(contains("0.652")));
    };
    run("glorot-uniform");
    let summary = read_json(&dir.path().join("summary.json"));
    assert_eq!(summary["format"], "gradtrace-tutorial");
    assert_eq!(summary["runs"].as_array().unwrap().len(), 17);
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();

    run("he-normal");
    let files = listing(dir.path());
    assert!(files.iter().any(|f| f.contains("he-normal")));
    assert!(
        !files.iter().any(|f| f.contains("glorot")),
        "stale runs removed: {files:?}"
    );
    assert!(
        files.contains(&"notes.txt".to_string()),
        "a user's file stays"
    );
    assert_eq!(files.iter().filter(|f| f.ends_with(".json")).count(), 18);
}

#[test]
fn a_killed_tutorial_does_not_block_the_next_one() {
    let dir = TempDir::new().unwrap();
    // What `kill -9` during a first tutorial leaves: hidden temporary files only.
    std::fs::write(dir.path().join(".gradtrace-otherhost-1-abc.tmp"), "partial").unwrap();
    tiny_tutorial()
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .success();
    assert!(dir.path().join("summary.json").exists());
}

#[test]
fn paper_reproduces_the_predicted_ratios_and_keeps_other_files() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("paper");
    gradtrace()
        .args(["paper", "--no-plots", "--batch", "100", "--out-dir"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("tanh-standard").and(contains("relu-he")));
    let json = read_json(&out.join("paper.json"));
    assert_eq!(json["format"], "gradtrace-paper");
    let experiments = json["experiments"].as_array().unwrap();
    assert_eq!(experiments.len(), 4);
    for e in experiments {
        assert_eq!(e["agrees"], true, "{e}");
        assert!(e["activation_variance"].as_array().unwrap().len() >= 5);
    }

    // A second time replaces its own file; a paper.json that is not ours is refused.
    gradtrace()
        .args(["paper", "--no-plots", "--batch", "100", "--out-dir"])
        .arg(&out)
        .assert()
        .success();
    std::fs::write(out.join("paper.json"), "{\"mine\": 1}").unwrap();
    gradtrace()
        .args(["paper", "--no-plots", "--batch", "100", "--out-dir"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(contains("no earlier paper wrote it"));
    assert_eq!(
        std::fs::read_to_string(out.join("paper.json")).unwrap(),
        "{\"mine\": 1}"
    );
}
