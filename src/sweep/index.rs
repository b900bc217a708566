//! A sweep folder's index: one JSON line per finished run, safe under kills and shared writers.
//!
//! Writers append whole lines while holding an exclusive lock on the file. A writer killed
//! mid-line leaves a torn tail without a newline; readers ignore it and the next writer cuts it
//! off (under the lock) before appending, so a torn line never swallows a good one.

use crate::config::RunConfig;
use crate::record::RunRecord;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// One finished (or failed) run, as summarised in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The run's stable id (its JSON is `runs/<id>.json`).
    pub id: String,
    /// `completed`, `diverged`, or `failed` (no JSON: the run raised an error).
    pub status: String,
    /// The resolved config.
    pub config: RunConfig,
    /// Training-set accuracy after training.
    pub final_accuracy: Option<f64>,
    /// Training-set loss after training.
    pub final_loss: Option<f64>,
    /// True when the loss became NaN or infinite.
    pub diverged: bool,
    /// Per layer (input side first), the kernel-gradient S.D. at the first gradient record.
    pub first_record_sd: Vec<Option<f64>>,
    /// Per layer, the kernel-gradient S.D. at the last gradient record.
    pub last_record_sd: Vec<Option<f64>>,
    /// The run's median first-layer vanishing index (absent in indexes written before it
    /// existed).
    #[serde(default)]
    pub median_vanishing_index: Option<f64>,
    /// Seconds of training.
    pub wall_time_s: f64,
    /// Why a failed run failed.
    pub error: Option<String>,
}

impl IndexEntry {
    /// The index line of a run that produced a history.
    pub fn of_record(id: &str, record: &RunRecord) -> IndexEntry {
        let json = serde_json::to_value(record).expect("a run record serializes");
        IndexEntry::of_json(id, &json).expect("a fresh run record has every field")
    }

    /// The index line of a run JSON read back from disk (to repair an index that missed it).
    pub fn of_json(id: &str, run: &Value) -> Result<IndexEntry> {
        let config = serde_json::from_value(run["config"].clone()).context("its config")?;
        let sds = |record: Option<&Value>| -> Vec<Option<f64>> {
            record
                .and_then(|r| r["layers"].as_array())
                .map(|layers| layers.iter().map(|l| l["sd"].as_f64()).collect())
                .unwrap_or_default()
        };
        let gradients = run["gradients"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let status = run["status"].as_str().context("its status")?.to_string();
        Ok(IndexEntry {
            id: id.to_string(),
            diverged: status == "diverged",
            status,
            config,
            final_accuracy: run["evaluation"]["after"]["accuracy"].as_f64(),
            final_loss: run["evaluation"]["after"]["loss"].as_f64(),
            first_record_sd: sds(gradients.first()),
            last_record_sd: sds(gradients.last()),
            median_vanishing_index: run["median_vanishing_index"].as_f64(),
            wall_time_s: run["wall_time_s"].as_f64().unwrap_or(0.0),
            error: None,
        })
    }

    /// The index line of a run that raised an error instead of finishing.
    pub fn failed(id: &str, config: &RunConfig, error: &anyhow::Error) -> IndexEntry {
        IndexEntry {
            id: id.to_string(),
            status: "failed".into(),
            config: config.clone(),
            final_accuracy: None,
            final_loss: None,
            diverged: false,
            first_record_sd: Vec::new(),
            last_record_sd: Vec::new(),
            median_vanishing_index: None,
            wall_time_s: 0.0,
            error: Some(format!("{error:#}")),
        }
    }
}

/// Every complete, parseable line of an index file (none if the file does not exist).
pub fn read(path: &Path) -> Result<Vec<IndexEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).map_err(|(line, e)| {
        anyhow::anyhow!(
            "{}:{line}: not an index entry ({e}); remove that line (the next gradtrace sweep \
             call into the folder indexes that run again from its JSON, or trains it if the \
             JSON is gone)",
            path.display()
        )
    })
}

/// The entries of complete lines; a last line without its newline is a torn write and skipped,
/// blank lines are skipped, and any other line that does not parse is an error (its number and
/// why): a damaged index would otherwise drop runs from every summary without a word.
pub fn parse(text: &str) -> Result<Vec<IndexEntry>, (usize, serde_json::Error)> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| (i + 1, e)))
        .collect()
}

/// Appends one entry as a line, under an exclusive lock, cutting off any torn tail first.
pub fn append(path: &Path, entry: &IndexEntry) -> Result<()> {
    let shown = path.display();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the index {shown}"))?;
    file.lock()
        .with_context(|| format!("locking the index {shown}"))?;
    repair(&mut file).with_context(|| format!("repairing the index {shown}"))?;

    let mut line = serde_json::to_string(entry).expect("an index entry serializes");
    line.push('\n');
    file.seek(SeekFrom::End(0))?;
    file.write_all(line.as_bytes())
        .with_context(|| format!("appending to the index {shown}"))?;
    file.unlock()
        .with_context(|| format!("unlocking the index {shown}"))
}

/// Truncates the file after its last newline (a killed writer's torn line).
fn repair(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut text = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut text)?;
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> IndexEntry {
        let config = crate::testing::tiny_config();
        IndexEntry::failed(id, &config, &anyhow::anyhow!("boom"))
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        append(&path, &entry("a")).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();

        // A writer killed half-way through its line.
        std::fs::write(&path, format!("{good}{}", &good[..good.len() / 2])).unwrap();
        assert_eq!(
            read(&path).unwrap().len(),
            1,
            "the torn line does not count"
        );

        append(&path, &entry("b")).unwrap();
        let ids: Vec<String> = read(&path).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            2,
            "the torn piece was cut off:\n{text}"
        );
    }

    #[test]
    fn a_missing_index_reads_as_empty_a_torn_tail_is_skipped_and_a_damaged_line_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("none.jsonl")).unwrap().is_empty());
        let line = serde_json::to_string(&entry("x")).unwrap();
        let entries = parse(&format!("{line}\n\n{line}\n{{\"id\": \"torn")).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].error.as_deref(), Some("boom"));

        let path = dir.path().join("index.jsonl");
        std::fs::write(&path, format!("{line}\nnot json\n{line}\n")).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(
            error.contains("index.jsonl:2: not an index entry"),
            "{error}"
        );
    }
}
