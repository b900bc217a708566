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

/// Calls `work(index, item)` for every item, the items split into `threads` contiguous parts
/// worked on at once; with one thread, in place on the caller's.
pub fn for_each_parallel<T: Send>(
    items: &mut [T],
    threads: usize,
    work: impl Fn(usize, &mut T) + Sync,
) {
    if threads <= 1 || items.len() < 2 {
        items
            .iter_mut()
            .enumerate()
            .for_each(|(i, item)| work(i, item));
        return;
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (c, part) in items.chunks_mut(chunk).enumerate() {
            let work = &work;
            scope.spawn(move || {
                for (k, item) in part.iter_mut().enumerate() {
                    work(c * chunk + k, item);
                }
            });
        }
    });
}

/// The number of cores, for the default of `--jobs`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_worked_once_with_its_index() {
        for threads in [1, 3, 8] {
            let mut items = vec![0usize; 10];
            for_each_parallel(&mut items, threads, |i, item| *item += i + 1);
            assert_eq!(items, (1..=10).collect::<Vec<_>>());
        }
    }
}
