//! Which engine trains which runs, on how many workers.
//!
//! Runs that may share an ensemble (same shape, data, optimizer and schedule; see
//! `train::ensemble_key`) are grouped, ordered by activation so that each activation is one
//! contiguous block, and cut into as many ensembles as there are workers (more when a group
//! exceeds `--max-ensemble`). Each worker trains its ensembles on one libtorch thread: on a CPU,
//! separate workers use the cores better than intra-op threads on such small matrices.

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::pool::map_parallel;
use crate::record::RunRecord;
use crate::train::{ensemble_key, train, train_ensemble};
use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use tch::Device;

/// How runs are trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// One network at a time (the reference).
    Single,
    /// Runs of one shape trained together, even one alone.
    Ensemble,
    /// The ensemble engine wherever at least two runs share a worker's ensemble, else single.
    Auto,
}

/// Models in one ensemble on the CPU unless `--max-ensemble` says otherwise: at 512 lanes a
/// layer's activations for a batch (5 units x 32 points x 512 models, 330 KB) stay in a core's
/// L2 cache; at 4096 they do not, and each model costs half as much again.
pub const DEFAULT_MAX_ENSEMBLE_CPU: usize = 512;
/// The same on CUDA, where a larger ensemble costs about as much per step as a small one.
pub const DEFAULT_MAX_ENSEMBLE_CUDA: usize = 16384;

/// The default `--max-ensemble` for a device.
pub fn default_max_ensemble(device: tch::Device) -> usize {
    if device == tch::Device::Cpu {
        DEFAULT_MAX_ENSEMBLE_CPU
    } else {
        DEFAULT_MAX_ENSEMBLE_CUDA
    }
}

/// One unit of work: the runs (indices into the configs) trained together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Indices of the runs, in training order.
    pub runs: Vec<usize>,
    /// Trained by the ensemble engine (else by the single engine, one run).
    pub ensemble: bool,
}

/// Splits the runs into tasks for `workers` workers.
pub fn plan(
    configs: &[&RunConfig],
    engine: Engine,
    workers: usize,
    max_models: usize,
) -> Vec<Task> {
    if engine == Engine::Single {
        return (0..configs.len())
            .map(|i| Task {
                runs: vec![i],
                ensemble: false,
            })
            .collect();
    }

    // Group by what an ensemble must share, in order of first appearance.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let key = serde_json::to_string(&ensemble_key(config)).expect("a config serializes");
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }

    // Each group sorted by activation (stable), then cut into near-equal contiguous chunks.
    let mut tasks = Vec::new();
    for (_, mut members) in groups {
        members.sort_by_key(|&i| configs[i].activation as u8);
        let size = members.len();
        // As many ensembles as workers, or a multiple of that when the group outgrows
        // --max-ensemble, so that no worker is left to train the last one alone.
        let workers = workers.clamp(1, size);
        let needed = size.div_ceil(max_models.max(1));
        let chunks = (needed.div_ceil(workers) * workers).min(size);
        let mut start = 0;
        for c in 0..chunks {
            let end = start + (size - start) / (chunks - c);
            let runs = members[start..end].to_vec();
            let ensemble = engine == Engine::Ensemble || runs.len() > 1;
            tasks.push(Task { runs, ensemble });
            start = end;
        }
    }
    tasks
}

/// Progress in runs, counted in millionths so that an ensemble's epochs move it smoothly.
#[derive(Default)]
pub struct Progress {
    micro_runs: AtomicU64,
}

impl Progress {
    /// Adds `models` runs' worth of one epoch out of `epochs`; returns the whole runs now done.
    pub fn add_epoch(&self, models: usize, epochs: usize) -> u64 {
        let step = models as u64 * 1_000_000 / epochs.max(1) as u64;
        (self.micro_runs.fetch_add(step, Ordering::Relaxed) + step) / 1_000_000
    }
}

/// Trains every task on `jobs` workers. For each run, in whichever order runs finish,
/// `finished(index, result)` is called on the worker that trained it (to write it out, say) and
/// its value is returned in the run's place. `on_epoch(models, epochs)` is called after every
/// epoch of every task.
#[allow(clippy::too_many_arguments)]
pub fn train_tasks<'d, T: Send>(
    tasks: &[Task],
    configs: &[&RunConfig],
    data_for: impl Fn(&RunConfig) -> &'d Dataset + Sync,
    device: Device,
    jobs: usize,
    on_epoch: impl Fn(usize, usize) + Sync,
    finished: impl Fn(usize, Result<RunRecord>) -> T + Sync,
) -> Vec<T> {
    let results = map_parallel(
        tasks,
        jobs,
        |task| {
            let first = configs[task.runs[0]];
            let data = data_for(first);
            let models = task.runs.len();
            let progress = |_| on_epoch(models, first.epochs);
            if !task.ensemble {
                let record = train(first, data, device, progress);
                return vec![(task.runs[0], finished(task.runs[0], record))];
            }
            let members: Vec<RunConfig> = task.runs.iter().map(|&i| configs[i].clone()).collect();
            match train_ensemble(&members, data, device, progress) {
                Ok(records) => task
                    .runs
                    .iter()
                    .zip(records)
                    .map(|(&i, record)| (i, finished(i, Ok(record))))
                    .collect(),
                Err(error) => task
                    .runs
                    .iter()
                    .map(|&i| (i, finished(i, Err(same_error(&error)))))
                    .collect(),
            }
        },
        |_| (),
    );
    let mut flat: Vec<(usize, T)> = results.into_iter().flatten().collect();
    flat.sort_by_key(|(i, _)| *i);
    flat.into_iter().map(|(_, value)| value).collect()
}

/// The error of a failed ensemble, once for each of its runs (an interruption stays one).
fn same_error(error: &anyhow::Error) -> anyhow::Error {
    if error.is::<crate::interrupt::Interrupted>() {
        crate::interrupt::Interrupted.into()
    } else {
        anyhow::anyhow!("{error:#}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    fn configs() -> Vec<RunConfig> {
        let mut out = Vec::new();
        for seed in 0..5 {
            for activation in [Activation::Tanh, Activation::Sigmoid] {
                let mut c = crate::testing::tiny_config();
                c.seed = seed;
                c.activation = activation;
                out.push(c);
            }
        }
        let mut deeper = crate::testing::tiny_config();
        deeper.hidden = vec![3, 3, 3];
        out.push(deeper);
        out
    }

    #[test]
    fn runs_of_one_shape_share_ensembles_cut_per_worker_and_sorted_by_activation() {
        let owned = configs();
        let configs: Vec<&RunConfig> = owned.iter().collect();
        let tasks = plan(&configs, Engine::Auto, 2, 4096);
        let sizes: Vec<(usize, bool)> = tasks.iter().map(|t| (t.runs.len(), t.ensemble)).collect();
        assert_eq!(sizes, [(5, true), (5, true), (1, false)]);
        // Sigmoid sorts before tanh: the first chunk is the five sigmoid runs.
        assert!(tasks[0]
            .runs
            .iter()
            .all(|&i| owned[i].activation == Activation::Sigmoid));
        assert_eq!(tasks[2].runs, [10]);
        let mut all: Vec<usize> = tasks.iter().flat_map(|t| t.runs.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn max_ensemble_and_the_engine_choice_are_honoured() {
        let owned = configs();
        let configs: Vec<&RunConfig> = owned.iter().collect();
        let sizes =
            |tasks: Vec<Task>| -> Vec<usize> { tasks.iter().map(|t| t.runs.len()).collect() };
        assert_eq!(sizes(plan(&configs, Engine::Auto, 1, 3)), [2, 2, 3, 3, 1]);
        // Three ensembles of at most 4 would leave one of two workers idle at the end: four.
        assert_eq!(sizes(plan(&configs, Engine::Auto, 2, 4)), [2, 2, 3, 3, 1]);
        assert_eq!(sizes(plan(&configs, Engine::Single, 2, 3)), [1; 11]);
        let forced = plan(&configs, Engine::Ensemble, 1, 4096);
        assert_eq!(sizes(forced.clone()), [10, 1]);
        assert!(forced.iter().all(|t| t.ensemble));
    }

    #[test]
    fn progress_counts_whole_runs_from_ensemble_epochs() {
        let progress = Progress::default();
        assert_eq!(progress.add_epoch(10, 3), 3);
        assert_eq!(progress.add_epoch(10, 3), 6);
        assert_eq!(
            progress.add_epoch(10, 3),
            9,
            "rounding down, never past the truth"
        );
    }
}
