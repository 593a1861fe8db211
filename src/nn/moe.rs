//! A sparsely-gated mixture-of-experts layer (Shazeer, Mirhoseini, Maziarz, Davis, Le, Hinton &
//! Dean 2017): a gate scores E experts per token, only the top k run, and their outputs are
//! mixed by the softmax of the k kept scores, G(x) = softmax(top_k(x·W_g)). Each expert is a
//! two-layer ReLU MLP C -> h -> C. The paper's noisy gating is left out (it serves the
//! paper's load estimator over a noisy top-k, which this layer does not use); balance comes
//! from the importance loss w·CV(Importance)², Importance_e = Σ_x G_e(x) over the batch.
//!
//! Routing is by index: each expert gathers its tokens (`index_select`), runs on them only, and
//! scatters its weighted output back (`index_add`), so a token costs k experts, not E. Both ops
//! have a backward in candle; the gate's weights get gradient through the k kept scores.

use super::activation::Activation;
use super::linear::{InitKind, Linear};
use super::mlp::Mlp;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

pub struct Moe {
    /// W_g: C -> E scores
    pub gate: Linear,
    /// E experts, each C -> h -> C with ReLU
    pub experts: Vec<Mlp>,
    /// experts per token
    pub k: usize,
}

/// One forward pass's output and its routing statistics.
pub struct MoeOut {
    /// (N, C)
    pub y: Tensor,
    /// CV(Importance)² as a scalar tensor, differentiable (multiply by the loss weight)
    pub balance: Tensor,
    /// fraction of the N·k token slots each expert received (sums to 1)
    pub load: Vec<f64>,
}

/// Parameters `gate.weight`, `expert.{e}.fc0.*`, `expert.{e}.fc1.*`. Shazeer et al. start W_g
/// at zero and let the gating noise break the ties; without noise a zero gate would send every
/// token to the same k experts (the ties go to the lowest index), so W_g starts small and random,
/// U(−1/√C, 1/√C) as PyTorch's nn.Linear.
pub fn moe(dim: usize, hidden: usize, n_experts: usize, k: usize, vb: VarBuilder) -> Result<Moe> {
    if k == 0 || k > n_experts {
        candle_core::bail!("moe: top-k must be between 1 and the number of experts ({n_experts}), got {k}")
    }
    let bound = 1.0 / (dim as f64).sqrt();
    let w = vb.pp("gate").get_with_hints((n_experts, dim), "weight", Init::Uniform { lo: -bound, up: bound })?;
    let gate = Linear { weight: w, bias: None };
    let experts = (0..n_experts)
        .map(|e| Mlp::new(&[dim, hidden, dim], Activation::Relu, InitKind::Default, vb.pp(format!("expert.{e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Moe { gate, experts, k })
}

/// The indices of the k largest entries of each row, largest first (ties: lower index first).
pub fn top_k(scores: &[Vec<f32>], k: usize) -> Vec<Vec<u32>> {
    scores
        .iter()
        .map(|row| {
            let mut idx: Vec<u32> = (0..row.len() as u32).collect();
            idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
            idx.truncate(k);
            idx
        })
        .collect()
}

impl Moe {
    /// x: (N, C) tokens -> mixed expert outputs and routing statistics.
    pub fn forward(&self, x: &Tensor) -> Result<MoeOut> {
        let (n, c) = x.dims2()?;
        let (e_count, k, dev) = (self.experts.len(), self.k, x.device());
        let scores = self.gate.forward(x)?; // (N, E)
        let chosen = top_k(&scores.to_vec2::<f32>()?, k); // routing is discrete: no gradient
        let flat: Vec<u32> = chosen.iter().flatten().copied().collect();
        let idx = Tensor::from_vec(flat.clone(), (n, k), dev)?;
        // G(x): softmax over the k kept scores, (N, k); row-major, so slot (r, s) is r·k + s
        let g = candle_nn::ops::softmax(&scores.gather(&idx, 1)?, D::Minus1)?.flatten_all()?;
        let mut y = Tensor::zeros((n, c), x.dtype(), dev)?;
        let mut importance = Vec::with_capacity(e_count);
        let mut load = vec![0f64; e_count];
        for (e, expert) in self.experts.iter().enumerate() {
            // the slots routed to expert e: their token rows and their positions in g
            let slots: Vec<u32> = (0..(n * k) as u32).filter(|&s| flat[s as usize] == e as u32).collect();
            load[e] = slots.len() as f64 / (n * k) as f64;
            if slots.is_empty() {
                importance.push(Tensor::zeros((), DType::F32, dev)?);
                continue;
            }
            let rows: Vec<u32> = slots.iter().map(|&s| s / k as u32).collect();
            let (rows, slots) = (Tensor::new(rows.as_slice(), dev)?, Tensor::new(slots.as_slice(), dev)?);
            let g_e = g.index_select(&slots, 0)?; // (n_e,)
            let out = expert.forward(&x.index_select(&rows, 0)?)?; // (n_e, C)
            y = y.index_add(&rows, &out.broadcast_mul(&g_e.unsqueeze(1)?)?, 0)?;
            importance.push(g_e.sum_all()?);
        }
        // CV² = Var/Mean² of the per-expert gate sums (population variance, as the paper's CV)
        let imp = Tensor::stack(&importance, 0)?; // (E,)
        let mean = imp.mean_all()?;
        let var = imp.broadcast_sub(&mean)?.sqr()?.mean_all()?;
        let balance = (var / (mean.sqr()? + 1e-10)?)?;
        Ok(MoeOut { y, balance, load })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use crate::rng::Rng;
    use candle_core::Device;

    /// A layer with random N(0, 1) gate weights (the zero init routes every token alike).
    fn random_moe(p: &Params, c: usize, h: usize, e: usize, k: usize, rng: &mut Rng) -> Result<Moe> {
        let dev = Device::Cpu;
        let m = moe(c, h, e, k, p.vb(&dev))?;
        let wg: Vec<f32> = (0..e * c).map(|_| rng.normal() as f32).collect();
        let (_, var) = p.trainable().into_iter().find(|(n, _)| n == "gate.weight").expect("gate.weight");
        var.set(&Tensor::from_vec(wg, (e, c), &dev)?)?;
        Ok(m)
    }

    fn randn(rng: &mut Rng, shape: (usize, usize)) -> Result<Tensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    #[test]
    fn top_k_picks_the_largest_scores_in_order() {
        let s = vec![vec![0.1, 0.9, -1.0, 0.5], vec![2.0, 2.0, 3.0, 1.0]];
        assert_eq!(top_k(&s, 2), vec![vec![1, 3], vec![2, 0]]);
    }

    /// Reference: the dense mixture Σ_e G_e(x)·expert_e(x) with G zero outside the top k,
    /// computed token by token with every expert run on every token.
    #[test]
    fn routed_output_equals_the_dense_mixture_with_sparse_gates() -> Result<()> {
        let mut rng = Rng::new(3);
        let p = Params::new(5);
        let (n, c, e, k) = (7, 6, 4, 2);
        let m = random_moe(&p, c, 5, e, k, &mut rng)?;
        let x = randn(&mut rng, (n, c))?;
        let out = m.forward(&x)?;
        let scores = m.gate.forward(&x)?.to_vec2::<f32>()?;
        let all: Vec<Vec<Vec<f32>>> =
            m.experts.iter().map(|ex| ex.forward(&x)?.to_vec2::<f32>()).collect::<Result<_>>()?;
        let y = out.y.to_vec2::<f32>()?;
        let chosen = top_k(&scores, k);
        for r in 0..n {
            let z: Vec<f64> = chosen[r].iter().map(|&j| (scores[r][j as usize] as f64).exp()).collect();
            let zs: f64 = z.iter().sum();
            for col in 0..c {
                let want: f64 = chosen[r].iter().zip(&z).map(|(&j, zj)| zj / zs * all[j as usize][r][col] as f64).sum();
                // f32 sums of ≤ k terms: 1e-5 absolute is ~10 ulps at these magnitudes
                assert!((y[r][col] as f64 - want).abs() < 1e-5, "row {r} col {col}: {} vs {want}", y[r][col]);
            }
        }
        assert!((out.load.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn balance_loss_is_one_when_half_the_experts_get_everything() -> Result<()> {
        // a zero gate ties every score, so G = 1/k and the tie rule sends every token to experts
        // 0 and 1: importance (N/2, N/2, 0, 0), mean N/4, variance N²/16 -> CV² = 1
        let dev = Device::Cpu;
        let p = Params::new(1);
        let m = moe(3, 4, 4, 2, p.vb(&dev))?;
        let (_, gate) = p.trainable().into_iter().find(|(n, _)| n == "gate.weight").expect("gate.weight");
        gate.set(&Tensor::zeros((4, 3), DType::F32, &dev)?)?;
        let out = m.forward(&Tensor::ones((8, 3), DType::F32, &dev)?)?;
        assert_eq!(out.load, vec![0.5, 0.5, 0.0, 0.0]);
        assert!((out.balance.to_scalar::<f32>()? - 1.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn every_parameter_gets_a_gradient_when_every_expert_is_routed_to() -> Result<()> {
        let mut rng = Rng::new(4);
        let p = Params::new(9);
        let m = random_moe(&p, 4, 6, 3, 2, &mut rng)?;
        let out = m.forward(&randn(&mut rng, (64, 4))?)?;
        assert!(out.load.iter().all(|&l| l > 0.0), "64 random tokens reach every expert: {:?}", out.load);
        assert_every_param_gets_a_gradient(&p, &(out.y.sqr()?.mean_all()? + out.balance)?)
    }
}
