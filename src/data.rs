//! Training data: scikit-learn's two circles from our own seeded generator, or a CSV file.
//!
//! A dataset lives on the host as plain vectors; the training loop moves it to the device once.
//! Its SHA-256 goes into the run JSON so two histories can be checked to share their data.

use crate::config::DataConfig;
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::f64::consts::PI;
use std::path::Path;

/// Points with two coordinates and a 0/1 label, in file or generation order.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Row-major coordinates, two per point.
    pub x: Vec<f32>,
    /// One label per point, 0.0 or 1.0.
    pub y: Vec<f32>,
}

/// What the run JSON says about its data.
#[derive(Clone, Debug, Serialize)]
pub struct DataSummary {
    /// Number of points.
    pub samples: usize,
    /// Points labelled 1.
    pub positives: usize,
    /// SHA-256 of the little-endian f32 coordinates followed by the f32 labels, hex.
    pub sha256: String,
}

impl Dataset {
    /// Builds the dataset a config names.
    pub fn load(config: &DataConfig) -> Result<Dataset> {
        match config {
            DataConfig::TwoCircles {
                samples,
                factor,
                noise,
                seed,
            } => Ok(two_circles(*samples, *factor, *noise, *seed)),
            DataConfig::Csv { path } => read_csv(path),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Size, balance and hash, for the run JSON.
    pub fn summary(&self) -> DataSummary {
        let mut hasher = Sha256::new();
        for value in self.x.iter().chain(&self.y) {
            hasher.update(value.to_le_bytes());
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        DataSummary {
            samples: self.len(),
            positives: self.y.iter().filter(|&&label| label == 1.0).count(),
            sha256,
        }
    }
}

/// scikit-learn's `make_circles`: the outer circle gets `samples / 2` points (label 0), the inner
/// circle of radius `factor` the rest (label 1), at evenly spaced angles without the end point;
/// the points are shuffled, then Gaussian noise of S.D. `noise` is added to every coordinate.
pub fn two_circles(samples: usize, factor: f64, noise: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let outer = samples / 2;
    let inner = samples - outer;

    // Both circles, outer first, as make_circles stacks them.
    let mut points: Vec<([f64; 2], f32)> = Vec::with_capacity(samples);
    for (count, radius, label) in [(outer, 1.0, 0.0), (inner, factor, 1.0)] {
        for i in 0..count {
            let angle = 2.0 * PI * i as f64 / count as f64;
            points.push(([radius * angle.cos(), radius * angle.sin()], label));
        }
    }

    // Fisher-Yates shuffle, then noise, in that order (as make_circles does).
    for i in (1..points.len()).rev() {
        let j = rng.gen_range(0..=i);
        points.swap(i, j);
    }
    let mut x = Vec::with_capacity(2 * samples);
    let mut y = Vec::with_capacity(samples);
    let gaussian = Normal::new(0.0, noise.max(0.0)).expect("noise is validated as finite, >= 0");
    for ([x0, x1], label) in points {
        let (n0, n1) = if noise > 0.0 {
            (gaussian.sample(&mut rng), gaussian.sample(&mut rng))
        } else {
            (0.0, 0.0)
        };
        x.push((x0 + n0) as f32);
        x.push((x1 + n1) as f32);
        y.push(label);
    }
    Dataset { x, y }
}

/// Reads `x0,x1,label` rows. A first row of exactly `x0,x1,label` is taken as a header; any other
/// row that is not three numbers, or whose label is not 0 or 1, is an error naming its line.
pub fn read_csv(path: &Path) -> Result<Dataset> {
    let shown = path.display();
    if path.is_dir() {
        bail!("--csv {shown}: is a folder; give a CSV file of x0,x1,label rows");
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("--csv {shown}: cannot open the file; check the path"))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file);

    let mut x = Vec::new();
    let mut y = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("--csv {shown}: the file is not valid CSV text"))?;
        let line = row.position().map_or(index as u64 + 1, |p| p.line());
        let fields: Vec<&str> = row.iter().collect();
        if index == 0
            && fields
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .eq(["x0", "x1", "label"])
        {
            continue;
        }
        if fields.len() != 3 {
            bail!(
                "{shown}:{line}: expected 3 fields (x0,x1,label), found {}; fix or remove the row",
                fields.len()
            );
        }
        let mut values = [0.0f32; 3];
        for (slot, (field, name)) in values
            .iter_mut()
            .zip(fields.iter().zip(["x0", "x1", "label"]))
        {
            *slot = match field.parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                _ => bail!("{shown}:{line}: {name} `{field}` is not a finite number"),
            };
        }
        if values[2] != 0.0 && values[2] != 1.0 {
            bail!("{shown}:{line}: label `{}` must be 0 or 1", fields[2]);
        }
        x.extend_from_slice(&values[..2]);
        y.push(values[2]);
    }
    if y.is_empty() {
        bail!("--csv {shown}: the file has no data rows; it needs x0,x1,label rows");
    }
    Ok(Dataset { x, y })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_circles_splits_points_and_labels_like_make_circles() {
        let data = two_circles(1001, 0.5, 0.1, 3);
        assert_eq!(data.len(), 1001);
        assert_eq!(data.x.len(), 2002);
        assert_eq!(
            data.summary().positives,
            501,
            "the inner circle gets the larger half"
        );
        assert!(data.y.iter().all(|&l| l == 0.0 || l == 1.0));
    }

    #[test]
    fn without_noise_every_point_lies_exactly_on_its_circle() {
        let data = two_circles(200, 0.3, 0.0, 9);
        for (point, &label) in data.x.chunks(2).zip(&data.y) {
            let radius = (point[0] as f64).hypot(point[1] as f64);
            let expected = if label == 1.0 { 0.3 } else { 1.0 };
            assert!(
                (radius - expected).abs() < 1e-6,
                "radius {radius} for label {label}"
            );
        }
    }

    #[test]
    fn without_noise_angles_are_evenly_spaced_without_the_end_point() {
        let data = two_circles(8, 0.5, 0.0, 1);
        let mut outer: Vec<f64> = data
            .x
            .chunks(2)
            .zip(&data.y)
            .filter(|(_, &l)| l == 0.0)
            .map(|(p, _)| (p[1] as f64).atan2(p[0] as f64).rem_euclid(2.0 * PI))
            .collect();
        outer.sort_by(f64::total_cmp);
        let expected = [0.0, PI / 2.0, PI, 1.5 * PI];
        for (got, want) in outer.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "angle {got}, expected {want}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_points_and_another_seed_does_not() {
        let a = two_circles(300, 0.5, 0.1, 42);
        assert_eq!(a, two_circles(300, 0.5, 0.1, 42));
        assert_eq!(
            a.summary().sha256,
            two_circles(300, 0.5, 0.1, 42).summary().sha256
        );
        assert_ne!(a.x, two_circles(300, 0.5, 0.1, 43).x);
    }

    #[test]
    fn noise_has_the_requested_spread() {
        let data = two_circles(20_000, 0.5, 0.1, 5);
        let residuals: Vec<f64> = data
            .x
            .chunks(2)
            .zip(&data.y)
            .map(|(p, &l)| (p[0] as f64).hypot(p[1] as f64) - if l == 1.0 { 0.5 } else { 1.0 })
            .collect();
        let mean = residuals.iter().sum::<f64>() / residuals.len() as f64;
        let sd = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>()
            / residuals.len() as f64)
            .sqrt();
        assert!(
            (sd - 0.1).abs() < 0.01,
            "radial S.D. {sd}, expected about 0.1"
        );
    }
}
