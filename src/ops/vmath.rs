//! Branch-free f32 `tanh` (with `exp` and `sigmoid` re-exported from `cpu.rs`) that LLVM
//! vectorises, and `simd_kernel!`, which compiles a kernel for AVX-512 and AVX2+FMA with a
//! runtime choice (the crate is built for baseline x86-64, where the loops would only get 4-wide
//! SSE2 and libm's scalar `expf`).
//!
//! `exp` and `sigmoid` are `cpu.rs`'s (Cephes' `expf`, about 2 ulp); `tanh` is built on them.

/// `fn name(args) { body }` becomes a function that runs `body` through `cpu::simd!`'s dispatch:
/// compiled for AVX-512, AVX2+FMA and the baseline, the widest the CPU runs chosen at run time.
/// The body must return `()`.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn kernel($($a: $t),*) $body
            $crate::ops::cpu::simd!(dispatch, kernel, ($($a: $t),*));
            dispatch($($a),*)
        }
    };
}
pub(crate) use simd_kernel;

/// e^x and σ(x): the one vectorisable implementation, in `cpu.rs` (Cephes' expf), re-exported
/// so the recurrent kernels can use `vmath::` for all three.
pub use super::cpu::{exp, sigmoid};

/// tanh x = sign(x)·(1 − e^{−2|x|}) / (1 + e^{−2|x|}); below |x| = 1/8 its Taylor series to x^7
/// (error < 2e-9 relative) keeps the relative accuracy that the subtraction would lose near 0.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let e = exp(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let big = f32::from_bits(big.to_bits() | (x.to_bits() & 0x8000_0000));
    if a < 0.125 {
        small
    } else {
        big
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 libm over a dense grid: exp within 3 ulp-ish (4e-7 relative), sigmoid and tanh
    /// within 3e-7 absolute and 1e-6 relative.
    #[test]
    fn matches_libm() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let mut x = -80.0f32;
        while x < 80.0 {
            let e = (x as f64).exp();
            worst.0 = worst.0.max(((exp(x) as f64) - e).abs() / e);
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            worst.1 = worst.1.max(((sigmoid(x) as f64) - s).abs() / s.max(1e-30));
            let t = (x as f64).tanh();
            worst.2 = worst.2.max(((tanh(x) as f64) - t).abs() / t.abs().max(1e-30));
            x += 0.000_731;
        }
        assert!(worst.0 < 4e-7, "exp rel err {}", worst.0);
        assert!(worst.1 < 1e-6, "sigmoid rel err {}", worst.1);
        assert!(worst.2 < 1e-6, "tanh rel err {}", worst.2);
        assert_eq!(tanh(0.0), 0.0);
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0) > 1e38);
    }
}
