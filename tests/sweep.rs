//! `gradtrace sweep` and `gradtrace summary` end to end: resuming, interrupting, locking,
//! sharding, and refusing bad grids.

mod common;

use common::{assert_json_close, gradtrace, listing, read_json, spawn, wait_until};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use std::collections::BTreeSet;
use std::path::Path;
use tempfile::TempDir;

/// A 12-run grid of tiny runs: 2 activations x 2 initializers x 3 seeds.
const GRID: &[&str] = &[
    "--activation",
    "sigmoid,tanh",
    "--init",
    "normal,glorot-uniform",
    "--seeds",
    "0..3",
    "--hidden",
    "4,3",
    "--epochs",
    "3",
    "--samples",
    "100",
    "--record",
    "stats",
    "--quiet",
];

/// Makes the grid long enough (200 runs of 50 epochs) to be caught in the middle.
/// A sweep that runs for seconds: one run at a time, so that files appear one by one.
const LONG: [&str; 6] = ["--seeds", "0..50", "--epochs", "50", "--engine", "single"];

fn sweep(folder: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    gradtrace()
        .arg("sweep")
        .args(GRID)
        .args(extra)
        .arg("--out-dir")
        .arg(folder)
        .assert()
}

/// Run ids with a JSON file, and index ids, of a sweep folder.
fn contents(folder: &Path) -> (BTreeSet<String>, Vec<String>) {
    let runs = listing(&folder.join("runs"))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".json").map(String::from))
        .collect();
    let mut indexed = Vec::new();
    for file in listing(folder)
        .into_iter()
        .filter(|f| f.starts_with("index"))
    {
        let text = std::fs::read_to_string(folder.join(file)).unwrap();
        for line in text.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            indexed.push(entry["id"].as_str().unwrap().to_string());
        }
    }
    indexed.sort();
    (runs, indexed)
}

#[test]
fn a_sweep_writes_every_run_once_and_a_rerun_skips_them() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    sweep(&folder, &[]).success();
    let (runs, indexed) = contents(&folder);
    assert_eq!(runs.len(), 12);
    assert_eq!(indexed, runs.iter().cloned().collect::<Vec<_>>());
    let json = read_json(
        &folder
            .join("runs")
            .join(format!("{}.json", runs.first().unwrap())),
    );
    assert_eq!(json["format"], "gradtrace-run");

    let before = std::fs::metadata(folder.join("index.jsonl")).unwrap().len();
    gradtrace()
        .arg("sweep")
        .args(GRID)
        .arg("--out-dir")
        .arg(&folder)
        .args(["--jobs", "1"])
        .assert()
        .success();
    assert_eq!(
        std::fs::metadata(folder.join("index.jsonl")).unwrap().len(),
        before
    );
}

#[test]
fn a_sweep_killed_midway_is_finished_by_the_next_invocation_with_every_run_once() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    let mut args: Vec<String> = GRID.iter().map(|s| s.to_string()).collect();
    args.extend([
        "--seeds".into(),
        "0..20".into(),
        "--epochs".into(),
        "30".into(),
    ]);
    let mut spawned: Vec<&str> = vec!["sweep"];
    spawned.extend(args.iter().map(String::as_str));
    spawned.push("--out-dir");
    let mut child = spawn(&spawned, &folder);
    wait_until(&mut child, || contents(&folder).0.len() >= 5);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let (partial, _) = contents(&folder);
    assert!(
        partial.len() >= 5 && partial.len() < 80,
        "killed midway: {} runs",
        partial.len()
    );

    // A torn line as a kill could leave it.
    use std::io::Write;
    let mut index = std::fs::OpenOptions::new()
        .append(true)
        .open(folder.join("index.jsonl"))
        .unwrap();
    index.write_all(b"{\"id\":\"torn").unwrap();
    drop(index);

    gradtrace()
        .arg("sweep")
        .args(&args)
        .arg("--out-dir")
        .arg(&folder)
        .assert()
        .success();
    let (runs, indexed) = contents(&folder);
    assert_eq!(runs.len(), 80);
    assert_eq!(
        indexed,
        runs.iter().cloned().collect::<Vec<_>>(),
        "each run indexed once"
    );
    assert!(partial.is_subset(&runs));
    let leftovers: Vec<String> = listing(&folder.join("runs"))
        .into_iter()
        .filter(|f| !f.ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn ctrl_c_stops_a_sweep_with_status_130_keeping_finished_runs() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    let mut child = spawn(&[&["sweep"], GRID, &LONG, &["--out-dir"]].concat(), &folder);
    wait_until(&mut child, || contents(&folder).0.len() >= 2);
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let (runs, indexed) = contents(&folder);
    assert!(!runs.is_empty() && runs.len() < 200);
    assert_eq!(indexed, runs.iter().cloned().collect::<Vec<_>>());
    assert!(listing(&folder.join("runs"))
        .iter()
        .all(|f| f.ends_with(".json")));
}

#[test]
fn two_sweeps_on_one_folder_at_once_do_not_collide() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    let mut first = spawn(&[&["sweep"], GRID, &LONG, &["--out-dir"]].concat(), &folder);
    wait_until(&mut first, || folder.join("runs").exists());
    gradtrace()
        .arg("sweep")
        .args(GRID)
        .args(LONG)
        .arg("--out-dir")
        .arg(&folder)
        .assert()
        .failure()
        .stderr(contains("another gradtrace sweep is running"));
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_folder_of_another_sweep_is_refused_unless_extended() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    sweep(&folder, &[]).success();
    sweep(&folder, &["--lr", "0.01"])
        .failure()
        .stderr(contains("holds a different sweep"));
    assert_eq!(contents(&folder).0.len(), 12);
    sweep(&folder, &["--lr", "0.01", "--extend"]).success();
    assert_eq!(contents(&folder).0.len(), 24);
    sweep(&folder, &["--lr", "0.01"]).success(); // now part of the folder's grids
}

#[test]
fn shards_merge_into_the_same_summary_as_one_machine() {
    let dir = TempDir::new().unwrap();
    let whole = dir.path().join("whole");
    sweep(&whole, &[]).success();
    let shared = dir.path().join("sharded");
    for shard in ["0/4", "1/4", "2/4", "3/4"] {
        sweep(&shared, &["--shard", shard]).success();
    }
    assert_eq!(contents(&shared).0, contents(&whole).0);

    let summary = |folder: &Path, json: &Path| {
        gradtrace()
            .arg("summary")
            .arg(folder)
            .arg("--json")
            .arg(json)
            .assert()
            .success();
        let mut value = read_json(json);
        // Wall times differ between machines and runs; everything else must match.
        for row in value.as_array_mut().unwrap() {
            row.as_object_mut().unwrap().remove("wall_time_s");
        }
        value
    };
    // Shards group runs into other ensembles than one machine does: weights and gradients agree
    // bit for bit on the CPU, but losses (libtorch's vectorized kernels) can differ in the last
    // float32 digit (see the README).
    let merged = summary(&shared, &dir.path().join("a.json"));
    assert_json_close(&merged, &summary(&whole, &dir.path().join("b.json")), 1e-5);
    assert_eq!(
        merged.as_array().unwrap().len(),
        4,
        "2 activations x 2 initializers"
    );
    assert_eq!(merged[0]["runs"], 3);

    // Kubernetes: the index comes from JOB_COMPLETION_INDEX, the count from --shards.
    let k8s = dir.path().join("k8s");
    for index in ["0", "1"] {
        gradtrace()
            .arg("sweep")
            .args(GRID)
            .args(["--shards", "2", "--out-dir"])
            .arg(&k8s)
            .env("JOB_COMPLETION_INDEX", index)
            .assert()
            .success();
    }
    assert_eq!(contents(&k8s).0, contents(&whole).0);
    // Slurm: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT.
    let slurm = dir.path().join("slurm");
    for task in ["0", "1", "2"] {
        gradtrace()
            .arg("sweep")
            .args(GRID)
            .arg("--out-dir")
            .arg(&slurm)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .assert()
            .success();
    }
    assert_eq!(contents(&slurm).0, contents(&whole).0);
    assert_eq!(
        listing(&slurm)
            .iter()
            .filter(|f| f.starts_with("index-shard"))
            .count(),
        3
    );
}

#[test]
fn a_sweep_file_gives_the_same_runs_as_flags() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("grid.toml");
    std::fs::write(
        &file,
        "activation = [\"sigmoid\", \"tanh\"]\ninit = [\"normal\", \"glorot-uniform\"]\n\
         seed = \"0..3\"\nhidden = \"4,3\"\nepochs = 3\nsamples = 100\nrecord = \"stats\"\n",
    )
    .unwrap();
    let from_file = dir.path().join("file");
    gradtrace()
        .args(["sweep", "--quiet", "--file"])
        .arg(&file)
        .arg("--out-dir")
        .arg(&from_file)
        .assert()
        .success();
    let from_flags = dir.path().join("flags");
    sweep(&from_flags, &[]).success();
    assert_eq!(contents(&from_file).0, contents(&from_flags).0);
}

#[test]
fn bad_grids_and_shards_are_refused_with_nothing_written() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    let refuse = |args: &[&str], expected: &[&str]| {
        let assert = gradtrace()
            .arg("sweep")
            .args(args)
            .arg("--out-dir")
            .arg(&folder)
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        for piece in expected {
            assert!(
                stderr.contains(piece),
                "{args:?}: `{piece}` missing from {stderr}"
            );
        }
        assert!(!folder.exists(), "{args:?} wrote {folder:?}");
    };
    refuse(&[], &["grid is empty"]);
    refuse(
        &["--activation", "sigmoid,swish"],
        &["--activation", "swish"],
    );
    refuse(&["--epochs", "0"], &["--epochs"]);
    refuse(
        &["--activation", "tanh", "--name", "../x"],
        &["--name", "plain"],
    );
    refuse(&["--seeds", "5..2"], &["--seeds", "empty"]);
    refuse(
        &["--activation", "tanh", "--shard", "4/4"],
        &["--shard 4/4", "out of range"],
    );
    refuse(&["--activation", "tanh", "--shard", "0/0"], &["at least 1"]);
    refuse(
        &["--activation", "tanh", "--shards", "3"],
        &["JOB_COMPLETION_INDEX"],
    );

    let file = dir.path().join("grid.toml");
    std::fs::write(&file, "activation = [\"tanh\"]\n\nlearning_rate = [0.1]\n").unwrap();
    refuse(
        &["--file", file.to_str().unwrap()],
        &["grid.toml:3", "unknown knob `learning_rate`"],
    );
    std::fs::write(&file, "activation = [\"tanh\"]\ninit = [\"xavier\"]\n").unwrap();
    refuse(
        &["--file", file.to_str().unwrap()],
        &["grid.toml:2", "xavier"],
    );

    // A folder that is not a sweep's is never written into.
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("mine.txt"), "mine").unwrap();
    gradtrace()
        .args([
            "sweep",
            "--activation",
            "tanh",
            "--epochs",
            "1",
            "--quiet",
            "--out-dir",
        ])
        .arg(&folder)
        .assert()
        .failure()
        .stderr(contains("not a gradtrace sweep's").and(contains("--out-dir")));
    assert_eq!(listing(&folder), ["mine.txt"]);
}

#[test]
fn summary_writes_csv_and_json_and_refuses_non_sweep_folders() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    sweep(&folder, &[]).success();
    let csv = dir.path().join("table.csv");
    gradtrace()
        .arg("summary")
        .arg(&folder)
        .arg("--csv")
        .arg(&csv)
        .assert()
        .success()
        .stdout(contains("activation").and(contains("acc_mean")));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text.lines().count(),
        5,
        "header + 4 configurations:\n{text}"
    );
    assert!(text.starts_with("activation,init,runs,"));
    gradtrace()
        .arg("summary")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(contains("no index"));

    // Never into the sweep it reads (it could no longer resume), never both files to one path.
    let before = listing(&folder);
    for (flag, path) in [("--csv", "table.csv"), ("--json", "sweep.json")] {
        gradtrace()
            .arg("summary")
            .arg(&folder)
            .arg(flag)
            .arg(folder.join(path))
            .arg("--force")
            .assert()
            .failure()
            .stderr(contains("inside the sweep folder"));
    }
    assert_eq!(listing(&folder), before);
    let both = dir.path().join("both.out");
    let again = dir.path().join("s/../both.out");
    gradtrace()
        .arg("summary")
        .arg(&folder)
        .arg("--csv")
        .arg(&both)
        .arg("--json")
        .arg(&again)
        .assert()
        .failure()
        .stderr(contains("both name"));
    assert!(!both.exists());

    // Nor do run and paper write into a sweep; the sweep still resumes afterwards.
    gradtrace()
        .args([
            "run",
            "--epochs",
            "1",
            "--samples",
            "64",
            "--quiet",
            "--out",
        ])
        .arg(folder.join("extra.json"))
        .assert()
        .failure()
        .stderr(contains("inside the sweep folder"));
    gradtrace()
        .args(["paper", "--no-plots", "--out-dir"])
        .arg(folder.join("paper"))
        .assert()
        .failure()
        .stderr(contains("inside the sweep folder"));
    assert_eq!(listing(&folder), before);
    sweep(&folder, &[]).success();

    // A damaged index line is named, not skipped.
    let index = folder.join("index.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, format!("garbage{{\n{text}")).unwrap();
    gradtrace()
        .arg("summary")
        .arg(&folder)
        .assert()
        .failure()
        .stderr(contains("index.jsonl:1: not an index entry"));
}

#[test]
fn the_kubernetes_manifest_shards_as_many_ways_as_it_has_completions() {
    let text = std::fs::read_to_string("scripts/k8s/sweep-job.yaml").unwrap();
    let value_after = |key: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split(':').nth(1).unwrap().trim().to_string()
    };
    assert_eq!(value_after("completionMode:"), "Indexed");
    let completions = value_after("completions:");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let shards = lines
        .iter()
        .position(|l| *l == "- --shards")
        .expect("the Job passes --shards");
    assert_eq!(
        lines[shards + 1],
        format!("- \"{completions}\""),
        "--shards must equal completions"
    );
    assert!(lines.contains(&"- sweep"));
}

#[test]
fn diverged_runs_are_recorded_and_the_sweep_goes_on() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    gradtrace()
        .args([
            "sweep",
            "--quiet",
            "--activation",
            "linear",
            "--optimizer",
            "sgd",
        ])
        .args([
            "--lr",
            "0.001,1e30",
            "--seeds",
            "0..2",
            "--epochs",
            "3",
            "--samples",
            "100",
        ])
        .arg("--out-dir")
        .arg(&folder)
        .assert()
        .success();
    let (runs, _) = contents(&folder);
    assert_eq!(runs.len(), 4, "diverged runs keep their history");
    let index = std::fs::read_to_string(folder.join("index.jsonl")).unwrap();
    assert_eq!(index.matches("\"status\":\"diverged\"").count(), 2);

    let json = dir.path().join("summary.json");
    gradtrace()
        .arg("summary")
        .arg(&folder)
        .arg("--json")
        .arg(&json)
        .assert()
        .success();
    let rows = read_json(&json);
    let share = |lr: &str| {
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["knobs"]["optimizer.learning_rate"] == lr);
        row.unwrap()["diverged_share"].as_f64().unwrap()
    };
    assert_eq!(share("0.001"), 0.0);
    assert_eq!(share("1e+30"), 1.0);
}

#[test]
fn shards_starting_together_into_a_new_folder_all_run() {
    let dir = TempDir::new().unwrap();
    for trial in 0..5 {
        let folder = dir.path().join(format!("race{trial}"));
        let children: Vec<_> = (0..4)
            .map(|i| {
                let shard = format!("{i}/4");
                let args = [
                    "sweep",
                    "--quiet",
                    "--activation",
                    "tanh",
                    "--seed-count",
                    "8",
                ];
                let extra = [
                    "--epochs",
                    "1",
                    "--samples",
                    "20",
                    "--shard",
                    &shard,
                    "--out-dir",
                ];
                spawn(&[&args[..], &extra[..]].concat(), &folder)
            })
            .collect();
        for mut child in children {
            assert!(
                child.wait().unwrap().success(),
                "trial {trial}: a shard was refused"
            );
        }
        assert_eq!(contents(&folder).0.len(), 8, "trial {trial}");
    }
}

#[test]
fn a_grid_is_known_by_its_runs_not_by_how_its_values_are_written() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("s");
    sweep(&folder, &["--lr", "1e-3"]).success();
    let file = dir.path().join("same.toml");
    std::fs::write(
        &file,
        "activation = [\"sigmoid\", \"tanh\"]\ninit = [\"normal\", \"glorot-uniform\"]\n\
         seed = [0, 1, 2]\nhidden = [[4, 3]]\nepochs = 3\nsamples = 100\nrecord = \"stats\"\n\
         lr = 0.001\n",
    )
    .unwrap();
    gradtrace()
        .args(["sweep", "--quiet", "--file"])
        .arg(&file)
        .arg("--out-dir")
        .arg(&folder)
        .assert()
        .success();
    let sweep_file = read_json(&folder.join("sweep.json"));
    assert_eq!(sweep_file["grids"].as_array().unwrap().len(), 1);
}
