//! The count baseline word2vec is compared with: positive PMI of word–context co-occurrences,
//! factorised by truncated SVD, W = U_k·Σ_k^½, with context-distribution smoothing α = 0.75 —
//! the tuned "PPMI-SVD" of Levy, Goldberg & Dagan 2015 ("Improving distributional similarity
//! with lessons learned from word embeddings"), which they found close to skip-gram. It sees
//! the same tokens, window weighting and dimension as the skip-gram it is compared with.

use crate::rng::Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A sparse matrix in compressed rows: row r's entries are `col/val[ptr[r]..ptr[r + 1]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sparse {
    pub rows: usize,
    pub ptr: Vec<usize>,
    pub col: Vec<u32>,
    pub val: Vec<f32>,
}

/// A multiplicative hash for u64 keys (std's SipHash costs more than the counting it serves).
#[derive(Default)]
struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(self.0 ^ b as u64));
    }
    fn write_u64(&mut self, x: u64) {
        let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Symmetric co-occurrence counts of `ids` (V words) within `window`, a pair at distance d
/// weighted (W − d + 1)/W, the expected weight under word2vec's dynamic window.
pub fn cooccurrence(ids: &[u32], v: usize, window: usize) -> Sparse {
    let mut counts: HashMap<u64, f32, BuildHasherDefault<KeyHasher>> = HashMap::default();
    for (i, &a) in ids.iter().enumerate() {
        for d in 1..=window {
            let Some(&b) = ids.get(i + d) else { break };
            let key = (a.min(b) as u64) << 32 | a.max(b) as u64; // one entry per unordered pair
            *counts.entry(key).or_insert(0.0) += (window - d + 1) as f32 / window as f32;
        }
    }
    let mut entries: Vec<(u32, u32, f32)> = Vec::with_capacity(counts.len() * 2);
    for (k, c) in counts {
        let (a, b) = ((k >> 32) as u32, k as u32);
        entries.push((a, b, if a == b { 2.0 * c } else { c }));
        if a != b {
            entries.push((b, a, c));
        }
    }
    entries.sort_unstable_by_key(|&(a, b, _)| (a, b));
    let mut ptr = vec![0; v + 1];
    for &(a, _, _) in &entries {
        ptr[a as usize + 1] += 1;
    }
    for r in 0..v {
        ptr[r + 1] += ptr[r];
    }
    Sparse { rows: v, ptr, col: entries.iter().map(|e| e.1).collect(), val: entries.iter().map(|e| e.2).collect() }
}

/// PPMI(w, x) = max(0, log(c(w, x) · Σ_y c(y)^α / (c(w) · c(x)^α))), c(w) the row sums; the
/// context counts are smoothed by α (Levy et al. 2015, section 3.2). Zeros are dropped.
pub fn ppmi(c: &Sparse, alpha: f64) -> Sparse {
    let marg: Vec<f64> = (0..c.rows).map(|r| c.val[c.ptr[r]..c.ptr[r + 1]].iter().map(|&x| x as f64).sum()).collect();
    let ctx: Vec<f64> = marg.iter().map(|m| m.powf(alpha)).collect();
    let ctx_total: f64 = ctx.iter().sum();
    let mut out = Sparse { rows: c.rows, ptr: vec![0], col: vec![], val: vec![] };
    for (r, &cw) in marg.iter().enumerate() {
        for i in c.ptr[r]..c.ptr[r + 1] {
            let x = c.col[i] as usize;
            let pmi = (c.val[i] as f64 * ctx_total / (cw * ctx[x])).ln();
            if pmi > 0.0 {
                out.col.push(x as u32);
                out.val.push(pmi as f32);
            }
        }
        out.ptr.push(out.col.len());
    }
    out
}

/// M·X for X (cols, l) row-major -> (rows, l); rows in parallel.
fn mul(m: &Sparse, x: &[f64], l: usize) -> Vec<f64> {
    let mut y = vec![0f64; m.rows * l];
    y.par_chunks_mut(l).enumerate().for_each(|(r, yr)| {
        for i in m.ptr[r]..m.ptr[r + 1] {
            let (c, v) = (m.col[i] as usize, m.val[i] as f64);
            yr.iter_mut().zip(&x[c * l..][..l]).for_each(|(a, b)| *a += v * b);
        }
    });
    y
}

/// Mᵀ·X for X (rows, l) -> (cols, l), cols = rows (M is square here).
fn mul_t(m: &Sparse, x: &[f64], l: usize) -> Vec<f64> {
    let mut y = vec![0f64; m.rows * l];
    for r in 0..m.rows {
        let xr = &x[r * l..][..l];
        for i in m.ptr[r]..m.ptr[r + 1] {
            let v = m.val[i] as f64;
            y[m.col[i] as usize * l..][..l].iter_mut().zip(xr).for_each(|(a, b)| *a += v * b);
        }
    }
    y
}

/// Makes the columns of `y` (n, l) row-major orthonormal: modified Gram–Schmidt, applied twice
/// ("twice is enough", Giraud et al. 2005), on the transpose so that columns are contiguous.
fn orthonormalize(y: &mut [f64], n: usize, l: usize) {
    let mut cols: Vec<Vec<f64>> = (0..l).map(|j| (0..n).map(|i| y[i * l + j]).collect()).collect();
    for j in 0..l {
        for _ in 0..2 {
            for i in 0..j {
                let r: f64 = cols[i].iter().zip(&cols[j]).map(|(a, b)| a * b).sum();
                let (done, rest) = cols.split_at_mut(j);
                rest[0].iter_mut().zip(&done[i]).for_each(|(a, b)| *a -= r * b);
            }
        }
        let norm = cols[j].iter().map(|a| a * a).sum::<f64>().sqrt();
        cols[j].iter_mut().for_each(|a| *a = if norm > 1e-12 { *a / norm } else { 0.0 });
    }
    for (j, col) in cols.iter().enumerate() {
        for (i, &a) in col.iter().enumerate() {
            y[i * l + j] = a;
        }
    }
}

/// Eigen-decomposition of a symmetric (n, n) matrix by cyclic Jacobi rotations (Numerical
/// Recipes §11.1): eigenvalues, and eigenvectors as the columns of an (n, n) row-major matrix.
pub fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect();
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|p| (p + 1..n).map(move |q| (p, q))).map(|(p, q)| a[p * n + q].powi(2)).sum();
        if off <= 1e-26 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J, V ← V J, J the rotation by (c, s) in the (p, q) plane
                for k in 0..n {
                    let (kp, kq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * kp - s * kq;
                    a[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * pk - s * qk;
                    a[q * n + k] = s * pk + c * qk;
                    let (vp, vq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vp - s * vq;
                    v[k * n + q] = s * vp + c * vq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// A truncated SVD M ≈ U·diag(s)·Vᵀ: U and V (n, k) row-major, s falling.
pub struct Svd {
    pub u: Vec<f64>,
    pub s: Vec<f64>,
    pub v: Vec<f64>,
}

/// The top `k` singular triplets of M by the randomized range finder of Halko, Martinsson &
/// Tropp 2011 (algorithms 4.4 and 5.1): 10 extra columns and `q` power iterations, then the SVD
/// of the small B = QᵀM through the eigenvectors W of B·Bᵀ: U = Q·W, V = Bᵀ·W·diag(1/s).
pub fn rsvd(m: &Sparse, k: usize, q: usize, rng: &mut Rng) -> Svd {
    let (n, l) = (m.rows, (k + 10).min(m.rows));
    let omega: Vec<f64> = (0..n * l).map(|_| rng.normal()).collect();
    let mut y = mul(m, &omega, l);
    orthonormalize(&mut y, n, l);
    for _ in 0..q {
        let mut z = mul_t(m, &y, l);
        orthonormalize(&mut z, n, l);
        y = mul(m, &z, l);
        orthonormalize(&mut y, n, l);
    }
    let bt = mul_t(m, &y, l); // Bᵀ = MᵀQ: (n, l)
    let mut bbt = vec![0f64; l * l]; // B·Bᵀ = btᵀ·bt
    for row in bt.chunks_exact(l) {
        for i in 0..l {
            for j in 0..l {
                bbt[i * l + j] += row[i] * row[j];
            }
        }
    }
    let (lambda, w) = jacobi_eigen(bbt, l);
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| lambda[b].total_cmp(&lambda[a]));
    order.truncate(k);
    let s: Vec<f64> = order.iter().map(|&e| lambda[e].max(0.0).sqrt()).collect();
    let k = order.len();
    // rows of x (n, l) times the chosen columns of W, column j scaled by scale[j]
    let project = |x: &[f64], scale: &[f64]| -> Vec<f64> {
        let mut out = vec![0f64; n * k];
        for (r, xr) in x.chunks_exact(l).enumerate() {
            for (j, &e) in order.iter().enumerate() {
                out[r * k + j] = (0..l).map(|i| xr[i] * w[i * l + e]).sum::<f64>() * scale[j];
            }
        }
        out
    };
    let inv: Vec<f64> = s.iter().map(|&x| if x > 0.0 { 1.0 / x } else { 0.0 }).collect();
    Svd { u: project(&y, &vec![1.0; k]), v: project(&bt, &inv), s }
}

/// Power iterations of the range finder for the count baseline.
const POWER_ITERS: usize = 16;

/// PPMI-SVD word vectors (V, dim) f32 for `ids` over a vocabulary of `v` words: U·Σ^½, plus
/// the context vectors V·Σ^½ when `add_context` (Levy et al. 2015, section 3.3).
pub fn ppmi_svd(ids: &[u32], v: usize, window: usize, dim: usize, add_context: bool, seed: u64) -> Vec<f32> {
    let m = ppmi(&cooccurrence(ids, v, window), 0.75);
    // PPMI's spectrum falls slowly, so the range finder needs many power iterations: on sotu
    // (12k words) the analogy accuracy of these vectors was 5.1–5.4% with 2, 7.9–8.4% with 6,
    // 8.5–8.7% with 12, 8.6–9.0% with 16 and 8.7–8.8% with 20 (two seeds): 16 is converged.
    let svd = rsvd(&m, dim.min(v), POWER_ITERS, &mut Rng::derive(seed, "ppmi-svd", 0));
    let k = svd.s.len();
    let mut out = vec![0f32; v * dim];
    for r in 0..v {
        for j in 0..k {
            let c = if add_context { svd.v[r * k + j] } else { 0.0 };
            out[r * dim + j] = ((svd.u[r * k + j] + c) * svd.s[j].sqrt()) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ids 0 1 2 1, window 2, by hand: pairs (0,1) d1, (0,2) d2, (1,2) d1, (1,1) d2, (2,1) d1;
    /// weight 1 at d 1 and 1/2 at d 2. A word next to itself lands twice in its own cell.
    #[test]
    fn cooccurrence_counts_both_ways_with_the_window_weights() {
        let c = cooccurrence(&[0, 1, 2, 1], 3, 2);
        let at = |a: usize, b: u32| (c.ptr[a]..c.ptr[a + 1]).find(|&i| c.col[i] == b).map(|i| c.val[i]);
        assert_eq!((at(0, 1), at(1, 0)), (Some(1.0), Some(1.0)));
        assert_eq!((at(1, 2), at(2, 1)), (Some(2.0), Some(2.0)));
        assert_eq!((at(0, 2), at(2, 0)), (Some(0.5), Some(0.5)));
        assert_eq!((at(1, 1), at(0, 0)), (Some(1.0), None)); // (1,1) once, counted on both sides
    }

    /// 2 words: c = [[0, 2], [2, 1]]; row sums 2, 3; α = 1: PMI(0,1) = ln(2·5/(2·3)) = ln(5/3),
    /// PMI(1,1) = ln(1·5/9) < 0 is dropped, PMI(1,0) = ln(2·5/(3·2)).
    #[test]
    fn ppmi_by_hand() {
        let c = Sparse { rows: 2, ptr: vec![0, 1, 3], col: vec![1, 0, 1], val: vec![2.0, 2.0, 1.0] };
        let p = ppmi(&c, 1.0);
        assert_eq!((p.ptr.clone(), p.col.clone()), (vec![0, 1, 2], vec![1, 0]));
        assert!((p.val[0] as f64 - (5.0f64 / 3.0).ln()).abs() < 1e-6 && (p.val[1] - p.val[0]).abs() < 1e-6);
    }

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let a = vec![4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 1.0];
        let (l, v) = jacobi_eigen(a.clone(), 3);
        for e in 0..3 {
            for r in 0..3 {
                let av: f64 = (0..3).map(|c| a[r * 3 + c] * v[c * 3 + e]).sum();
                assert!((av - l[e] * v[r * 3 + e]).abs() < 1e-10, "A v = λ v fails for eigenpair {e}");
            }
        }
        assert!((l.iter().sum::<f64>() - 8.0).abs() < 1e-10); // the trace
    }

    /// A permuted diagonal matrix has singular values its diagonal and left singular vectors
    /// unit vectors: rsvd must find the top 3 (5, 4, 3) of 40, and both of their vectors.
    #[test]
    fn rsvd_finds_the_top_singular_values() {
        let n = 40;
        let diag: Vec<f32> = (0..n).map(|i| if i < 5 { 5.0 - i as f32 } else { 0.5 / (i as f32) }).collect();
        let perm: Vec<u32> = (0..n as u32).map(|i| (i * 7) % n as u32).collect(); // row r holds column perm[r]
        let m = Sparse { rows: n, ptr: (0..=n).collect(), col: perm.clone(), val: diag.clone() };
        let svd = rsvd(&m, 3, 2, &mut Rng::new(1));
        for (j, want) in [5.0, 4.0, 3.0].iter().enumerate() {
            assert!((svd.s[j] - want).abs() < 1e-6, "{:?}", svd.s);
            assert!((svd.u[j * 3 + j].abs() - 1.0).abs() < 1e-6, "left singular vector {j} is not e_{j}");
            // M·v_j = s_j·u_j: v_j is e_{perm[j]}, with u_j's sign
            let vj = svd.v[perm[j] as usize * 3 + j];
            assert!((vj - svd.u[j * 3 + j]).abs() < 1e-6, "right singular vector {j}: {vj}");
        }
    }
}
