//! Compiling a loop twice: for baseline x86-64, and for AVX2 with fused multiply-add, picked at
//! run time by what the CPU offers. Every hot loop of the lane engine goes through `dispatch!`.

/// Defines `pub fn $public(args)` that calls `$generic::<true>` compiled with AVX2 and FMA when
/// the CPU has them, and `$generic::<false>` otherwise.
macro_rules! dispatch {
    ($(#[$doc:meta])* $public:ident, $fast:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $fast($($arg: $ty),*) {
            $generic::<true>($($arg),*)
        }

        $(#[$doc])*
        pub fn $public($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if crate::lanes::simd::has_fma() {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { $fast($($arg),*) };
            }
            $generic::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// True when the CPU has AVX2 and FMA and `GRADTRACE_NO_FMA` is not set. Fused multiply-adds
/// round once where separate ones round twice, so the two paths give different last bits: set
/// `GRADTRACE_NO_FMA=1` for the same bits on every x86-64 CPU (a cluster of mixed machines).
#[cfg(target_arch = "x86_64")]
pub fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| {
        std::env::var_os("GRADTRACE_NO_FMA").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

/// `a * b + c`, fused into one rounding where the CPU has FMA.
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x in float32 for loops that must vectorize: Cody-Waite reduction to r in [-ln2/2, ln2/2]
/// and a degree-6 polynomial (Cephes's expf coefficients), within 2 ulp of the true value.
/// Arguments are clamped to [-87.3, 88.3], so the result saturates near 1e-38 and 2e38 instead
/// of reaching 0 or infinity; NaN stays NaN.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k * LN2_HI is exact for the k that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a round
    // instruction (baseline x86-64 has none).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = madd::<FMA>(-k, LN2_LO, madd::<FMA>(-k, LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = madd::<FMA>(p, r, c);
    }
    let p = madd::<FMA>(p, r * r, r) + 1.0;
    // k sits in the low bits of `shifted`: 2^k built from them with integer operations, which
    // vectorize where a float-to-integer cast (saturating in Rust) does not.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_over_its_range() {
        let mut x = -87.0f32;
        while x < 88.0 {
            for got in [exp::<false>(x), exp::<true>(x)] {
                let want = (x as f64).exp();
                let ulp = (want as f32).abs() * f32::EPSILON;
                assert!(
                    ((got as f64) - want).abs() <= 2.0 * ulp as f64,
                    "exp({x}) = {got}, want {want}"
                );
            }
            x += 0.0137;
        }
        assert!(exp::<false>(f32::NAN).is_nan());
        assert!(exp::<false>(-1000.0) > 0.0 && exp::<false>(-1000.0) < 1e-37);
        assert!(exp::<false>(1000.0).is_finite());
    }
}
