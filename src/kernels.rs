//! The dense layer's three products for one small network, written out for the CPU.
//!
//! An ensemble on the CPU multiplies thousands of 5x5 matrices a step. libtorch's batched matrix
//! product dispatches each one separately (about 0.35 us apiece, more than the arithmetic), so
//! the ensemble engine calls these loops instead, model by model, on slices of its tensors.
//! Activations are stored feature-major (`[units][batch]`, each row of one unit's values over the
//! batch contiguous), so every inner loop runs over the batch and vectorizes; sums over the batch
//! keep eight partial sums for the same reason. Each loop is compiled twice: for the baseline
//! x86-64 and for AVX2 with fused multiply-add, picked at run time by what the CPU offers. The
//! results equal libtorch's up to float32 rounding (checked against the single-model engine in
//! `stacked.rs` and `tests/ensemble.rs`).

/// Compiles `$generic::<true>` with AVX2 and FMA enabled, called when the CPU has them, and
/// `$generic::<false>` for every other CPU.
macro_rules! dispatch {
    ($public:ident, $fast:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $fast($($arg: $ty),*) {
            $generic::<true>($($arg),*)
        }

        #[allow(missing_docs)]
        pub fn $public($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { $fast($($arg),*) };
            }
            $generic::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused into one rounding where the CPU has FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

// `forward(kernel, bias, a, a_stride, len, z)`: `z[o][b] = bias[o] + sum_i kernel[i][o] * a[i][b]`
// for one layer of one model. `kernel` is `[inputs][units]` row-major (Keras layout), `a` holds
// row i of the layer's input at `a[i * a_stride..][..len]`, and `z` is `[units][len]`.
dispatch!(forward, forward_avx2, forward_with,
    (kernel: &[f32], bias: &[f32], a: &[f32], a_stride: usize, len: usize, z: &mut [f32]));

#[inline(always)]
fn forward_with<const FMA: bool>(
    kernel: &[f32],
    bias: &[f32],
    a: &[f32],
    a_stride: usize,
    len: usize,
    z: &mut [f32],
) {
    let units = bias.len();
    let inputs = kernel.len() / units;
    for (o, z_row) in z.chunks_exact_mut(len).enumerate().take(units) {
        z_row.fill(bias[o]);
        for i in 0..inputs {
            let w = kernel[i * units + o];
            let a_row = &a[i * a_stride..i * a_stride + len];
            for (zb, &ab) in z_row.iter_mut().zip(a_row) {
                *zb = madd::<FMA>(w, ab, *zb);
            }
        }
    }
}

// `gradients(a, a_stride, dz, len, grad_kernel, grad_bias)`: the layer's parameter gradients from
// its input `a` (as in `forward`) and the gradient `dz` with respect to its pre-activations
// (`[units][len]`): `grad_kernel[i][o] = sum_b a[i][b] dz[o][b]`, `grad_bias[o] = sum_b dz[o][b]`.
dispatch!(gradients, gradients_avx2, gradients_with,
    (a: &[f32], a_stride: usize, dz: &[f32], len: usize, grad_kernel: &mut [f32],
     grad_bias: &mut [f32]));

#[inline(always)]
fn gradients_with<const FMA: bool>(
    a: &[f32],
    a_stride: usize,
    dz: &[f32],
    len: usize,
    grad_kernel: &mut [f32],
    grad_bias: &mut [f32],
) {
    let units = grad_bias.len();
    let inputs = grad_kernel.len() / units;
    for i in 0..inputs {
        let a_row = &a[i * a_stride..i * a_stride + len];
        for o in 0..units {
            grad_kernel[i * units + o] = dot::<FMA>(a_row, &dz[o * len..(o + 1) * len]);
        }
    }
    for (o, g) in grad_bias.iter_mut().enumerate() {
        *g = sum(&dz[o * len..(o + 1) * len]);
    }
}

// `backprop(kernel, dz, len, da)`: the gradient with respect to the layer's input,
// `da[i][b] = sum_o kernel[i][o] dz[o][b]`, `da` being `[inputs][len]`.
dispatch!(backprop, backprop_avx2, backprop_with,
    (kernel: &[f32], dz: &[f32], len: usize, da: &mut [f32]));

#[inline(always)]
fn backprop_with<const FMA: bool>(kernel: &[f32], dz: &[f32], len: usize, da: &mut [f32]) {
    let inputs = da.len() / len;
    let units = kernel.len() / inputs;
    for (i, da_row) in da.chunks_exact_mut(len).enumerate() {
        da_row.fill(0.0);
        for o in 0..units {
            let w = kernel[i * units + o];
            for (d, &g) in da_row.iter_mut().zip(&dz[o * len..(o + 1) * len]) {
                *d = madd::<FMA>(w, g, *d);
            }
        }
    }
}

/// Lanes of the partial sums: wide enough for one AVX register of f32.
const LANES: usize = 8;

#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (xs, ys) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xs.zip(ys) {
        for l in 0..LANES {
            lanes[l] = madd::<FMA>(a[l], b[l], lanes[l]);
        }
    }
    add_lanes(lanes) + tail
}

/// The eight lanes added pairwise (halves, then quarters), which takes three vector steps where
/// adding them in order takes seven dependent ones.
#[inline(always)]
fn add_lanes(lanes: [f32; LANES]) -> f32 {
    let half: [f32; 4] = std::array::from_fn(|l| lanes[l] + lanes[l + 4]);
    let quarter = [half[0] + half[2], half[1] + half[3]];
    quarter[0] + quarter[1]
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l];
        }
    }
    add_lanes(lanes) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 2-input, 3-unit layer on a batch of 11 (a length that leaves a tail after the lanes).
    const LEN: usize = 11;

    fn layer() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let kernel = vec![0.5, -1.0, 2.0, 0.25, 3.0, -0.5];
        let bias = vec![0.1, 0.2, -0.3];
        let a: Vec<f32> = (0..2 * LEN).map(|k| (k as f32 * 0.37).sin()).collect();
        (kernel, bias, a)
    }

    #[test]
    fn forward_is_bias_plus_input_times_kernel() {
        let (kernel, bias, a) = layer();
        let mut z = vec![0.0; 3 * LEN];
        forward(&kernel, &bias, &a, LEN, LEN, &mut z);
        for o in 0..3 {
            for b in 0..LEN {
                let want = bias[o] + kernel[o] * a[b] + kernel[3 + o] * a[LEN + b];
                assert!((z[o * LEN + b] - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn gradients_and_backprop_match_their_sums() {
        let (kernel, _, a) = layer();
        let dz: Vec<f32> = (0..3 * LEN).map(|k| (k as f32 * 0.11).cos()).collect();
        let (mut gk, mut gb) = (vec![0.0; 6], vec![0.0; 3]);
        gradients(&a, LEN, &dz, LEN, &mut gk, &mut gb);
        for i in 0..2 {
            for o in 0..3 {
                let want: f32 = (0..LEN).map(|b| a[i * LEN + b] * dz[o * LEN + b]).sum();
                assert!((gk[i * 3 + o] - want).abs() < 1e-5);
            }
        }
        for o in 0..3 {
            let want: f32 = dz[o * LEN..(o + 1) * LEN].iter().sum();
            assert!((gb[o] - want).abs() < 1e-5);
        }
        let mut da = vec![0.0; 2 * LEN];
        backprop(&kernel, &dz, LEN, &mut da);
        for i in 0..2 {
            for b in 0..LEN {
                let want: f32 = (0..3).map(|o| kernel[i * 3 + o] * dz[o * LEN + b]).sum();
                assert!((da[i * LEN + b] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_strided_input_reads_only_its_rows() {
        // Row stride 20: the layer reads a[0..11] and a[20..31], nothing between.
        let (kernel, bias, packed) = layer();
        let mut strided = vec![f32::NAN; 20 + LEN];
        strided[..LEN].copy_from_slice(&packed[..LEN]);
        strided[20..].copy_from_slice(&packed[LEN..]);
        let (mut z1, mut z2) = (vec![0.0; 3 * LEN], vec![0.0; 3 * LEN]);
        forward(&kernel, &bias, &packed, LEN, LEN, &mut z1);
        forward(&kernel, &bias, &strided, 20, LEN, &mut z2);
        assert_eq!(z1, z2);
    }
}
