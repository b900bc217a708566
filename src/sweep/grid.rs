//! A sweep's grid: lists of values per knob, expanded into run configs in one fixed order.
//!
//! A knob is any flag of `gradtrace run` that shapes the history (not `--device`, `--out`, ...).
//! Each grid point is turned back into `gradtrace run` flags and parsed by the same clap code, so
//! a sweep accepts exactly the values `run` accepts and validates them the same way.

use crate::cli::{Cli, Command};
use crate::config::{RunConfig, MAX_RUNS};
use anyhow::{anyhow, bail, Result};
use clap::Parser;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every sweepable knob, in expansion order: the first varies slowest, `seed` fastest.
pub const KNOBS: &[&str] = &[
    "activation",
    "init",
    "init-mean",
    "init-sd",
    "init-low",
    "init-high",
    "hidden",
    "optimizer",
    "lr",
    "rho",
    "beta1",
    "beta2",
    "epsilon",
    "momentum",
    "epochs",
    "batch-size",
    "samples",
    "factor",
    "noise",
    "data-seed",
    "csv",
    "shuffle",
    "grad-every",
    "record",
    "seed",
];

/// One knob's values, and where they were written (for error messages).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Knob {
    /// The `gradtrace run` flag, without dashes.
    pub name: String,
    /// The values, as `gradtrace run` would take them (`hidden`: one layout, e.g. `5,5,5,5`).
    pub values: Vec<String>,
    /// Where the knob was given, e.g. `sweep.toml:4` or `--activation`.
    #[serde(skip)]
    pub origin: String,
}

/// A grid: knobs in `KNOBS` order; knobs not given take `gradtrace run`'s defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Grid {
    /// The knobs given, in expansion order.
    pub knobs: Vec<Knob>,
}

/// One expanded grid point.
#[derive(Clone, Debug)]
pub struct Point {
    /// Stable id derived from the resolved config (see `run_id`).
    pub id: String,
    /// The resolved, validated config.
    pub config: RunConfig,
}

impl Grid {
    /// Sets a knob's values (replacing any earlier ones: flags override a sweep file), rejecting
    /// unknown names and empty lists, and keeping `KNOBS` order.
    pub fn set(&mut self, name: &str, values: Vec<String>, origin: &str) -> Result<()> {
        let Some(rank) = KNOBS.iter().position(|k| *k == name) else {
            bail!(
                "{origin}: unknown knob `{name}`; sweepable knobs are: {}",
                KNOBS.join(", ")
            );
        };
        if values.is_empty() {
            bail!("{origin}: knob `{name}` has no values, so the grid would be empty");
        }
        self.knobs.retain(|k| k.name != name);
        let at = self
            .knobs
            .iter()
            .position(|k| KNOBS.iter().position(|n| *n == k.name) > Some(rank))
            .unwrap_or(self.knobs.len());
        let knob = Knob {
            name: name.to_string(),
            values,
            origin: origin.to_string(),
        };
        self.knobs.insert(at, knob);
        Ok(())
    }

    /// Number of grid points.
    pub fn len(&self) -> usize {
        self.knobs.iter().map(|k| k.values.len()).product()
    }

    /// True for a grid without points (never, once built through `add`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expands and validates every point, first knob slowest. Two points that resolve to the
    /// same config (the same id) are an error: the grid names one run twice.
    pub fn expand(&self) -> Result<Vec<Point>> {
        let size = self
            .knobs
            .iter()
            .try_fold(1u64, |n, k| n.checked_mul(k.values.len() as u64));
        if size.is_none_or(|n| n > MAX_RUNS) {
            bail!(
                "the grid has more than {MAX_RUNS} runs; split it into several sweeps (each \
                 knob's values multiply)"
            );
        }
        let mut points = Vec::with_capacity(self.len());
        let mut choice = vec![0usize; self.knobs.len()];
        let mut seen = std::collections::HashMap::new();
        for _ in 0..self.len() {
            let config = self.resolve(&choice)?;
            let id = run_id(&config);
            if let Some(earlier) = seen.insert(id.clone(), points.len()) {
                bail!(
                    "the grid gives the same run twice (points {} and {}: {}); remove the \
                     duplicate value",
                    earlier + 1,
                    points.len() + 1,
                    config.name
                );
            }
            points.push(Point { id, config });

            // Odometer: advance the last knob, carrying into earlier ones.
            for k in (0..choice.len()).rev() {
                choice[k] += 1;
                if choice[k] < self.knobs[k].values.len() {
                    break;
                }
                choice[k] = 0;
            }
        }
        Ok(points)
    }

    /// The config of one point, parsed as `gradtrace run` flags.
    fn resolve(&self, choice: &[usize]) -> Result<RunConfig> {
        let mut args = vec!["gradtrace".to_string(), "run".to_string()];
        for (knob, &i) in self.knobs.iter().zip(choice) {
            let value = &knob.values[i];
            if knob.name == "shuffle" {
                match value.as_str() {
                    "true" => {}
                    "false" => args.push("--no-shuffle".to_string()),
                    other => bail!(
                        "{}: shuffle must be true or false, not `{other}`",
                        knob.origin
                    ),
                }
            } else {
                args.push(format!("--{}={value}", knob.name));
            }
        }
        // Name where the offending value came from, unless the message already starts there.
        let located = |message: String| {
            let message = message.trim_start_matches("error: ").to_string();
            let knob = self
                .knobs
                .iter()
                .find(|k| message.contains(&format!("--{}", k.name)));
            match knob {
                Some(k) if !message.starts_with(&k.origin) => anyhow!("{}: {message}", k.origin),
                _ => anyhow!("{message}"),
            }
        };
        let cli = Cli::try_parse_from(&args)
            .map_err(|e| located(crate::cli::one_line(&e.to_string())))?;
        let Command::Run(run) = cli.command else {
            unreachable!("parsed as `run`")
        };
        let mut configs = run.configs().map_err(|e| located(format!("{e:#}")))?;
        Ok(configs.remove(0))
    }
}

/// A run's stable id: the first 16 hex digits of the SHA-256 of its config as JSON, name left
/// out. The same config always gets the same id, on any machine and in any sweep.
pub fn run_id(config: &RunConfig) -> String {
    let mut unnamed = config.clone();
    unnamed.name = String::new();
    let json = serde_json::to_vec(&unnamed).expect("a config serializes");
    Sha256::digest(&json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Expands `0..8` to 0, 1, ..., 7 and leaves anything else alone (seed lists accept ranges).
pub fn expand_ranges(values: Vec<String>, origin: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for value in values {
        match value.split_once("..") {
            Some((start, end)) => {
                let parse = |s: &str| {
                    s.trim().parse::<u64>().map_err(|_| {
                        anyhow!("{origin}: `{value}` is not a range such as 0..8 (end excluded)")
                    })
                };
                let (start, end) = (parse(start)?, parse(end)?);
                if start >= end {
                    bail!("{origin}: range `{value}` is empty; the end is excluded, e.g. 0..8");
                }
                if end - start + out.len() as u64 > MAX_RUNS {
                    bail!(
                        "{origin}: more than {MAX_RUNS} seeds; split the work into several \
                         sweeps"
                    );
                }
                out.extend((start..end).map(|s| s.to_string()));
            }
            None => out.push(value),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(knobs: &[(&str, &[&str])]) -> Grid {
        let mut grid = Grid::default();
        for (name, values) in knobs {
            let values = values.iter().map(|v| v.to_string()).collect();
            grid.set(name, values, "test").unwrap();
        }
        grid
    }

    #[test]
    fn expansion_follows_knob_order_whatever_order_knobs_were_given_in() {
        let a = grid(&[("seed", &["0", "1"]), ("activation", &["sigmoid", "tanh"])]);
        let b = grid(&[("activation", &["sigmoid", "tanh"]), ("seed", &["0", "1"])]);
        let names = |g: &Grid| {
            g.expand()
                .unwrap()
                .into_iter()
                .map(|p| p.config.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        let names = names(&a);
        assert_eq!(names.len(), 4);
        assert!(names[0].starts_with("sigmoid") && names[0].ends_with("s0"));
        assert!(names[1].starts_with("sigmoid") && names[1].ends_with("s1"));
        assert!(names[2].starts_with("tanh") && names[2].ends_with("s0"));
    }

    #[test]
    fn ids_are_stable_distinct_and_ignore_the_name() {
        let g = grid(&[
            ("activation", &["relu", "tanh"]),
            ("lr", &["0.001", "0.01"]),
        ]);
        let first: Vec<String> = g.expand().unwrap().into_iter().map(|p| p.id).collect();
        let again: Vec<String> = g.expand().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(first, again);
        let unique: std::collections::BTreeSet<_> = first.iter().collect();
        assert_eq!(unique.len(), 4);
        assert!(first.iter().all(|id| id.len() == 16));

        let mut config = g.expand().unwrap()[0].config.clone();
        let id = run_id(&config);
        config.name = "renamed".into();
        assert_eq!(run_id(&config), id);
        config.seed += 1;
        assert_ne!(run_id(&config), id);
    }

    #[test]
    fn every_run_flag_that_shapes_a_history_is_a_knob() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let run = cli.find_subcommand("run").unwrap();
        let not_knobs = [
            "device",
            "name",
            "out",
            "force",
            "quiet",
            "help",
            "no-shuffle",
            // How runs are trained and where they go, not what they are (the sweep has its own
            // seed lists and these same engine and job flags).
            "seeds",
            "out-dir",
            "jobs",
            "engine",
            "max-ensemble",
        ];
        for arg in run.get_arguments() {
            let long = arg.get_long().unwrap_or_default();
            if !not_knobs.contains(&long) {
                assert!(
                    KNOBS.contains(&long),
                    "`--{long}` of gradtrace run is not sweepable"
                );
            }
        }
    }

    #[test]
    fn bad_values_and_knobs_name_their_origin() {
        let mut g = Grid::default();
        let err = g
            .set("colour", vec!["red".into()], "sweep.toml:3")
            .unwrap_err();
        assert!(format!("{err}").starts_with("sweep.toml:3: unknown knob `colour`"));
        let err = g.set("seed", vec![], "sweep.toml:4").unwrap_err();
        assert!(format!("{err}").contains("no values"));
        g.set("init", vec!["xavier".into()], "sweep.toml:5")
            .unwrap();
        let err = format!("{:#}", g.expand().unwrap_err());
        assert!(
            err.starts_with("sweep.toml:5:") && err.contains("xavier"),
            "{err}"
        );
        let mut g = Grid::default();
        g.set("epochs", vec!["0".into()], "--epochs").unwrap();
        assert!(format!("{:#}", g.expand().unwrap_err()).contains("--epochs"));
    }

    #[test]
    fn a_knob_set_again_replaces_its_values() {
        let mut g = grid(&[("seed", &["0", "1"])]);
        g.set("seed", vec!["5".into()], "--seeds").unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g.knobs[0].origin, "--seeds");
    }

    #[test]
    fn a_value_given_twice_is_refused() {
        let g = grid(&[("activation", &["tanh", "tanh"])]);
        assert!(format!("{:#}", g.expand().unwrap_err()).contains("same run twice"));
    }

    #[test]
    fn seed_ranges_expand_with_the_end_excluded() {
        let seeds = expand_ranges(vec!["0..3".into(), "7".into()], "--seeds").unwrap();
        assert_eq!(seeds, ["0", "1", "2", "7"]);
        assert!(expand_ranges(vec!["3..3".into()], "--seeds").is_err());
        assert!(expand_ranges(vec!["a..3".into()], "--seeds").is_err());
    }
}
