//! `gpt`: a small decoder-only transformer language model (Radford et al. 2018/2019): token
//! and learned position embeddings, pre-LN blocks x + attn(ln1(x)), x + mlp(ln2(x))
//! (`nn::transformer`) with causal multi-head attention and a GELU (tanh) MLP of 4x width, a
//! final LayerNorm and an untied linear head, trained as a char-LM by the shared recipe
//! (`charlm`). The `gpt` preset is nanoGPT's CPU recipe for Shakespeare (Karpathy 2023:
//! 4 layers, 4 heads, 128 dims, block 64, batch 12, 2,000 iterations of AdamW with warmup and
//! cosine decay, GPT-2's init); `gpt-xs`, `gpt-s`, `gpt-m` are a ladder of sizes trained on the
//! same tokens (Kaplan et al. 2020's loss against parameters); `gpt-3min` is the best of three
//! configurations this recipe trains in three minutes here. The `layernorm` study uses the same model.

use super::charlm::{CharModel, TextCfg, TrainForward};
use super::{from_table, to_table, Family};
use crate::config::{OptimKind, ScheduleKind, TrainConfig};
use crate::experiment::{Experiment, Metrics};
use crate::nn::attention::AttnImpl;
use crate::nn::embedding::embedding;
use crate::nn::embedding::Embedding;
use crate::nn::linear::Linear;
use crate::nn::linear::{linear, linear_normal, InitKind};
use crate::nn::lora::lora;
use crate::nn::norm::{norm, Norm, NormKind};
use crate::nn::transformer::{block_init, Block, BlockCfg, BlockInit};
use crate::params::Params;
use candle_core::Module;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// How the linears start (embeddings are N(0, 0.02²) either way).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GptInit {
    /// PyTorch's nn.Linear default, U(±1/√fan_in) weights and biases (the layer-norm study's)
    #[default]
    Torch,
    /// GPT-2's, as nanoGPT: every linear N(0, 0.02²) with zero bias, the projections back into
    /// the residual stream (attn.c_proj, mlp.fc1) N(0, (0.02/√(2·n_layer))²)
    Gpt2,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// distinct tokens V
    pub vocab: usize,
    /// transformer blocks L
    pub n_layer: usize,
    /// attention heads H (must divide n_embd)
    pub n_head: usize,
    /// model width C
    pub n_embd: usize,
    /// longest context T (the number of learned positions)
    pub block: usize,
    /// the norm slots (ln1, ln2, ln_f): "layer" as GPT, or "batch"/"none" for the layer-norm study
    pub norm: NormKind,
    /// torch | gpt2: how the linears start
    #[serde(default)]
    pub init: GptInit,
    /// LoRA (Hu et al. 2021): rank r of adapters beside every attention projection (c_attn's
    /// q, k, v and c_proj); 0: none
    #[serde(default)]
    pub lora_rank: usize,
    /// the adapters' α (their product is scaled by α/r)
    #[serde(default = "default_lora_alpha")]
    pub lora_alpha: f64,
    /// the std of the adapters' B at the start; 0 (the paper's) makes the adapted model start
    /// as the base model
    #[serde(default)]
    pub lora_b_std: f64,
}

fn default_lora_alpha() -> f64 {
    8.0
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self {
            vocab: 65,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block: 64,
            norm: NormKind::Layer,
            init: GptInit::Torch,
            lora_rank: 0,
            lora_alpha: default_lora_alpha(),
            lora_b_std: 0.0,
        }
    }
}

impl ModelCfg {
    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass over `batch` sequences of
    /// `seq` tokens. Per token and block: qkv 2·C·3C, attention output 2·C·C, MLP 2·(C·4C + 4C·C);
    /// per sequence, block and head: q·kᵀ and p·v, 2·T·T·Dh each (the full T×T, masked half
    /// included, as computed); per token: the head 2·C·V. LayerNorm, softmax, GELU, embeddings
    /// and residual adds are not counted. Default sizes, 32 × 64 tokens: 3.52 GFLOP.
    pub fn forward_flops(&self, batch: usize, seq: usize) -> f64 {
        let c = self.n_embd;
        let per_token = self.n_layer * (2 * c * 3 * c + 2 * c * c + 2 * 2 * c * 4 * c) + 2 * c * self.vocab;
        let attn = self.n_layer * 2 * (2 * seq * seq * c); // summed over heads: H·Dh = C
        (batch * (seq * per_token + attn)) as f64
    }
}

pub struct Gpt {
    /// token embedding wte: (V, C)
    pub wte: Embedding,
    /// position embedding wpe: (block, C)
    pub wpe: Embedding,
    pub blocks: Vec<Block>,
    pub ln_f: Norm,
    /// C -> V, not tied to wte
    pub head: Linear,
    pub block: usize,
}

/// Parameters: `wte.weight`, `wpe.weight` (N(0, 0.02²), as GPT-2), `h.{i}.{ln1,attn,ln2,mlp}.*`,
/// `ln_f.*`, `head.*` (linears as `cfg.init` says); with batch norm also the running statistics
/// buffers of each norm slot; with `lora_rank` > 0 the adapters `lora.{i}.{c_attn,c_proj}.{a,b}`
/// (outside `h.`, so that `train.freeze = ["h.", …]` leaves them trainable).
pub fn gpt(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<Gpt> {
    let c = cfg.n_embd;
    let vb = params.vb(device);
    let bcfg = BlockCfg { n_embd: c, n_head: cfg.n_head, causal: true, norm: cfg.norm, mlp_ratio: 4 };
    let init = match cfg.init {
        GptInit::Torch => BlockInit::Torch,
        GptInit::Gpt2 => BlockInit::gpt2(cfg.n_layer),
    };
    let mut blocks = (0..cfg.n_layer)
        .map(|i| block_init(&bcfg, init, params, &format!("h.{i}"), device))
        .collect::<Result<Vec<_>>>()?;
    if cfg.lora_rank > 0 {
        let (r, alpha, b_std) = (cfg.lora_rank, cfg.lora_alpha, cfg.lora_b_std);
        for (i, blk) in blocks.iter_mut().enumerate() {
            let v = vb.pp(format!("lora.{i}"));
            let on_attn = lora(c, 3 * c, r, alpha, b_std, v.pp("c_attn"))?;
            let on_proj = lora(c, c, r, alpha, b_std, v.pp("c_proj"))?;
            blk.attn = blk.attn.merged()?.with_lora(on_attn, on_proj);
        }
    }
    let head = match cfg.init {
        GptInit::Torch => linear(c, cfg.vocab, InitKind::Default, vb.pp("head"))?,
        GptInit::Gpt2 => linear_normal(c, cfg.vocab, 0.02, vb.pp("head"))?,
    };
    Ok(Gpt {
        wte: embedding(cfg.vocab, c, 0.02, vb.pp("wte"))?,
        wpe: embedding(cfg.block, c, 0.02, vb.pp("wpe"))?,
        blocks,
        ln_f: norm(cfg.norm, c, params, "ln_f", device)?,
        head,
        block: cfg.block,
    })
}

impl Gpt {
    /// tokens (B, T) u32, T ≤ block -> logits (B·T, V), row b·T + t predicting the token after
    /// (b, t). Evaluation mode (BatchNorm's running statistics).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_t(tokens, false)
    }

    /// As `forward`; `train` selects BatchNorm's batch statistics (and updates the running ones).
    pub fn forward_t(&self, tokens: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with(tokens, train, AttnImpl::Fused)
    }

    /// As `forward_t`, with the attention heads computed by `imp` (tests compare the fused op
    /// with its composed reference inside the whole model).
    pub fn forward_with(&self, tokens: &Tensor, train: bool, imp: AttnImpl) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if t > self.block {
            candle_core::bail!("gpt: a context of {t} tokens is longer than the {} learned positions", self.block);
        }
        let mut x = self.wte.forward_with_positions(tokens, &self.wpe)?; // (B, T, C)
        for blk in &self.blocks {
            x = blk.forward_with(&x, train, imp)?;
        }
        let logits = self.head.forward(&self.ln_f.forward_t(&x, train)?)?; // (B, T, V)
        logits.reshape((b * t, ()))
    }

    /// Folds every LoRA adapter into its projection's weight (`Lora::merge`): the same
    /// function, no adapter products, no adapter parameters.
    pub fn merge_lora(&mut self) -> Result<()> {
        for blk in &mut self.blocks {
            blk.attn = blk.attn.merged()?;
        }
        Ok(())
    }

    /// Mean next-token cross-entropy in training mode; `targets` (B, T) are the inputs shifted by one.
    pub fn loss(&self, tokens: &Tensor, targets: &Tensor) -> Result<Tensor> {
        crate::nn::loss::cross_entropy(&self.forward_t(tokens, true)?, &targets.flatten_all()?)
    }
}

impl CharModel for Gpt {
    /// Evaluation mode: BatchNorm uses its running statistics.
    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_t(tokens, false)
    }

    /// Training mode: BatchNorm normalises with the batch's statistics and updates its running ones.
    fn forward_train(&self, tokens: &Tensor) -> Result<TrainForward> {
        Ok(TrainForward { logits: self.forward_t(tokens, true)?, aux: None, metrics: Metrics::new() })
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.block)
    }
}

pub type Config = super::Config<TextCfg, ModelCfg>;

/// nanoGPT's CPU recipe for Shakespeare (its README: `--block_size=64 --batch_size=12
/// --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`
/// over config/train_shakespeare_char.py: lr 1e-3, 100 warmup iterations, cosine to 1e-4,
/// AdamW β2 0.99, weight decay 0.1, clipping at 1). Evaluated once, at the end, so the run's
/// wall time is training only.
pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 2000,
            batch_size: 12,
            optimizer: OptimKind::Adamw,
            lr: 1e-3,
            beta2: 0.99,
            weight_decay: 0.1,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 100,
            min_lr: 1e-4,
            clip_grad_norm: 1.0,
            eval_every: 0,
            ckpt_every: 0,
            ..Default::default()
        },
        data: TextCfg { text: "shakespeare".into(), seq_len: 64, ..Default::default() },
        // vocab is set from the text at build time
        model: ModelCfg { vocab: 0, init: GptInit::Gpt2, ..Default::default() },
    }
}

/// The char-LM recipe with this model: checks the sizes, then builds it over `c.data`'s text.
pub fn build_char_lm(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let m = &c.model;
    if m.n_embd == 0 || m.n_head == 0 || !m.n_embd.is_multiple_of(m.n_head) {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "[model]".into(),
            message: format!("n_head ({}) must divide n_embd ({}), both at least 1", m.n_head, m.n_embd)
        });
    }
    if c.data.seq_len > m.block {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "data.seq_len".into(),
            message: format!(
                "{} is longer than model.block ({}); raise model.block or lower data.seq_len",
                c.data.seq_len, m.block
            )
        });
    }
    let params = Params::new(c.train.seed);
    let p = params.clone();
    c.data.char_lm(&c.train, params, device, |vocab| gpt(&ModelCfg { vocab, ..m.clone() }, &p, device))
}

pub static FAMILY: Family =
    Family { id: "gpt", defaults: || to_table(&defaults()), build: |t, d| build_char_lm(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use crate::rng::Rng;
    use candle_core::Device;

    #[test]
    fn every_parameter_gets_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        for norm in [NormKind::Layer, NormKind::Batch, NormKind::None] {
            let cfg = ModelCfg { norm, ..Default::default() };
            let p = Params::new(5);
            let net = gpt(&cfg, &p, &dev)?;
            let mut rng = Rng::new(4);
            let ids: Vec<u32> = (0..2 * 11).map(|_| rng.below(cfg.vocab) as u32).collect();
            let ids = Tensor::from_vec(ids, (2, 11), &dev)?;
            let loss = net.loss(&ids.narrow(1, 0, 10)?, &ids.narrow(1, 1, 10)?)?;
            // 4·(ln1 2 + attn 4 + ln2 2 + mlp 4) + wte, wpe, ln_f 2, head 2; no norm: 9 slots fewer
            let norms = if norm == NormKind::None { 0 } else { 2 };
            assert_eq!(p.trainable().len(), 4 * (8 + 2 * norms) + 4 + norms, "{norm:?}");
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    fn tokens(seed: u64, (b, t): (usize, usize), vocab: usize) -> Result<Tensor> {
        let mut rng = Rng::new(seed);
        let ids: Vec<u32> = (0..b * t).map(|_| rng.below(vocab) as u32).collect();
        Tensor::from_vec(ids, (b, t), &Device::Cpu)
    }

    fn small_cfg(init: GptInit) -> ModelCfg {
        ModelCfg {
            vocab: 11,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block: 12,
            norm: NormKind::Layer,
            init,
            ..Default::default()
        }
    }

    /// Causal masking in the whole model: changing the token at position t changes no logit
    /// before t (bit for bit), and does change those from t on.
    #[test]
    fn a_future_token_cannot_change_past_logits() -> Result<()> {
        for init in [GptInit::Torch, GptInit::Gpt2] {
            let cfg = small_cfg(init);
            let net = gpt(&cfg, &Params::new(3), &Device::Cpu)?;
            let x = tokens(1, (1, 12), cfg.vocab)?;
            let mut ids = x.flatten_all()?.to_vec1::<u32>()?;
            let before = net.forward(&x)?.to_vec2::<f32>()?; // (12, V)
            for t in [11, 5, 0] {
                ids[t] = (ids[t] + 1) % cfg.vocab as u32;
                let after = net.forward(&Tensor::from_vec(ids.clone(), (1, 12), &Device::Cpu)?)?.to_vec2::<f32>()?;
                assert_eq!(before[..t], after[..t], "{init:?}: changing token {t} changed an earlier logit");
                assert_ne!(before[t], after[t], "{init:?}: token {t} does not reach its own logit");
            }
        }
        Ok(())
    }

    /// The fused attention op against its composed reference inside the whole model: logits,
    /// loss and every parameter's gradient. Tolerance: 1e-4 relative to the largest entry (the
    /// op alone agrees to 1e-5; four layers of LayerNorm and products amplify the difference).
    #[test]
    fn fused_attention_matches_the_composed_reference_in_the_whole_model() -> Result<()> {
        // max |a − b| over max |b|
        let rel_err = |a: &Tensor, b: &Tensor| -> Result<f32> {
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            Ok(diff / b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-12))
        };
        for (t, n_head) in [(12, 2), (64, 4)] {
            let cfg = ModelCfg {
                vocab: 23,
                n_layer: 3,
                n_head,
                n_embd: 32,
                block: 64,
                norm: NormKind::Layer,
                init: GptInit::Gpt2,
                ..Default::default()
            };
            let p = Params::new(9);
            let net = gpt(&cfg, &p, &Device::Cpu)?;
            let ids = tokens(2, (3, t + 1), cfg.vocab)?;
            let (x, y) = (ids.narrow(1, 0, t)?.contiguous()?, ids.narrow(1, 1, t)?.flatten_all()?);
            let run = |imp| -> Result<(Tensor, Vec<Tensor>)> {
                let logits = net.forward_with(&x, true, imp)?;
                let grads = crate::nn::loss::cross_entropy(&logits, &y)?.backward()?;
                let missing = |n: &str| candle_core::Error::Msg(format!("no gradient for {n}"));
                let g = p.trainable().into_iter().map(|(n, v)| grads.get(&v).cloned().ok_or_else(|| missing(&n)));
                let g = g.collect::<Result<Vec<_>>>()?;
                Ok((logits, g))
            };
            let ((lf, gf), (lr, gr)) = (run(AttnImpl::Fused)?, run(AttnImpl::Composed)?);
            let e = rel_err(&lf, &lr)?;
            assert!(e < 1e-4, "T {t}: logits off by {e}");
            for ((name, _), (a, b)) in p.trainable().iter().zip(gf.iter().zip(&gr)) {
                let e = rel_err(a, b)?;
                assert!(e < 1e-4, "T {t}: gradient of {name} off by {e}");
            }
        }
        Ok(())
    }

    /// GPT-2's init: N(0, 0.02²) weights, the residual projections 0.02/√(2·layers), zero
    /// biases; the default init is PyTorch's (biases not zero).
    #[test]
    fn gpt2_init_scales_the_residual_projections() -> Result<()> {
        let cfg = ModelCfg { n_layer: 8, n_embd: 128, ..small_cfg(GptInit::Gpt2) };
        let p = Params::new(4);
        gpt(&cfg, &p, &Device::Cpu)?;
        let std = |name: &str| -> f64 {
            let v = p.trainable().into_iter().find(|(n, _)| n == name).unwrap().1;
            let x: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            (x.iter().map(|&a| (a as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
        };
        for (name, want) in [
            ("h.0.attn.c_attn.weight", 0.02),
            ("h.3.mlp.fc0.weight", 0.02),
            ("h.1.attn.c_proj.weight", 0.02 / 4.0),
            ("h.7.mlp.fc1.weight", 0.02 / 4.0),
            ("head.weight", 0.02),
            ("wte.weight", 0.02),
        ] {
            assert!((std(name) / want - 1.0).abs() < 0.1, "{name}: std {} vs {want}", std(name));
        }
        assert_eq!(std("h.2.mlp.fc0.bias"), 0.0);
        assert_eq!(std("head.bias"), 0.0);
        let torch = Params::new(4);
        gpt(&ModelCfg { init: GptInit::Torch, ..cfg }, &torch, &Device::Cpu)?;
        let b = torch.trainable().into_iter().find(|(n, _)| n == "head.bias").unwrap().1;
        assert!(b.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }

    /// LoRA in the whole model (Hu et al. 2021: W₀x + BAx = (W₀ + BA)x): the logits with the
    /// adapters unmerged and with them folded into the weights agree to 1e-5 relative; with
    /// B = 0 (the paper's start) the adapted model is the base model bit for bit.
    #[test]
    fn lora_merged_and_unmerged_give_the_same_logits() -> Result<()> {
        let base_cfg = ModelCfg { vocab: 23, n_layer: 2, n_head: 2, n_embd: 16, block: 12, ..Default::default() };
        let x = tokens(6, (2, 12), base_cfg.vocab)?;
        let cfg = ModelCfg { lora_rank: 4, lora_b_std: 0.2, ..base_cfg.clone() };
        let p = Params::new(8);
        let mut net = gpt(&cfg, &p, &Device::Cpu)?;
        // per layer: c_attn A 4x16 + B 48x4, c_proj A 4x16 + B 16x4
        let adapters: usize =
            p.trainable().iter().filter(|(n, _)| n.starts_with("lora.")).map(|(_, v)| v.elem_count()).sum();
        assert_eq!(adapters, 2 * (4 * 16 + 48 * 4 + 4 * 16 + 16 * 4));
        let unmerged = net.forward(&x)?;
        net.merge_lora()?;
        let merged = net.forward(&x)?;
        let err = (&unmerged - &merged)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let big = unmerged.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err / big < 1e-5, "merged vs unmerged logits: {err} of {big}");
        let plain = gpt(&base_cfg, &Params::new(8), &Device::Cpu)?.forward(&x)?;
        assert!((&plain - &unmerged)?.abs()?.max_all()?.to_scalar::<f32>()? > 1e-4, "B ≠ 0 changes the logits");
        let zero = gpt(&ModelCfg { lora_rank: 4, ..base_cfg }, &Params::new(8), &Device::Cpu)?.forward(&x)?;
        assert_eq!(zero.to_vec2::<f32>()?, plain.to_vec2::<f32>()?, "B = 0: the base model exactly");
        Ok(())
    }

    #[test]
    fn flop_count_is_the_issues() {
        // issue 3: about 10.6 GFLOP per training step (×3 of the forward) at batch 32, block 64
        let f = 3.0 * ModelCfg::default().forward_flops(32, 64);
        assert!((f / 1e9 - 10.57).abs() < 0.01, "{f}");
    }
}
