//! Runs many independent trainings on a few worker threads.
//!
//! Each worker owns its models outright (a `Tensor` may move between threads but not be shared),
//! and libtorch is kept to one intra-op thread so that workers do not fight over the cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Calls `work` once for every item on `jobs` threads and returns the results in item order.
/// `done` is called (from a worker) after each item finishes.
pub fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> R + Sync,
    done: impl Fn(&R) + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                done(&result);
                results.lock().expect("a worker panicked")[i] = Some(result);
            });
        }
    });
    let results = results.into_inner().expect("a worker panicked");
    results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The number of cores, for the default of `--jobs`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
