//! Which slice of the grid this process runs: `--shard I/N`, a Slurm job array, or a
//! Kubernetes Indexed Job. Point k of the grid belongs to shard k mod N, so shards are disjoint,
//! cover the grid, and each gets a mix of the grid's values.

use anyhow::{anyhow, bail, Result};

/// Shard `index` (from 0) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0 to count - 1.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// From `--shard I/N`, else Slurm's `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`
    /// (less `SLURM_ARRAY_TASK_MIN` and over `SLURM_ARRAY_TASK_STEP`, so `--array=1-4` and
    /// `--array=0-6:2` work too), else Kubernetes's
    /// `JOB_COMPLETION_INDEX` with `--shards N`; otherwise the whole grid.
    pub fn resolve(
        shard: Option<&str>,
        shards: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        if let Some(text) = shard {
            return parse(text);
        }
        if let (Some(id), Some(count)) = (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"))
        {
            let number = |name: &str, text: &str| {
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("{name}={text} is not a number"))
            };
            let id = number("SLURM_ARRAY_TASK_ID", &id)?;
            let min = env("SLURM_ARRAY_TASK_MIN")
                .map_or(Ok(0), |m| number("SLURM_ARRAY_TASK_MIN", &m))?;
            // Arrays such as --array=0-6:2 number their tasks 0, 2, 4, 6.
            let step = env("SLURM_ARRAY_TASK_STEP")
                .map_or(Ok(1), |s| number("SLURM_ARRAY_TASK_STEP", &s))?
                .max(1);
            let count = number("SLURM_ARRAY_TASK_COUNT", &count)?;
            let index = id
                .checked_sub(min)
                .map_or(usize::MAX, |offset| offset / step);
            return check(index, count, "the Slurm array task");
        }
        match (env("JOB_COMPLETION_INDEX"), shards) {
            (Some(index), Some(count)) => {
                let index = index
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("JOB_COMPLETION_INDEX={index} is not a number"))?;
                check(index, count, "JOB_COMPLETION_INDEX with --shards")
            }
            (Some(_), None) => bail!(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): pass --shards N, the \
                 Job's completions, or --shard I/N"
            ),
            (None, Some(_)) => bail!(
                "--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job); \
                 elsewhere use --shard I/N"
            ),
            (None, None) => Ok(Shard::ALL),
        }
    }

    /// True when grid point `k` is this shard's.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// `shard-I-of-N`, for file names.
    pub fn label(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

fn parse(text: &str) -> Result<Shard> {
    let Some((index, count)) = text.split_once('/') else {
        bail!("--shard {text}: expected I/N, e.g. --shard 0/4 for the first of four");
    };
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| anyhow!("--shard {text}: `{s}` is not a number"))
    };
    check(number(index)?, number(count)?, &format!("--shard {text}"))
}

fn check(index: usize, count: usize, origin: &str) -> Result<Shard> {
    if count == 0 {
        bail!("{origin}: the number of shards is 0; it must be at least 1");
    }
    if index >= count {
        bail!(
            "{origin}: shard index out of range; with {count} shards it runs from 0 to {}",
            count - 1
        );
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_grid() {
        for count in 1..6 {
            let mut owners = vec![0; 23];
            for index in 0..count {
                let shard = Shard { index, count };
                for (k, owner) in owners.iter_mut().enumerate() {
                    *owner += shard.owns(k) as usize;
                }
            }
            assert!(owners.iter().all(|&n| n == 1), "{count} shards: {owners:?}");
        }
    }

    #[test]
    fn the_flag_then_slurm_then_kubernetes_decide() {
        let none = env(&[]);
        assert_eq!(Shard::resolve(None, None, &none).unwrap(), Shard::ALL);
        assert_eq!(
            Shard::resolve(Some("2/4"), None, &none).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &slurm).unwrap(),
            Shard { index: 3, count: 4 }
        );
        assert_eq!(
            Shard::resolve(Some("0/2"), None, &slurm).unwrap(),
            Shard { index: 0, count: 2 }
        );
        let from_one = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &from_one).unwrap(),
            Shard { index: 3, count: 4 }
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(
            Shard::resolve(None, Some(3), &k8s).unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert!(Shard::resolve(None, None, &k8s).is_err());
        assert!(Shard::resolve(None, Some(3), &none).is_err());
    }

    #[test]
    fn out_of_range_and_zero_counts_are_refused_clearly() {
        let none = env(&[]);
        let err = |s: &str| format!("{:#}", Shard::resolve(Some(s), None, &none).unwrap_err());
        assert!(err("4/4").contains("out of range"));
        assert!(err("0/0").contains("at least 1"));
        assert!(err("a/4").contains("not a number"));
        assert!(err("3").contains("expected I/N"));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5")]);
        assert!(
            format!("{:#}", Shard::resolve(None, Some(5), &k8s).unwrap_err())
                .contains("out of range")
        );
    }
}
