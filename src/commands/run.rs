//! `gradtrace run`: one training, one JSON.

use crate::cli::RunArgs;
use crate::config::WARN_HISTORY_BYTES;
use crate::data::Dataset;
use crate::output::{progress_bar, PendingFile};
use crate::record::Status;
use crate::train::train;
use anyhow::Result;
use std::path::PathBuf;

/// Trains the network the flags describe and writes its history.
pub fn run(args: &RunArgs) -> Result<()> {
    // Everything that can be wrong with the input fails here, before any training.
    let config = args.config()?;
    let device = args.device.resolve("--device")?;
    let data = Dataset::load(&config.data)?;
    let path = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("outputs")
            .join("runs")
            .join(format!("{}.json", config.name))
    });
    let pending = PendingFile::reserve(&path, args.force, "--out")?;
    let bytes = config.estimated_history_bytes(data.len());
    if bytes > WARN_HISTORY_BYTES {
        eprintln!(
            "warning: the run JSON will be about {} MB; --record stats keeps only the summaries",
            bytes / 1_000_000
        );
    }

    let bar = progress_bar(config.epochs as u64, "epochs", args.quiet);
    bar.set_message(config.name.clone());
    let record = train(&config, &data, device, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let written = pending.commit_json(&record)?;

    if let (Status::Diverged, Some(at)) = (record.status, record.diverged_at) {
        eprintln!(
            "warning: {} diverged (loss or weights no longer finite) at epoch {}, step {} \
             (global step {}); training stopped there (learning rate or initial weights too \
             large?)",
            config.name, at.epoch, at.step, at.global_step
        );
    }
    if !args.quiet {
        let eval = record.evaluation;
        println!(
            "{}: accuracy {:.3} -> {:.3}, loss {:.4} -> {:.4}, {:.2} s; wrote {}",
            config.name,
            eval.before.accuracy,
            eval.after.accuracy,
            eval.before.loss,
            eval.after.loss,
            record.wall_time_s,
            written.display()
        );
    }
    Ok(())
}
