//! A dense layer's three products with the models as the innermost index, so that every loop
//! runs over R contiguous lanes (one model each) and vectorizes with no horizontal sums.
//!
//! Layouts, R being the number of models: parameter j of every model is the row
//! `params[j * R..(j + 1) * R]`; a layer's values for unit u at batch position b are the row
//! `values[(u * batch + b) * R..][..R]`. A layer's input may instead be a slice of the epoch's
//! data (`Rows`), so the first layer reads the shuffled points in place.

use super::simd::{dispatch, madd};
use crate::model::LayerSlot;

/// Where row (unit u, batch position b) of a layer's input starts: `offset + u * unit_stride +
/// b * lanes`.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    /// Start of row (0, 0).
    pub offset: usize,
    /// Distance between one unit's rows and the next unit's.
    pub unit_stride: usize,
}

impl Rows {
    /// Rows packed one after another, as a layer's own outputs are.
    pub fn packed(batch: usize, lanes: usize) -> Rows {
        Rows {
            offset: 0,
            unit_stride: batch * lanes,
        }
    }
}

dispatch!(
    /// `z[o][b] = bias[o] + sum_i kernel[i][o] * a[i][b]`, lane by lane.
    forward, forward_avx2, forward_with,
    (params: &[f32], slot: LayerSlot, a: &[f32], rows: Rows, batch: usize, z: &mut [f32])
);

#[inline(always)]
fn forward_with<const FMA: bool>(
    params: &[f32],
    slot: LayerSlot,
    a: &[f32],
    rows: Rows,
    batch: usize,
    z: &mut [f32],
) {
    let lanes = z.len() / (slot.units * batch);
    for o in 0..slot.units {
        let bias = lane_row(params, slot.bias_offset + o, lanes);
        for b in 0..batch {
            let out = &mut z[(o * batch + b) * lanes..][..lanes];
            out.copy_from_slice(bias);
            for i in 0..slot.inputs {
                let k = lane_row(params, slot.kernel_offset + i * slot.units + o, lanes);
                let x = &a[rows.offset + i * rows.unit_stride + b * lanes..][..lanes];
                for ((out, &k), &x) in out.iter_mut().zip(k).zip(x) {
                    *out = madd::<FMA>(k, x, *out);
                }
            }
        }
    }
}

dispatch!(
    /// The layer's parameter gradients into `grads` (laid out as `params`): `kernel[i][o] =
    /// sum_b a[i][b] dz[o][b]`, `bias[o] = sum_b dz[o][b]`, lane by lane.
    gradients, gradients_avx2, gradients_with,
    (grads: &mut [f32], slot: LayerSlot, a: &[f32], rows: Rows, dz: &[f32], batch: usize)
);

#[inline(always)]
fn gradients_with<const FMA: bool>(
    grads: &mut [f32],
    slot: LayerSlot,
    a: &[f32],
    rows: Rows,
    dz: &[f32],
    batch: usize,
) {
    let lanes = dz.len() / (slot.units * batch);
    for i in 0..slot.inputs {
        for o in 0..slot.units {
            let j = slot.kernel_offset + i * slot.units + o;
            let out = &mut grads[j * lanes..(j + 1) * lanes];
            out.fill(0.0);
            for b in 0..batch {
                let x = &a[rows.offset + i * rows.unit_stride + b * lanes..][..lanes];
                let d = &dz[(o * batch + b) * lanes..][..lanes];
                for ((out, &x), &d) in out.iter_mut().zip(x).zip(d) {
                    *out = madd::<FMA>(x, d, *out);
                }
            }
        }
    }
    for o in 0..slot.units {
        let j = slot.bias_offset + o;
        let out = &mut grads[j * lanes..(j + 1) * lanes];
        out.fill(0.0);
        for b in 0..batch {
            let d = &dz[(o * batch + b) * lanes..][..lanes];
            for (out, &d) in out.iter_mut().zip(d) {
                *out += d;
            }
        }
    }
}

dispatch!(
    /// The gradient with respect to the layer's input: `da[i][b] = sum_o kernel[i][o] dz[o][b]`.
    backprop, backprop_avx2, backprop_with,
    (params: &[f32], slot: LayerSlot, dz: &[f32], batch: usize, da: &mut [f32])
);

#[inline(always)]
fn backprop_with<const FMA: bool>(
    params: &[f32],
    slot: LayerSlot,
    dz: &[f32],
    batch: usize,
    da: &mut [f32],
) {
    let lanes = dz.len() / (slot.units * batch);
    for i in 0..slot.inputs {
        for b in 0..batch {
            let out = &mut da[(i * batch + b) * lanes..][..lanes];
            out.fill(0.0);
            for o in 0..slot.units {
                let j = slot.kernel_offset + i * slot.units + o;
                let k = &params[j * lanes..(j + 1) * lanes];
                let d = &dz[(o * batch + b) * lanes..][..lanes];
                for ((out, &k), &d) in out.iter_mut().zip(k).zip(d) {
                    *out = madd::<FMA>(k, d, *out);
                }
            }
        }
    }
}

/// Row j (one value per lane) of a lane-major array.
#[inline(always)]
fn lane_row(values: &[f32], j: usize, lanes: usize) -> &[f32] {
    &values[j * lanes..(j + 1) * lanes]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout;

    /// Three models of a 2-3 layer on a batch of 2, against the sums written out.
    #[test]
    fn products_match_their_sums_lane_by_lane() {
        let (slots, total) = layout(&[2, 3]);
        let (slot, lanes, batch) = (slots[0], 3, 2);
        let params: Vec<f32> = (0..total * lanes).map(|k| (k as f32 * 0.7).sin()).collect();
        let a: Vec<f32> = (0..2 * batch * lanes)
            .map(|k| (k as f32 * 0.3).cos())
            .collect();
        let p = |j: usize, r: usize| params[j * lanes + r];
        let x = |i: usize, b: usize, r: usize| a[(i * batch + b) * lanes + r];
        let rows = Rows::packed(batch, lanes);

        let mut z = vec![0.0; 3 * batch * lanes];
        forward(&params, slot, &a, rows, batch, &mut z);
        let dz: Vec<f32> = z.iter().map(|v| v * 0.5 - 0.1).collect();
        let mut grads = vec![0.0; params.len()];
        gradients(&mut grads, slot, &a, rows, &dz, batch);
        let mut da = vec![0.0; 2 * batch * lanes];
        backprop(&params, slot, &dz, batch, &mut da);

        let d = |o: usize, b: usize, r: usize| dz[(o * batch + b) * lanes + r];
        for r in 0..lanes {
            for o in 0..3 {
                for b in 0..batch {
                    let want =
                        p(6 + o, r) + (0..2).map(|i| p(i * 3 + o, r) * x(i, b, r)).sum::<f32>();
                    assert!((z[(o * batch + b) * lanes + r] - want).abs() < 1e-6);
                }
                let bias: f32 = (0..batch).map(|b| d(o, b, r)).sum();
                assert!((grads[(6 + o) * lanes + r] - bias).abs() < 1e-6);
                for i in 0..2 {
                    let want: f32 = (0..batch).map(|b| x(i, b, r) * d(o, b, r)).sum();
                    assert!((grads[(i * 3 + o) * lanes + r] - want).abs() < 1e-6);
                }
            }
            for i in 0..2 {
                for b in 0..batch {
                    let want: f32 = (0..3).map(|o| p(i * 3 + o, r) * d(o, b, r)).sum();
                    assert!((da[(i * batch + b) * lanes + r] - want).abs() < 1e-6);
                }
            }
        }
    }
}
