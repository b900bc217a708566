//! Ctrl-C as a request to stop cleanly: work in progress is dropped (its temporary files with
//! it), finished results stay, and the process exits with status 130.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Turns SIGINT (and SIGTERM) into a stop request instead of an abrupt exit.
pub fn install() {
    // A second installation attempt (tests, repeated calls) keeps the first handler.
    let _ = ctrlc::set_handler(|| REQUESTED.store(true, Ordering::SeqCst));
}

/// True once the user asked to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The error a stopped computation returns; `main` exits with 130 on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted; finished results are kept, unfinished ones removed"
        )
    }
}

impl std::error::Error for Interrupted {}
