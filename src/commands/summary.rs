//! `gradtrace summary`: the indexes of one or more sweep folders (all shards) merged into one
//! table, one row per configuration, aggregated over seeds; optionally as CSV and JSON too.

use crate::cli::SummaryArgs;
use crate::commands::sweep::index_files;
use crate::output::{refuse_inside_sweep, resolved, PendingFile};
use crate::sweep::index;
use crate::sweep::summary::{summarize, SummaryRow};
use anyhow::{bail, Context, Result};

/// Prints the merged table and writes the requested files.
pub fn run(args: &SummaryArgs) -> Result<()> {
    // Reserve the outputs first, so a bad path fails before reading anything. Neither may go
    // into a sweep it summarizes (the sweep could no longer resume, or would lose its index),
    // nor both to one file.
    let outputs = [("--csv", &args.csv), ("--json", &args.json)];
    for (flag, path) in outputs
        .iter()
        .filter_map(|(f, p)| p.as_ref().map(|p| (f, p)))
    {
        refuse_inside_sweep(flag, path, &args.folders)?;
    }
    if let (Some(csv), Some(json)) = (&args.csv, &args.json) {
        if resolved(csv) == resolved(json) {
            bail!(
                "--csv and --json: both name {}; give two files",
                csv.display()
            );
        }
    }
    let csv_file = args
        .csv
        .as_ref()
        .map(|p| PendingFile::reserve(p, args.force, "--csv"));
    let json_file = args
        .json
        .as_ref()
        .map(|p| PendingFile::reserve(p, args.force, "--json"));
    let (csv_file, json_file) = (csv_file.transpose()?, json_file.transpose()?);

    let mut entries = Vec::new();
    for folder in &args.folders {
        if !folder.is_dir() {
            bail!(
                "{}: not a folder; give sweep folders (outputs/<sweep>)",
                folder.display()
            );
        }
        let files = index_files(folder)?;
        if files.is_empty() {
            bail!(
                "{}: no index*.jsonl here; is it a sweep folder?",
                folder.display()
            );
        }
        for file in files {
            entries.extend(index::read(&file)?);
        }
    }
    if entries.is_empty() {
        bail!(
            "{}: the index lists no runs yet; run gradtrace sweep into it first, or wait until \
             some of its runs have finished",
            args.folders[0].display()
        );
    }
    let rows = summarize(&entries);
    let (header, table) = cells(&rows);

    print_table(&header, &table);
    if let Some(file) = csv_file {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&header)?;
        for row in &table {
            writer.write_record(row)?;
        }
        let bytes = writer.into_inner().context("writing CSV")?;
        let path = file.commit_bytes(&bytes)?;
        eprintln!("summary: wrote {}", path.display());
    }
    if let Some(file) = json_file {
        let path = file.commit_json(&rows)?;
        eprintln!("summary: wrote {}", path.display());
    }
    Ok(())
}

/// Header and text cells: the varying knobs, then the aggregates.
fn cells(rows: &[SummaryRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let knobs: Vec<String> = rows
        .first()
        .map(|r| r.knobs.keys().cloned().collect())
        .unwrap_or_default();
    let mut header = knobs.clone();
    header.extend(
        [
            "runs",
            "failed",
            "acc_mean",
            "acc_sd",
            "loss_mean",
            "loss_sd",
            "diverged",
            "gsd_first/last",
            "vanish_idx",
        ]
        .map(String::from),
    );
    // Four decimals, or scientific notation where that would be unreadable (a loss of 1e29
    // from a run that blew up without overflowing).
    let number = |v: Option<f64>| {
        v.map_or("-".to_string(), |v| {
            if v.abs() >= 1e6 {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        })
    };
    let table = rows
        .iter()
        .map(|r| {
            let mut cells: Vec<String> = knobs.iter().map(|k| r.knobs[k].clone()).collect();
            cells.extend([
                r.runs.to_string(),
                r.failed.to_string(),
                number(r.accuracy_mean),
                number(r.accuracy_sd),
                number(r.loss_mean),
                number(r.loss_sd),
                format!("{:.2}", r.diverged_share),
                r.first_to_last_sd_ratio
                    .map_or("-".into(), |v| format!("{v:.3e}")),
                r.vanishing_index.map_or("-".into(), |v| format!("{v:.3e}")),
            ]);
            cells
        })
        .collect();
    (header, table)
}

fn print_table(header: &[String], table: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header));
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1))
    );
    for row in table {
        println!("{}", line(row));
    }
}
