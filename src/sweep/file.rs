//! Sweep files: a grid written as TOML or JSON, one key per knob.
//!
//! ```toml
//! activation = ["sigmoid", "tanh", "relu"]
//! init = ["normal", "glorot-uniform"]
//! hidden = [[5, 5, 5, 5], [10, 10]]   # or ["5,5,5,5", "10,10"]
//! lr = [0.001, 0.01]
//! seed = "0..8"                       # a range, end excluded; or a list
//! epochs = 20                         # one value: the same for every run
//! ```
//!
//! Keys are `gradtrace run` flags without the dashes. Errors name the file and the key's line.

use super::grid::{expand_ranges, Grid};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// A knob value before conversion to `gradtrace run` text: TOML and JSON both map onto it.
enum Raw {
    Scalar(String),
    List(Vec<Raw>),
}

/// Reads a sweep file (`.toml` or `.json`) into a grid.
pub fn read(path: &Path) -> Result<Grid> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--file {shown}: cannot read the sweep file; check the path"))?;
    let entries = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => from_toml(&text, &shown)?,
        Some("json") => from_json(&text, &shown)?,
        _ => bail!("--file {shown}: a sweep file must end in .toml or .json"),
    };
    if entries.is_empty() {
        bail!("{shown}: the sweep file names no knobs, so the grid would be empty");
    }
    let mut grid = Grid::default();
    for (key, line, raw) in entries {
        let origin = format!("{shown}:{line}");
        let values = values_of(&key, raw, &origin)?;
        let values = if key == "seed" {
            expand_ranges(values, &origin)?
        } else {
            values
        };
        grid.set(&key, values, &origin)?;
    }
    Ok(grid)
}

/// (key, line, value) for every top-level key of a TOML file.
fn from_toml(text: &str, shown: &str) -> Result<Vec<(String, usize, Raw)>> {
    let table: BTreeMap<Spanned<String>, toml::Value> = toml::from_str(text)
        .map_err(|e| anyhow!("{shown}: not valid TOML: {}", one_line(&e.to_string())))?;
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    table
        .into_iter()
        .map(|(key, value)| {
            let line = line_of(key.span().start);
            let raw = from_toml_value(value).ok_or_else(|| {
                anyhow!(
                    "{shown}:{line}: `{}` must be a value or a list",
                    key.get_ref()
                )
            })?;
            Ok((key.into_inner(), line, raw))
        })
        .collect()
}

fn from_toml_value(value: toml::Value) -> Option<Raw> {
    Some(match value {
        toml::Value::String(s) => Raw::Scalar(s),
        toml::Value::Integer(i) => Raw::Scalar(i.to_string()),
        toml::Value::Float(f) => Raw::Scalar(f.to_string()),
        toml::Value::Boolean(b) => Raw::Scalar(b.to_string()),
        toml::Value::Array(items) => Raw::List(
            items
                .into_iter()
                .map(from_toml_value)
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// (key, line, value) for every top-level key of a JSON object.
fn from_json(text: &str, shown: &str) -> Result<Vec<(String, usize, Raw)>> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow!("{shown}: not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        bail!("{shown}: a JSON sweep file must be one object of knob: values");
    };
    map.into_iter()
        .map(|(key, value)| {
            // serde_json keeps no positions; the key's first quoted appearance is its line.
            let needle = format!("\"{key}\"");
            let line = text
                .find(&needle)
                .map_or(1, |at| text[..at].matches('\n').count() + 1);
            let raw = from_json_value(value)
                .ok_or_else(|| anyhow!("{shown}:{line}: `{key}` must be a value or a list"))?;
            Ok((key, line, raw))
        })
        .collect()
}

fn from_json_value(value: serde_json::Value) -> Option<Raw> {
    use serde_json::Value;
    Some(match value {
        Value::String(s) => Raw::Scalar(s),
        Value::Number(n) => Raw::Scalar(n.to_string()),
        Value::Bool(b) => Raw::Scalar(b.to_string()),
        Value::Array(items) => Raw::List(
            items
                .into_iter()
                .map(from_json_value)
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// The knob's values as `gradtrace run` text. `hidden` takes layouts: `"5,5"`, `[5, 5]`, or a
/// list of either; a flat list of numbers is refused because it reads both ways.
fn values_of(key: &str, raw: Raw, origin: &str) -> Result<Vec<String>> {
    let scalar = |raw: Raw| match raw {
        Raw::Scalar(s) => Ok(s),
        Raw::List(_) => Err(anyhow!(
            "{origin}: `{key}` holds a nested list; give a flat list"
        )),
    };
    let layout = |raw: Raw| match raw {
        Raw::Scalar(s) => Ok(s),
        Raw::List(widths) => Ok(widths
            .into_iter()
            .map(scalar)
            .collect::<Result<Vec<_>>>()?
            .join(",")),
    };
    match (key, raw) {
        ("hidden", Raw::List(items)) => {
            if items
                .iter()
                .all(|i| matches!(i, Raw::Scalar(s) if s.parse::<u64>().is_ok()))
            {
                bail!(
                    "{origin}: `hidden` is ambiguous as a flat list of numbers; write one layout \
                     as \"5,5,5,5\" or several as [[5, 5, 5, 5], [10, 10]]"
                );
            }
            items.into_iter().map(layout).collect()
        }
        (_, Raw::List(items)) => items.into_iter().map(scalar).collect(),
        (_, raw) => Ok(vec![scalar(raw)?]),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn toml_and_json_files_give_the_same_grid() {
        let toml_text = "activation = [\"sigmoid\", \"tanh\"]\nhidden = [[5, 5], \"3\"]\n\
                         lr = [0.001, 0.01]\nseed = \"0..3\"\nshuffle = false\n";
        let json_text = r#"{"activation": ["sigmoid", "tanh"], "hidden": [[5, 5], "3"],
                           "lr": [0.001, 0.01], "seed": "0..3", "shuffle": false}"#;
        let (_a, toml_path) = write("s.toml", toml_text);
        let (_b, json_path) = write("s.json", json_text);
        let (from_toml, from_json) = (read(&toml_path).unwrap(), read(&json_path).unwrap());
        let values = |g: &Grid| -> Vec<(String, Vec<String>)> {
            g.knobs
                .iter()
                .map(|k| (k.name.clone(), k.values.clone()))
                .collect()
        };
        assert_eq!(values(&from_toml), values(&from_json));
        assert_eq!(from_toml.len(), 2 * 2 * 2 * 3);
        let hidden = from_toml.knobs.iter().find(|k| k.name == "hidden").unwrap();
        assert_eq!(hidden.values, ["5,5", "3"]);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let (_d, path) = write(
            "s.toml",
            "activation = [\"tanh\"]\n\nlearning_rate = [0.1]\n",
        );
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(
            err.contains("s.toml:3: unknown knob `learning_rate`"),
            "{err}"
        );
        let (_d, path) = write("s.json", "{\n  \"seed\": [1],\n  \"colour\": [\"red\"]\n}");
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("s.json:3: unknown knob `colour`"), "{err}");
    }

    #[test]
    fn an_unknown_value_is_named_with_its_key_and_line() {
        let (_d, path) = write("s.toml", "seed = [1]\ninit = [\"normal\", \"xavier\"]\n");
        let err = format!("{:#}", read(&path).unwrap().expand().unwrap_err());
        assert!(
            err.starts_with(&format!("{}:2:", path.display())) && err.contains("xavier"),
            "{err}"
        );
    }

    #[test]
    fn empty_files_lists_and_ambiguous_layouts_are_refused() {
        let (_d, path) = write("s.toml", "# nothing\n");
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("no knobs"));
        let (_d, path) = write("s.toml", "activation = []\n");
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("no values"));
        let (_d, path) = write("s.toml", "hidden = [5, 5]\n");
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("ambiguous"));
        let (_d, path) = write("s.yaml", "seed: 1\n");
        assert!(format!("{:#}", read(&path).unwrap_err()).contains(".toml or .json"));
    }
}
