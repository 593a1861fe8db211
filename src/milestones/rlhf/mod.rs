//! `sft` → `reward-model` → `rlhf`: InstructGPT (Ouyang et al. 2022) at toy scale, three stages
//! chained through run directories. `sft` is the `gpt` char-LM recipe on a text (its preset is a
//! small model); `reward-model` ([`reward`]) is that transformer with a scalar head, started from
//! an `sft` run and trained with the Bradley–Terry loss on pairs ranked by a scripted labeler
//! ([`score`]); `rlhf` ([`ppo`]) fine-tunes the SFT model by PPO (Schulman et al. 2017) against
//! the reward model, with a per-token KL penalty to the frozen SFT model (Ziegler et al. 2019).
//! This file holds what the stages share: the config, the labeler, prompts and the forward pass
//! that exposes the final hidden states.

pub mod ppo;
pub mod reward;

use super::gpt::{Gpt, ModelCfg};
use crate::data::text::{CharText, TextSplit};
use crate::experiment::Need;
use crate::nn::attention::AttnImpl;
use crate::rng::Rng;
use candle_core::{Module, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The character the scripted labeler counts.
pub const TARGET: char = 'e';

/// The scripted labeler: the number of `e`/`E` in a response. Of two responses to the same
/// prompt it prefers the one that scores higher (ties are not labelled).
pub fn score(response: &str) -> f64 {
    response.chars().filter(|c| c.eq_ignore_ascii_case(&TARGET)).count() as f64
}

/// The `[data]` of `reward-model` and `rlhf` (and PPO's settings, which have no other section).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RlhfCfg {
    /// the text prompts are cut from: moby (built in) | shakespeare | sotu (fetched)
    pub text: String,
    /// characters of a prompt (a window of the text)
    pub prompt_len: usize,
    /// characters of a response (sampled, or the text's for the reward model's pairs)
    pub response_len: usize,
    /// `train.steps` of the `sft` run used (0: its preset's)
    pub sft_steps: usize,
    /// `train.steps` of the `reward-model` run used by `rlhf` (0: its preset's)
    pub rm_steps: usize,
    /// rlhf: β of the per-token KL penalty β·(log π − log π_SFT)
    pub kl_coef: f64,
    /// rlhf: PPO's clipping ε of the probability ratio
    pub clip: f64,
    /// rlhf: policy updates per batch of rollouts (the first has ratio 1)
    pub ppo_epochs: usize,
    /// prompts scored by `evaluate`
    pub eval_prompts: usize,
}

impl Default for RlhfCfg {
    fn default() -> Self {
        Self {
            text: "moby".into(),
            prompt_len: 16,
            response_len: 16,
            sft_steps: 0,
            rm_steps: 0,
            kl_coef: 0.05,
            clip: 0.2,
            ppo_epochs: 2,
            eval_prompts: 64,
        }
    }
}

pub type Config = super::Config<RlhfCfg, ModelCfg>;

/// The `sft` model's shape: a small gpt over windows of prompt + response.
pub fn model_defaults() -> ModelCfg {
    ModelCfg {
        vocab: 0,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block: 32,
        init: super::gpt::GptInit::Gpt2,
        ..Default::default()
    }
}

impl RlhfCfg {
    /// The `sft` run this stage starts from.
    pub fn sft_need(&self) -> Need {
        let mut sets = vec![format!("data.text={}", self.text)];
        if self.sft_steps > 0 {
            sets.push(format!("train.steps={}", self.sft_steps));
        }
        Need { key: "sft", milestone: "sft".into(), sets, why: "the supervised model RLHF starts from".into() }
    }

    /// The `reward-model` run `rlhf` optimises against (trained from the same `sft` run).
    pub fn reward_need(&self) -> Need {
        let mut sets = vec![format!("data.text={}", self.text)];
        if self.sft_steps > 0 {
            sets.push(format!("data.sft_steps={}", self.sft_steps));
        }
        if self.rm_steps > 0 {
            sets.push(format!("train.steps={}", self.rm_steps));
        }
        Need { key: "reward", milestone: "reward-model".into(), sets, why: "the learned reward of RLHF".into() }
    }

    /// `n` prompts at fixed, evenly spread places of `split` (the same for every model).
    pub fn fixed_prompts(&self, text: &CharText, split: TextSplit, n: usize) -> Vec<Vec<u32>> {
        let ids = text.part(split);
        let starts = super::charlm::eval_starts(ids.len(), self.prompt_len + self.response_len, n);
        starts.iter().map(|&s| ids[s..s + self.prompt_len].to_vec()).collect()
    }

    /// `n` prompts at places of the train split drawn from `rng`.
    pub fn random_prompts(&self, text: &CharText, rng: &mut Rng, n: usize) -> Vec<Vec<u32>> {
        let ids = text.part(TextSplit::Train);
        let last = ids.len() - self.prompt_len - self.response_len;
        (0..n)
            .map(|_| {
                let s = rng.below(last);
                ids[s..s + self.prompt_len].to_vec()
            })
            .collect()
    }

    /// Checks the lengths against the model.
    pub fn check(&self, m: &ModelCfg) -> anyhow::Result<()> {
        if self.prompt_len == 0 || self.response_len == 0 || self.prompt_len + self.response_len > m.block {
            anyhow::bail!(crate::error::DlError::BadValue {
                context: "data.prompt_len, data.response_len".into(),
                message: format!(
                    "both must be at least 1 and together at most model.block ({}); got {} + {}",
                    m.block, self.prompt_len, self.response_len
                )
            });
        }
        Ok(())
    }
}

/// The gpt's final hidden states (after `ln_f`), (B, T, C), and its logits (B·T, V).
pub fn hidden_and_logits(net: &Gpt, tokens: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, t) = tokens.dims2()?;
    let mut x = net.wte.forward_with_positions(tokens, &net.wpe)?;
    for blk in &net.blocks {
        x = blk.forward_with(&x, true, AttnImpl::Fused)?;
    }
    let h = net.ln_f.forward_t(&x, true)?;
    let logits = net.head.forward(&h)?.reshape((b * t, ()))?;
    Ok((h, logits))
}

/// Rows of equal length as a (B, T) u32 tensor.
pub fn rows(rows: &[Vec<u32>], device: &candle_core::Device) -> Result<Tensor> {
    let t = rows.first().map_or(0, |r| r.len());
    Tensor::from_vec(rows.concat(), (rows.len(), t), device)
}

/// Samples `len` tokens after each prompt (all of one length) from `net` at `temperature`;
/// returns the responses. One forward pass over the whole prefix per token (blocks are short).
pub fn generate(net: &Gpt, prompts: &[Vec<u32>], len: usize, temperature: f64, rng: &mut Rng) -> Result<Vec<Vec<u32>>> {
    let dev = net.wte.weight.device().clone();
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    for _ in 0..len {
        let t = seqs[0].len();
        let x = rows(&seqs, &dev)?;
        let last = net.forward(&x)?.reshape((seqs.len(), t, ()))?.narrow(1, t - 1, 1)?.squeeze(1)?;
        let last = last.to_vec2::<f32>()?;
        for (s, l) in seqs.iter_mut().zip(&last) {
            s.push(super::charlm::draw(l, temperature, None, rng) as u32);
        }
    }
    let p = prompts.first().map_or(0, |p| p.len());
    Ok(seqs.into_iter().map(|s| s[p..].to_vec()).collect())
}

/// Log-probabilities (B, R) of each sequence's last `r` tokens under `net`; `seqs` (B, P+R).
pub fn response_logprobs(net: &Gpt, seqs: &Tensor, r: usize) -> Result<Tensor> {
    let (b, t) = seqs.dims2()?;
    let x = seqs.narrow(1, 0, t - 1)?.contiguous()?;
    let logits = net.forward_t(&x, true)?.reshape((b, t - 1, ()))?.narrow(1, t - 1 - r, r)?;
    let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
    let y = seqs.narrow(1, t - r, r)?.contiguous()?.unsqueeze(2)?;
    logp.gather(&y, 2)?.squeeze(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labeler_counts_the_target_letter_in_either_case() {
        assert_eq!(score("Here, every eel"), 6.0);
        assert_eq!(score("a cat on a mat."), 0.0);
        assert_eq!(score(""), 0.0);
    }

    /// The gathered log-probabilities are those of log_softmax at the response's positions.
    #[test]
    fn response_logprobs_pick_the_next_tokens() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let cfg = ModelCfg { vocab: 7, n_layer: 1, n_head: 2, n_embd: 8, block: 8, ..model_defaults() };
        let net = super::super::gpt::gpt(&cfg, &crate::params::Params::new(1), &dev)?;
        let seq = vec![1u32, 2, 3, 4, 5, 6];
        let lp = response_logprobs(&net, &rows(std::slice::from_ref(&seq), &dev)?, 2)?.to_vec2::<f32>()?;
        let logits = net.forward(&rows(&[seq[..5].to_vec()], &dev)?)?.to_vec2::<f32>()?;
        for (k, pos) in [3usize, 4].iter().enumerate() {
            let l = &logits[*pos];
            let lse = l.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
            let want = l[seq[pos + 1] as usize] as f64 - lse;
            assert!((lp[0][k] as f64 - want).abs() < 1e-5, "{} vs {want}", lp[0][k]);
        }
        Ok(())
    }
}
