//! One pass over a sample's output gradient dy_b (C_out, N) for the backward: its transpose
//! (N, C_out) for the direct dw kernel, and each row's sum for db, bitwise `row.iter().sum()`.
//!
//! Why: summed one row at a time, each sum is one chain of dependent adds (4 cycles each), and
//! the transpose wrote one float per cache line; together they cost a 3x3 layer's backward as
//! much as its dw kernel (the U-Net's 16 → 16 layer on 28x28, `perf`). Here 16 rows run at once:
//! on AVX-512, 16x16 blocks are transposed in registers and the rows' chains are the lanes of
//! one vector; elsewhere 16 scalar chains interleave. Each row's sum still adds its entries in
//! order, from the value std's `Sum` starts from, so db keeps its bits.

use super::avx512;
#[cfg(target_arch = "x86_64")]
use crate::ops::cpu::transpose16;

/// `dyt` (N, C_out) = dy_bᵀ where given; `db[o] += Σ_j dy_b[o, j]` (in order of j) where given.
pub(in crate::ops) fn dy_pass(
    dy_b: &[f32],
    c_out: usize,
    n: usize,
    mut dyt: Option<&mut [f32]>,
    mut db: Option<&mut [f32]>,
) {
    assert!(dy_b.len() >= c_out * n && dyt.as_ref().is_none_or(|t| t.len() >= c_out * n));
    assert!(db.as_ref().is_none_or(|d| d.len() >= c_out));
    // `iter().sum()` folds from this (it has been -0.0 or 0.0 across Rust versions)
    let init = std::iter::empty::<f32>().sum::<f32>();
    let mut o0 = 0;
    while o0 < c_out {
        let rows = (c_out - o0).min(16);
        let mut sums = [init; 16]; // this block's rows' chains
        if rows == 16 && avx512() {
            let t = dyt.as_deref_mut().map_or(std::ptr::null_mut(), |t| t[o0..].as_mut_ptr());
            // SAFETY: AVX-512 checked; the reads stay in rows o0..o0 + 16 of dy_b, the writes
            // (when t is not null) in lanes o0..o0 + 16 of dyt's N rows (lengths asserted above)
            unsafe { block16(dy_b[o0 * n..].as_ptr(), n, t, c_out, &mut sums) };
        } else {
            // up to 16 independent scalar chains
            for j in 0..n {
                for (l, s) in sums[..rows].iter_mut().enumerate() {
                    let v = dy_b[(o0 + l) * n + j];
                    *s += v;
                    if let Some(t) = dyt.as_deref_mut() {
                        t[j * c_out + o0 + l] = v;
                    }
                }
            }
        }
        if let Some(db) = db.as_deref_mut() {
            db[o0..o0 + rows].iter_mut().zip(&sums).for_each(|(d, s)| *d += s);
        }
        o0 += rows;
    }
}

/// Rows o0..o0 + 16 of dy_b (`dy` at row o0, rows of `n`): transposed into `dyt` (at lane o0,
/// rows of `c_out`) unless it is null, and each row's entries added in order onto `sums`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block16(dy: *const f32, n: usize, dyt: *mut f32, c_out: usize, sums: &mut [f32; 16]) {
    use std::arch::x86_64::*;
    let mut acc = _mm512_loadu_ps(sums.as_ptr()); // lane l: row l's chain
    let mut j0 = 0;
    while j0 + 16 <= n {
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm512_loadu_ps(dy.add(i * n + j0));
        }
        let t = transpose16(r); // t[jj] lane l = row l, column j0 + jj
        for (jj, &tj) in t.iter().enumerate() {
            acc = _mm512_add_ps(acc, tj);
            if !dyt.is_null() {
                _mm512_storeu_ps(dyt.add((j0 + jj) * c_out), tj);
            }
        }
        j0 += 16;
    }
    _mm512_storeu_ps(sums.as_mut_ptr(), acc);
    for j in j0..n {
        for (l, s) in sums.iter_mut().enumerate() {
            let v = *dy.add(l * n + j);
            *s += v;
            if !dyt.is_null() {
                *dyt.add(j * c_out + l) = v;
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn block16(_: *const f32, _: usize, _: *mut f32, _: usize, _: &mut [f32; 16]) {
    unreachable!("the direct convolution runs only where the CPU has AVX-512")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the loops it replaces, bit for bit: db[o] += row.iter().sum() and
    /// dyt[j·C_out + o] = dy[o·N + j], for row counts with and without a 16-row block left over
    /// and widths with and without a 16-column tail, on values over nine magnitudes (so that
    /// any other order of the adds rounds differently somewhere).
    #[test]
    fn transpose_and_row_sums_equal_the_plain_loops_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(5);
        for (c_out, n) in [(16, 784), (32, 196), (64, 49), (1, 784), (24, 33), (48, 16), (17, 5)] {
            let dy: Vec<f32> =
                (0..c_out * n).map(|_| (rng.normal() * 10f64.powi((rng.uniform() * 9.0) as i32 - 4)) as f32).collect();
            let db0: Vec<f32> = (0..c_out).map(|_| rng.normal() as f32).collect();
            let (mut want_t, mut want_db) = (vec![0f32; c_out * n], db0.clone());
            for (o, row) in dy.chunks(n).enumerate() {
                want_db[o] += row.iter().sum::<f32>();
                for (j, &v) in row.iter().enumerate() {
                    want_t[j * c_out + o] = v;
                }
            }
            let (mut t, mut db) = (vec![f32::NAN; c_out * n], db0.clone());
            dy_pass(&dy, c_out, n, Some(&mut t), Some(&mut db));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&t), bits(&want_t), "{c_out}x{n}: transpose");
            assert_eq!(bits(&db), bits(&want_db), "{c_out}x{n}: row sums");
            let mut db_only = db0.clone();
            dy_pass(&dy, c_out, n, None, Some(&mut db_only));
            assert_eq!(bits(&db_only), bits(&want_db), "{c_out}x{n}: row sums without the transpose");
        }
    }

    /// A row of -0.0 sums to what `iter().sum()` gives it (the start value decides the sign).
    #[test]
    fn a_row_of_negative_zeros_keeps_the_sign_std_gives_it() {
        let dy = vec![-0.0f32; 16 * 20];
        let mut db = vec![-0.0f32; 16];
        dy_pass(&dy, 16, 20, None, Some(&mut db));
        let want = -0.0f32 + dy[..20].iter().sum::<f32>();
        assert!(db.iter().all(|d| d.to_bits() == want.to_bits()));
    }
}
