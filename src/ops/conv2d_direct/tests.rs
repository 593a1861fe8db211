//! The direct paths against im2col + gemm, bit for bit.

use super::*;
use crate::ops::conv2d::{backward, forward, Geom};
use candle_core::{DType, Device, Tensor};

/// Both tile widths run in the test below: the U-Net's 7x7 maps take tiles of 2 vectors
/// (forward: 7·9 = 63 padded positions; dx: 49), the 14x14 and 28x28 ones tiles of 3.
#[test]
fn tile_widths_follow_the_map() {
    assert_eq!([63, 49, 14 * 16, 196, 28 * 30, 784].map(vectors_per_tile), [2, 2, 3, 3, 3, 3]);
}

/// The fast paths (this kernel, and the 1x1 convolutions that skip the col copies) against
/// im2col + gemm for every shape: the same bits, forward and all three gradients. The
/// shapes are the diffusion U-Net's (the 14 px 64 → 64 and 96 → 32 layers have K > 512,
/// which the gemm crate cuts into two blocks of 288 and 432; the 7 px ones cut at 512, its
/// rule for small products), LeNet's 5x5, odd sizes and paddings, and a stem of one channel.
#[test]
fn the_fast_paths_give_the_bits_of_im2col_and_gemm() {
    // (C_in, H, W, C_out, kH, kW, padding, direct forward expected where the CPU has AVX-512)
    let cases = [
        (1, 28, 28, 16, 3, 3, 1, true),
        (16, 28, 28, 16, 3, 3, 1, true),
        (48, 28, 28, 16, 3, 3, 1, true),
        (16, 14, 14, 32, 3, 3, 1, true),
        (64, 14, 14, 64, 3, 3, 1, true),
        (96, 14, 14, 32, 3, 3, 1, true),
        (32, 7, 7, 64, 3, 3, 1, true),
        (64, 7, 7, 64, 3, 3, 1, true),
        (6, 12, 12, 16, 5, 5, 0, true),
        (3, 9, 7, 8, 3, 3, 2, true),
        (5, 6, 11, 24, 3, 2, 1, true),
        (48, 28, 28, 16, 1, 1, 0, true),
        (96, 14, 14, 32, 1, 1, 0, true),
        (16, 28, 28, 1, 3, 3, 1, false),
        (16, 4, 4, 16, 3, 3, 1, false),
    ];
    // one thread: the direct kernels run for a batch of 3 (with more threads than chunks the
    // gemm's own threading takes over)
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut rng = crate::rng::Rng::new(11);
    for (c_in, h, w, c_out, kh, kw, pad, direct) in cases {
        let b = 3;
        let x = Tensor::zeros((b, c_in, h, w), DType::F32, &Device::Cpu).unwrap();
        let wt = Tensor::zeros((c_out, c_in, kh, kw), DType::F32, &Device::Cpu).unwrap();
        let g = Geom::new(&x, &wt, None, 1, pad).unwrap();
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (xs, ws, bs, dy) = (randn(b * g.x_len()), randn(c_out * g.k()), randn(c_out), randn(b * c_out * g.n()));
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let what = format!("{c_in}x{h}x{w} -> {c_out}, {kh}x{kw} p {pad}");
        assert_eq!(Fwd::new(&g).is_some(), direct && avx512(), "{what}: which forward");
        let dw_direct = (kh, kw) == (3, 3) && c_out % 16 == 0 && c_in * 9 * c_out > 256;
        assert_eq!(Dw::new(&g).is_some(), dw_direct && avx512(), "{what}: which dw");
        let dx_direct =
            2 * pad + 1 == kh && kh == kw && c_in % 4 == 0 && c_out > 2 && c_in * kh * kw * h * w > 256 && kh > 1;
        assert_eq!(Dx::new(&g).is_some(), dx_direct && avx512(), "{what}: which dx");
        pool.install(|| {
            for bias in [Some(&bs[..]), None] {
                let (fast, base) = (forward(&g, &xs, &ws, bias, true), forward(&g, &xs, &ws, bias, false));
                assert!(bits(&fast) == bits(&base), "{what}, bias {}: y differs", bias.is_some());
            }
            let (fast, base) =
                (backward(&g, &xs, &ws, &dy, [true; 3], true), backward(&g, &xs, &ws, &dy, [true; 3], false));
            for (name, f, b) in [("dx", &fast.dx, &base.dx), ("dw", &fast.dw, &base.dw), ("db", &fast.db, &base.db)] {
                assert!(bits(f.as_ref().unwrap()) == bits(b.as_ref().unwrap()), "{what}: {name} differs");
            }
        });
    }
}
