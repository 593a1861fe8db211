//! Contrastive image–text pieces (Radford et al. 2021, CLIP): the symmetric InfoNCE loss over a
//! batch of paired embeddings, and recall@k of a similarity matrix in both directions.

use candle_core::{DType, Result, Tensor, D};

/// Rows scaled to unit L2 norm (eps inside the square root keeps zero rows finite).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// Symmetric InfoNCE (CLIP's loss): logits = exp(log_scale) · img · txtᵀ for L2-normalised
/// img, txt (N, d); the mean of the cross-entropy of rows (image → its text) and of columns
/// (text → its image) against the diagonal. `log_scale` is a scalar tensor (the learnable
/// inverse temperature, log scale; the caller clamps it, CLIP at ln 100).
pub fn info_nce(img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<Tensor> {
    let n = img.dim(0)?;
    let logits = crate::ops::flops::matmul(img, &txt.t()?)?.broadcast_mul(&log_scale.exp()?)?;
    let targets = Tensor::arange(0u32, n as u32, img.device())?;
    let i2t = super::loss::cross_entropy(&logits, &targets)?;
    let t2i = super::loss::cross_entropy(&logits.t()?.contiguous()?, &targets)?;
    (i2t + t2i)? / 2.0
}

/// Reference of [`info_nce`] composed of candle's log_softmax (for the test).
pub fn info_nce_ref(img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<Tensor> {
    let logits = img.matmul(&txt.t()?)?.broadcast_mul(&log_scale.exp()?)?;
    let diag = |l: &Tensor| -> Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(l, D::Minus1)?;
        let n = lp.dim(0)?;
        let eye = Tensor::eye(n, DType::F32, l.device())?;
        (lp * eye)?.sum_all()?.neg()? / n as f64
    };
    (diag(&logits)? + diag(&logits.t()?)?)? / 2.0
}

/// Recall@k of a similarity matrix `sim` (n × n, row i = query i, the match of query i is
/// column i): the fraction of rows whose match ranks in the top k (ties count against the
/// match: a column with equal score ranks ahead of it). Chance is k / n.
pub fn recall_at_k(sim: &[f32], n: usize, k: usize) -> f64 {
    assert_eq!(sim.len(), n * n, "recall_at_k: sim must be n × n");
    let hits = (0..n)
        .filter(|&i| {
            let row = &sim[i * n..(i + 1) * n];
            let ahead = row.iter().enumerate().filter(|&(j, &s)| j != i && s >= row[i]).count();
            ahead < k
        })
        .count();
    hits as f64 / n.max(1) as f64
}

/// The transpose of an n × n matrix (text → image recall is [`recall_at_k`] of it).
pub fn transpose(sim: &[f32], n: usize) -> Vec<f32> {
    (0..n * n).map(|idx| sim[(idx % n) * n + idx / n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A 2 × 2 case by hand: img = txt = [[1, 0], [0, 1]], scale e⁰ = 1. Each row's logits are
    /// (1, 0): CE = ln(1 + e⁻¹) = 0.31326, both directions, so the loss is 0.31326.
    #[test]
    fn info_nce_matches_a_hand_computed_case_and_the_reference() -> Result<()> {
        let dev = Device::Cpu;
        let eye = Tensor::new(&[[1f32, 0.], [0., 1.]], &dev)?;
        let zero = Tensor::new(0f32, &dev)?;
        let l = info_nce(&eye, &eye, &zero)?.to_scalar::<f32>()?;
        assert!((l - (1.0 + (-1f32).exp()).ln()).abs() < 1e-6, "{l}");
        // Asymmetric case: rows and columns differ, so the two directions differ.
        let img = l2_normalize(&Tensor::new(&[[1f32, 2.], [3., -1.], [0.5, 0.5]], &dev)?)?;
        let txt = l2_normalize(&Tensor::new(&[[2f32, 1.], [1., -1.], [-1., 0.2]], &dev)?)?;
        let s = Tensor::new(1.5f32, &dev)?;
        let (a, b) = (info_nce(&img, &txt, &s)?.to_scalar::<f32>()?, info_nce_ref(&img, &txt, &s)?.to_scalar::<f32>()?);
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        Ok(())
    }

    #[test]
    fn info_nce_gradient_reaches_both_sides_and_the_scale() -> Result<()> {
        let dev = Device::Cpu;
        let img = candle_core::Var::new(&[[1f32, 2.], [3., -1.]], &dev)?;
        let txt = candle_core::Var::new(&[[2f32, 1.], [1., -1.]], &dev)?;
        let s = candle_core::Var::new(0.5f32, &dev)?;
        let loss = info_nce(&l2_normalize(&img)?, &l2_normalize(&txt)?, &s)?;
        let g = loss.backward()?;
        for v in [&img, &txt, &s] {
            let gv: Vec<f32> = g.get(v.as_tensor()).expect("gradient").flatten_all()?.to_vec1()?;
            assert!(gv.iter().all(|x| x.is_finite()) && gv.iter().any(|&x| x != 0.0));
        }
        Ok(())
    }

    #[test]
    fn recall_at_k_on_a_constructed_matrix() {
        // Row 0: match ranks 1st; row 1: 2nd; row 2: 3rd; row 3: tied with one other → 2nd.
        #[rustfmt::skip]
        let sim = [
            0.9, 0.1, 0.2, 0.3,
            0.8, 0.5, 0.1, 0.0,
            0.7, 0.6, 0.1, 0.0,
            0.4, 0.0, 0.0, 0.4,
        ];
        assert_eq!(recall_at_k(&sim, 4, 1), 0.25);
        assert_eq!(recall_at_k(&sim, 4, 2), 0.75);
        assert_eq!(recall_at_k(&sim, 4, 3), 1.0);
        let t = transpose(&sim, 4);
        assert_eq!(t[1], 0.8);
        assert_eq!(t[4], 0.1);
        // Columns as queries: cols 0 and 3 rank their match 1st; col 1's is behind 0.6, col 2's
        // behind 0.2 and a tie.
        assert_eq!(recall_at_k(&t, 4, 1), 0.5);
        assert_eq!(recall_at_k(&t, 4, 2), 0.75);
    }
}
