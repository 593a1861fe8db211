//! Vector quantisation (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete
//! representation learning"): each D-dimensional encoder output z_e is replaced by its nearest
//! entry e_k of a learned codebook of K vectors, and the index k is the discrete code.
//!
//! The argmin has no gradient, so the decoder's gradient is copied straight through to the
//! encoder (the straight-through estimator, Bengio et al. 2013): the forward value is e_k, the
//! backward is the identity, z_st = z_e + sg(e_k − z_e). Two losses move the codebook and the
//! encoder towards each other (sg = stop-gradient):
//!
//!   codebook   ‖sg(z_e) − e_k‖²     moves the chosen codes to the encoder outputs
//!   commitment β‖z_e − sg(e_k)‖²    keeps the encoder near its codes (β = 0.25 in the paper)
//!
//! A code that no encoder output is near never gets a gradient and stays dead ("codebook
//! collapse"). Two common remedies, both here: initialising the codebook by k-means on the
//! first batch's encoder outputs (as Łańcucki et al. 2020 and many implementations), and
//! resetting codes unused for a while to random encoder outputs of the current batch
//! ("random restarts", Dhariwal et al. 2020, Jukebox). Usage counts and the "initialised" flag
//! are buffers of the parameter store, so checkpoints carry them and a resumed run resets the
//! same codes at the same steps.

use crate::params::Params;
use crate::rng::Rng;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

pub struct VectorQuantizer {
    /// (K, D), trainable (by the codebook loss)
    pub codebook: Tensor,
    /// assignments per code since the last reset, (K,) f32, a buffer
    usage: Var,
    /// 1 once the codebook was set from data (k-means), (1,) f32, a buffer
    ready: Var,
    pub k: usize,
    pub d: usize,
}

/// The quantiser's output for N vectors.
pub struct Quantized {
    /// the codes' vectors with the straight-through gradient to z_e, (N, D)
    pub z_q: Tensor,
    /// the index of each vector's nearest code, (N,) u32
    pub codes: Tensor,
    /// mean over elements of (sg(z_e) − e)², the codebook's loss
    pub codebook_loss: Tensor,
    /// mean over elements of (z_e − sg(e))², the commitment loss (before β)
    pub commit_loss: Tensor,
}

/// K codes of D dimensions, under `name` (the codebook at `NAME.codebook`, buffers beside it),
/// initialised U(−1/K, 1/K) as the paper's reference implementation.
pub fn vector_quantizer(
    k: usize,
    d: usize,
    params: &Params,
    name: &str,
    vb: VarBuilder,
    device: &Device,
) -> Result<VectorQuantizer> {
    let b = 1.0 / k as f64;
    let codebook = vb.get_with_hints((k, d), "codebook", Init::Uniform { lo: -b, up: b })?;
    let usage = params.buffer(&format!("{name}.usage"), Tensor::zeros(k, DType::F32, device)?)?;
    let ready = params.buffer(&format!("{name}.ready"), Tensor::zeros(1, DType::F32, device)?)?;
    Ok(VectorQuantizer { codebook, usage, ready, k, d })
}

impl VectorQuantizer {
    /// The index of the nearest code of each row of z (N, D) -> (N,) u32, by
    /// argmin_k ‖e_k‖² − 2 z·e_k (‖z‖² is the same for every k). No gradient.
    pub fn nearest(&self, z: &Tensor) -> Result<Tensor> {
        let (z, e) = (z.detach(), self.codebook.detach());
        let e2 = e.sqr()?.sum(D::Minus1)?; // (K,)
        let dist = crate::ops::flops::matmul(&z, &e.t()?)?.affine(-2.0, 0.0)?.broadcast_add(&e2.unsqueeze(0)?)?; // (N, K)
        dist.argmin(D::Minus1)
    }

    /// The codes' vectors: (N,) u32 -> (N, D), with a gradient to the codebook.
    pub fn lookup(&self, codes: &Tensor) -> Result<Tensor> {
        self.codebook.index_select(codes, 0)
    }

    /// Quantises z (N, D): nearest codes, straight-through vectors and the two losses.
    pub fn forward(&self, z: &Tensor) -> Result<Quantized> {
        let codes = self.nearest(z)?;
        let e = self.lookup(&codes)?;
        let codebook_loss = (z.detach() - &e)?.sqr()?.mean_all()?;
        let commit_loss = (z - e.detach())?.sqr()?.mean_all()?;
        // forward e, backward the identity to z
        let z_q = (z + (e - z)?.detach())?;
        Ok(Quantized { z_q, codes, codebook_loss, commit_loss })
    }

    /// Adds one count per assignment to the usage buffer.
    pub fn record_usage(&self, codes: &Tensor) -> Result<()> {
        let mut u = self.usage.as_tensor().to_vec1::<f32>()?;
        for c in codes.to_vec1::<u32>()? {
            u[c as usize] += 1.0;
        }
        self.usage.set(&Tensor::from_vec(u, self.k, self.usage.device())?)
    }

    /// Assignments per code since the last reset.
    pub fn usage(&self) -> Result<Vec<f32>> {
        self.usage.as_tensor().to_vec1()
    }

    /// Whether the codebook was already initialised from data.
    pub fn is_ready(&self) -> Result<bool> {
        Ok(self.ready.as_tensor().to_vec1::<f32>()?[0] > 0.0)
    }

    fn set_codebook(&self, rows: Vec<f32>) -> Result<()> {
        let var = Var::from_tensor(&self.codebook)?; // the same storage: set writes in place
        var.set(&Tensor::from_vec(rows, (self.k, self.d), self.codebook.device())?)
    }

    /// Sets the codebook to the k-means centroids of the rows of z (N, D) (`iters` Lloyd
    /// iterations from K distinct random rows) and marks it ready.
    pub fn kmeans_init(&self, z: &Tensor, iters: usize, rng: &mut Rng) -> Result<()> {
        let pts = z.detach().flatten_all()?.to_vec1::<f32>()?;
        let centroids = kmeans(&pts, self.d, self.k, iters, rng);
        self.set_codebook(centroids)?;
        self.ready.set(&Tensor::ones(1, DType::F32, self.ready.device())?)
    }

    /// Replaces every code with fewer than `min_count` assignments since the last reset by a
    /// random row of z (N, D), and zeroes the counts. Returns how many codes were reset.
    pub fn reset_dead(&self, z: &Tensor, min_count: f32, rng: &mut Rng) -> Result<usize> {
        let usage = self.usage()?;
        let dead: Vec<usize> = (0..self.k).filter(|&i| usage[i] < min_count).collect();
        if !dead.is_empty() {
            let pts = z.detach().flatten_all()?.to_vec1::<f32>()?;
            let n = pts.len() / self.d;
            let mut book = self.codebook.flatten_all()?.to_vec1::<f32>()?;
            for &c in &dead {
                let r = rng.below(n);
                book[c * self.d..(c + 1) * self.d].copy_from_slice(&pts[r * self.d..(r + 1) * self.d]);
            }
            self.set_codebook(book)?;
        }
        self.usage.set(&Tensor::zeros(self.k, DType::F32, self.usage.device())?)?;
        Ok(dead.len())
    }
}

/// Lloyd's k-means on `pts` (N rows of `d`), seeded by k-means++ (Arthur & Vassilvitskii 2007:
/// each next seed drawn with probability ∝ its squared distance to the nearest seed so far); a
/// cluster left empty takes a random point. Returns k·d centroid values.
pub fn kmeans(pts: &[f32], d: usize, k: usize, iters: usize, rng: &mut Rng) -> Vec<f32> {
    let n = pts.len() / d;
    assert!(n > 0 && d > 0, "k-means needs points");
    let row = |i: usize| &pts[i * d..(i + 1) * d];
    let sq = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut c: Vec<f32> = row(rng.below(n)).to_vec();
    let mut near: Vec<f32> = (0..n).map(|i| sq(row(i), &c[..d])).collect();
    for _ in 1..k {
        let next = if near.iter().any(|&v| v > 0.0) { rng.categorical(&near) } else { rng.below(n) };
        let seed = row(next).to_vec();
        for (i, m) in near.iter_mut().enumerate() {
            *m = m.min(sq(row(i), &seed));
        }
        c.extend(seed);
    }
    let mut assign = vec![0usize; n];
    for _ in 0..iters {
        for (i, a) in assign.iter_mut().enumerate() {
            let p = row(i);
            let dist = |j: usize| p.iter().zip(&c[j * d..(j + 1) * d]).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
            *a = (0..k).min_by(|&x, &y| dist(x).total_cmp(&dist(y))).unwrap();
        }
        let mut sum = vec![0f64; k * d];
        let mut count = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            count[a] += 1;
            for (s, &x) in sum[a * d..(a + 1) * d].iter_mut().zip(row(i)) {
                *s += x as f64;
            }
        }
        for j in 0..k {
            if count[j] == 0 {
                let r = rng.below(n);
                c[j * d..(j + 1) * d].copy_from_slice(row(r));
            } else {
                for t in 0..d {
                    c[j * d + t] = (sum[j * d + t] / count[j] as f64) as f32;
                }
            }
        }
    }
    c
}

/// Codebook statistics of a list of codes: (fraction of the K codes used at least once,
/// perplexity exp(H) of the empirical code distribution, between 1 and K).
pub fn usage_and_perplexity(codes: &[u32], k: usize) -> (f64, f64) {
    let mut count = vec![0usize; k];
    for &c in codes {
        count[c as usize] += 1;
    }
    let n = codes.len().max(1) as f64;
    let used = count.iter().filter(|&&c| c > 0).count() as f64 / k as f64;
    let h: f64 = count.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.ln()).sum();
    (used, h.exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantizer(k: usize, d: usize) -> Result<(Params, VectorQuantizer)> {
        let p = Params::new(1);
        let q = vector_quantizer(k, d, &p, "vq", p.vb(&Device::Cpu).pp("vq"), &Device::Cpu)?;
        Ok((p, q))
    }

    /// The nearest code by brute force, and the straight-through estimator: the forward value is
    /// the code's vector, the gradient reaching z_e is exactly the one reaching z_q (the
    /// identity), and the codebook gets gradient only from the codebook loss.
    #[test]
    fn nearest_codes_and_the_straight_through_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let (_, q) = quantizer(5, 3)?;
        let book = q.codebook.to_vec2::<f32>()?;
        let mut rng = Rng::new(2);
        let zv: Vec<f32> = (0..4 * 3).map(|_| (0.2 * rng.normal()) as f32).collect();
        let z = Var::from_tensor(&Tensor::from_vec(zv.clone(), (4, 3), &dev)?)?;
        let out = q.forward(z.as_tensor())?;
        let codes = out.codes.to_vec1::<u32>()?;
        for i in 0..4 {
            let d = |k: usize| (0..3).map(|t| (zv[i * 3 + t] - book[k][t]).powi(2)).sum::<f32>();
            let best = (0..5).min_by(|&a, &b| d(a).total_cmp(&d(b))).unwrap();
            assert_eq!(codes[i] as usize, best, "row {i}");
            // z + (e − z) is e up to the f32 rounding of the two operations
            let zq = out.z_q.get(i)?.to_vec1::<f32>()?;
            assert!(zq.iter().zip(&book[best]).all(|(a, b)| (a - b).abs() < 1e-6), "forward = the code's vector");
        }
        // a weighted sum of z_q: dL/dz_e = w (straight through), and no gradient to the codebook
        let w = Tensor::from_vec((0..12).map(|i| i as f32 - 5.5).collect::<Vec<_>>(), (4, 3), &dev)?;
        let g = (&out.z_q * &w)?.sum_all()?.backward()?;
        assert_eq!(g.get(z.as_tensor()).unwrap().to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        assert!(g.get(&q.codebook).is_none(), "the decoder's gradient does not reach the codebook");
        // the codebook loss moves each chosen code towards its inputs: d/de_k = −2 Σ (z − e_k)/(N·D)
        let g = out.codebook_loss.backward()?;
        let gb = g.get(&q.codebook).unwrap().to_vec2::<f32>()?;
        for k in 0..5 {
            for t in 0..3 {
                let want: f32 = (0..4)
                    .filter(|&i| codes[i] as usize == k)
                    .map(|i| -2.0 * (zv[i * 3 + t] - book[k][t]) / 12.0)
                    .sum();
                assert!((gb[k][t] - want).abs() < 1e-6, "code {k}: {} vs {want}", gb[k][t]);
            }
        }
        assert!(g.get(z.as_tensor()).is_none(), "the codebook loss stops at z_e");
        Ok(())
    }

    /// k-means finds three well-separated clusters (each centroid within 0.1 of a true centre)
    /// from k-means++ seeds and marks the quantiser ready; code reset moves exactly the unused codes onto inputs.
    #[test]
    fn kmeans_init_finds_clusters_and_code_reset_revives_only_dead_codes() -> Result<()> {
        let dev = Device::Cpu;
        let centres = [[5.0f32, 0.0], [0.0, 5.0], [-5.0, -5.0]];
        let mut rng = Rng::new(9);
        let pts: Vec<f32> = (0..300).flat_map(|i| centres[i % 3].map(|c| c + (0.3 * rng.normal()) as f32)).collect();
        let z = Tensor::from_vec(pts.clone(), (300, 2), &dev)?;
        let (_, q) = quantizer(3, 2)?;
        assert!(!q.is_ready()?);
        q.kmeans_init(&z, 10, &mut Rng::new(1))?;
        assert!(q.is_ready()?);
        let book = q.codebook.to_vec2::<f32>()?;
        for c in centres {
            let near = book.iter().any(|e| (e[0] - c[0]).abs() < 0.1 && (e[1] - c[1]).abs() < 0.1);
            assert!(near, "no centroid near {c:?}: {book:?}");
        }
        // every point quantises to its own cluster's code: all 3 codes used, perplexity 3
        let codes = q.nearest(&z)?.to_vec1::<u32>()?;
        let (used, ppl) = usage_and_perplexity(&codes, 3);
        assert_eq!(used, 1.0);
        assert!((ppl - 3.0).abs() < 1e-9);

        // a fresh codebook near the origin: only codes that win assignments are counted
        let (_, q) = quantizer(4, 2)?;
        let before = q.codebook.to_vec2::<f32>()?;
        let few = z.narrow(0, 0, 1)?; // one point: one code used
        let used_code = q.nearest(&few)?.to_vec1::<u32>()?[0] as usize;
        q.record_usage(&q.nearest(&few)?)?;
        assert_eq!(q.usage()?.iter().sum::<f32>(), 1.0);
        let n = q.reset_dead(&z, 1.0, &mut Rng::new(4))?;
        assert_eq!(n, 3, "three of the four codes were unused");
        let after = q.codebook.to_vec2::<f32>()?;
        assert_eq!(after[used_code], before[used_code], "the used code is kept");
        for k in (0..4).filter(|&k| k != used_code) {
            let on_a_point = pts.chunks(2).any(|p| p == after[k].as_slice());
            assert!(on_a_point, "reset code {k} sits on an input row: {:?}", after[k]);
        }
        assert!(q.usage()?.iter().all(|&u| u == 0.0), "counts restart after a reset");
        Ok(())
    }

    #[test]
    fn usage_and_perplexity_of_code_lists() {
        assert_eq!(usage_and_perplexity(&[0, 0, 0, 0], 4), (0.25, 1.0));
        let (u, p) = usage_and_perplexity(&[0, 1, 2, 3, 0, 1, 2, 3], 8);
        assert_eq!(u, 0.5);
        assert!((p - 4.0).abs() < 1e-12, "uniform over 4 codes: perplexity 4");
    }
}
