//! Direct stride-1 convolutions on AVX-512, giving bitwise the values of the im2col + gemm path
//! they replace (`conv2d::forward` and `conv2d::backward` with `fast: false`).
//!
//! Why bitwise: every calibrated run of a conv milestone (lenet … diffusion) must replay to the
//! bits its `info` quotes, so a faster path may not reorder a single sum. The gemm crate (0.19)
//! transposes our row-major products and, for each output, runs ONE fused multiply-add chain
//! over its depth from 0, in blocks of `kc` (`gemm_kc`), adding each block's chain onto the
//! output (onto the bias, or from nothing). The kernels run those chains in the same order and
//! blocks, reading the operands where im2col would have copied them from:
//!
//! - `fwd`: y = w · col (+ b), depth K = (c, ki, kj); any stride-1 kernel.
//! - `dw`: dw += dy · colᵀ, depth N (the outputs); 3x3 kernels.
//! - `dx`: dcol = wᵀ · dy, depth C_out, then folded onto dx in tap order; "same" convolutions.
//!
//! The shapes where the gemm crate takes another road (gemv for a side of 1, its kernels for a
//! depth ≤ 2, products of ≤ 256 outputs) keep the im2col path: the plans' `new` say None. The
//! tests (`tests.rs`) compare every path bit for bit with im2col + gemm.

mod dw;
mod dx;
mod dy;
mod fwd;
#[cfg(test)]
mod tests;

pub(super) use dw::{Dw, DwScratch};
pub(super) use dx::{col2im_gather, Dx};
pub(super) use dy::dy_pass;
pub(super) use fwd::Fwd;

use crate::ops::conv2d::Geom;

/// zmm vectors per tile for `n` positions: 3, unless tiles of 3 compute over 16 more past the
/// end than tiles of 2 (a 7x7 map, 63 padded positions: 96 on tiles of 3, 64 on tiles of 2).
fn vectors_per_tile(n: usize) -> usize {
    let over = |v: usize| n.div_ceil(16 * v) * 16 * v - n;
    if over(3) <= over(2) + 16 {
        3
    } else {
        2
    }
}

/// The k-blocking of the gemm crate (0.19) for f32 on AVX-512 (MR 64, NR 6), for a product of
/// m × n outputs and depth k, after its transposition (m = positions, n = output channels).
fn gemm_kc(m: usize, n: usize, k: usize) -> usize {
    if m <= 64 && n <= 64 {
        k.min(512)
    } else {
        gemm_common::cache::kernel_params(m, n, k, 64, 6, std::mem::size_of::<f32>()).kc
    }
}

/// Whether the direct kernels run here: the CPU has AVX-512 and DLHIST_SIMD does not cap it.
fn avx512() -> bool {
    super::cpu::simd_level() == super::cpu::SimdLevel::Avx512
}

/// x_b (C_in, H, W) into the interior of `xpad`'s planes (C_in, H + 2p, Wp); the border is left
/// as it is (the zeros the scratch was made with).
fn pad_into(g: &Geom, x_b: &[f32], wp: usize, plane: usize, xpad: &mut [f32]) {
    for c in 0..g.c_in {
        for ih in 0..g.h {
            let dst = c * plane + (ih + g.pad) * wp + g.pad;
            xpad[dst..dst + g.w].copy_from_slice(&x_b[(c * g.h + ih) * g.w..][..g.w]);
        }
    }
}
