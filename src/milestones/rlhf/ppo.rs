//! `rlhf`: PPO (Schulman et al. 2017) on the SFT model against the learned reward, with a
//! per-token KL penalty to the frozen SFT model (Ziegler et al. 2019; Ouyang et al. 2022).
//! Each step: sample a response to each of B prompts from the policy; per-token rewards
//! r_t = −β·(log π(y_t) − log π_SFT(y_t)), plus the reward model's score on the last token;
//! returns G_t = Σ_{t'≥t} r_t' (γ = 1, no GAE); advantages G_t − V_t, whitened; then
//! `ppo_epochs` updates of the policy group with the clipped objective
//! −mean min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A), ρ = π/π_old, and one of the value group (a linear
//! head on the policy's detached hidden states) on (V_t − G_t)². Built without its needs (a
//! gradient check), the reference is the initial policy and the reward is the labeler's score.

use super::reward::RewardNet;
use super::{generate, hidden_and_logits, response_logprobs, rows, score, Config, RlhfCfg};
use crate::data::text::{CharText, TextSplit};
use crate::experiment::{
    Experiment, Group, Metrics, Need, SampleOpt, SampleOut, SampleRequest, Split, TrainOut, Updater,
};
use crate::milestones::gpt::{gpt, Gpt, ModelCfg};
use crate::milestones::{from_table, to_table, Family};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};

/// The clipped surrogate loss −mean min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A), ρ = exp(logp − old).
pub fn clipped_loss(logp: &Tensor, old: &Tensor, adv: &Tensor, eps: f64) -> Result<(Tensor, f64)> {
    let ratio = (logp - old)?.exp()?;
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps)?;
    let obj = (&ratio * adv)?.minimum(&(&clipped * adv)?)?;
    let r: Vec<f32> = ratio.flatten_all()?.to_vec1()?;
    let frac = r.iter().filter(|x| (**x as f64 - 1.0).abs() > eps).count() as f64 / r.len().max(1) as f64;
    Ok(((obj.mean_all()? * -1.0)?, frac))
}

/// Per-token rewards of one response: −β·(logp − ref) at each token, plus `score` at the last.
pub fn token_rewards(logp: &[f32], reference: &[f32], beta: f64, score: f64) -> Vec<f64> {
    let mut r: Vec<f64> = logp.iter().zip(reference).map(|(a, b)| -beta * (*a as f64 - *b as f64)).collect();
    if let Some(l) = r.last_mut() {
        *l += score;
    }
    r
}

/// Returns to go, G_t = Σ_{t'≥t} r_t' (γ = 1).
pub fn returns(r: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; r.len()];
    let mut acc = 0.0;
    for t in (0..r.len()).rev() {
        acc += r[t];
        g[t] = acc;
    }
    g
}

pub struct Rlhf {
    params: Params,
    policy: Gpt,
    value: Linear,
    /// the frozen SFT model (its own Params, never trained)
    reference: Gpt,
    ref_params: Params,
    reward: Option<RewardNet>,
    text: CharText,
    cfg: Config,
    device: Device,
}

/// A rollout: sequences (B, P+R), old and reference log-probs, scores.
struct Rollout {
    seqs: Tensor,
    old: Vec<Vec<f32>>,
    reference: Vec<Vec<f32>>,
    reward: Vec<f64>,
    labeler: Vec<f64>,
}

impl Rlhf {
    fn rollout(&self, prompts: &[Vec<u32>], rng: &mut Rng) -> Result<Rollout> {
        let r = self.cfg.data.response_len;
        let resp = generate(&self.policy, prompts, r, 1.0, rng)?;
        let full: Vec<Vec<u32>> = prompts.iter().zip(&resp).map(|(p, y)| [p.as_slice(), y].concat()).collect();
        let seqs = rows(&full, &self.device)?;
        let old = response_logprobs(&self.policy, &seqs, r)?.to_vec2::<f32>()?;
        let reference = response_logprobs(&self.reference, &seqs, r)?.to_vec2::<f32>()?;
        let labeler: Vec<f64> = resp.iter().map(|y| score(&self.text.decode(y))).collect();
        let reward = match &self.reward {
            Some(rm) => rm.reward(&seqs)?.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
            None => labeler.clone(),
        };
        Ok(Rollout { seqs, old, reference, reward, labeler })
    }

    /// Mean over sequences of Σ_t (log π − log π_SFT): a sampled estimate of KL(π ‖ π_SFT).
    fn kl(ro: &Rollout) -> f64 {
        let s: f64 =
            ro.old.iter().zip(&ro.reference).flat_map(|(a, b)| a.iter().zip(b)).map(|(a, b)| (a - b) as f64).sum();
        s / ro.old.len().max(1) as f64
    }

    /// The policy and value losses of a rollout with the current parameters (values (B, R) of
    /// the detached hidden states at the positions that emit each response token).
    fn losses(&self, ro: &Rollout) -> Result<(Tensor, f64, Tensor)> {
        let d = &self.cfg.data;
        let (b, t) = ro.seqs.dims2()?;
        let r = d.response_len;
        let mut g_all = vec![];
        for i in 0..b {
            g_all.extend(returns(&token_rewards(&ro.old[i], &ro.reference[i], d.kl_coef, ro.reward[i])));
        }
        let x = ro.seqs.narrow(1, 0, t - 1)?.contiguous()?;
        let (h, _) = hidden_and_logits(&self.policy, &x)?;
        let v = self.value.forward(&h.detach().narrow(1, t - 1 - r, r)?)?.squeeze(2)?; // (B, R)
        let vv: Vec<f32> = v.flatten_all()?.to_vec1()?;
        let adv: Vec<f64> = g_all.iter().zip(&vv).map(|(g, v)| g - *v as f64).collect();
        let mean = adv.iter().sum::<f64>() / adv.len() as f64;
        let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / adv.len() as f64).sqrt().max(1e-8);
        let adv: Vec<f32> = adv.iter().map(|a| ((a - mean) / std) as f32).collect();
        let adv = Tensor::from_vec(adv, (b, r), &self.device)?;
        let old = Tensor::from_vec(ro.old.concat(), (b, r), &self.device)?;
        let logp = response_logprobs(&self.policy, &ro.seqs, r)?;
        let (pl, frac) = clipped_loss(&logp, &old, &adv, d.clip)?;
        let g = Tensor::from_vec(g_all.iter().map(|x| *x as f32).collect::<Vec<_>>(), (b, r), &self.device)?;
        let vl = (v - g)?.sqr()?.mean_all()?;
        Ok((pl, frac, vl))
    }

    /// Next-character NLL of the policy on fixed validation windows of the SFT data.
    fn sft_nll(&self) -> Result<f64> {
        let ids = self.text.part(TextSplit::Val);
        let t = self.cfg.model.block;
        let starts = crate::milestones::charlm::eval_starts(ids.len(), t + 1, 64);
        let w: Vec<Vec<u32>> = starts.iter().map(|&s| ids[s..s + t + 1].to_vec()).collect();
        let w = rows(&w, &self.device)?;
        let logits = self.policy.forward(&w.narrow(1, 0, t)?.contiguous()?)?;
        let y = w.narrow(1, 1, t)?.flatten_all()?;
        Ok(crate::nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64)
    }
}

impl Experiment for Rlhf {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        1
    }

    fn groups(&self) -> Vec<Group> {
        let policy = ["wte.", "wpe.", "h.", "ln_f.", "head."].iter().map(|s| s.to_string()).collect();
        vec![Group { name: "policy", prefixes: policy }, Group { name: "value", prefixes: vec!["value.".into()] }]
    }

    fn train_step(&mut self, _step: usize, rng: &mut Rng, up: &mut dyn Updater) -> Result<()> {
        let prompts = self.cfg.data.random_prompts(&self.text, rng, self.cfg.train.batch_size);
        let ro = self.rollout(&prompts, rng)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let metrics = Metrics::from([
            ("reward".to_string(), mean(&ro.reward)),
            ("score".to_string(), mean(&ro.labeler)),
            ("kl".to_string(), Self::kl(&ro)),
        ]);
        let (pl, frac, vl) = self.losses(&ro)?;
        let mut m = metrics.clone();
        m.insert("clipped".into(), frac);
        up.update("policy", TrainOut { loss: pl, metrics: m })?;
        for _ in 1..self.cfg.data.ppo_epochs.max(1) {
            let (pl, frac, _) = self.losses(&ro)?;
            up.update("policy", TrainOut { loss: pl, metrics: Metrics::from([("clipped".to_string(), frac)]) })?;
        }
        up.update("value", TrainOut { loss: vl, metrics: Metrics::new() })?;
        Ok(())
    }

    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        // one loss that reaches every parameter (for gradient checks): policy plus value loss
        let prompts = self.cfg.data.random_prompts(&self.text, rng, self.cfg.train.batch_size);
        let ro = self.rollout(&prompts, rng)?;
        let (pl, _, vl) = self.losses(&ro)?;
        Ok(TrainOut { loss: (pl + vl)?, metrics: Metrics::new() })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let d = &self.cfg.data;
        let prompts = d.fixed_prompts(&self.text, TextSplit::Val, d.eval_prompts);
        let mut rng = Rng::derive(0, "rlhf/eval", split as u64);
        let ro = self.rollout(&prompts, &mut rng)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let kl = Self::kl(&ro);
        // `loss`: the negated objective PPO maximises, β·KL − reward (the labeler's score when
        // built without a reward model), so it falls as RLHF works
        let mut m = Metrics::from([
            ("score".to_string(), mean(&ro.labeler)),
            ("kl".to_string(), kl),
            ("loss".to_string(), d.kl_coef * kl - mean(&ro.reward)),
            ("sft_loss".to_string(), self.sft_nll()?),
        ]);
        if self.reward.is_some() {
            m.insert("reward".into(), mean(&ro.reward));
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::Temperature]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let d = &self.cfg.data;
        let temp = req.temperature.unwrap_or(1.0);
        anyhow::ensure!(temp > 0.0, crate::error::DlError::Usage("--temperature must be positive".into()));
        let prompts = match &req.prompt {
            Some(p) => {
                let ids = self.text.encode(p)?;
                anyhow::ensure!(
                    !ids.is_empty() && ids.len() + d.response_len <= self.cfg.model.block,
                    crate::error::DlError::Usage(format!(
                        "--prompt must have 1 to {} characters",
                        self.cfg.model.block - d.response_len
                    ))
                );
                vec![ids; req.n_or(1)]
            }
            None => d.fixed_prompts(&self.text, TextSplit::Val, req.n_or(4)),
        };
        let state = rng.state();
        let before = generate(&self.reference, &prompts, d.response_len, temp, rng)?;
        let after = generate(&self.policy, &prompts, d.response_len, temp, &mut Rng::from_state(state))?;
        let mut text =
            format!("the same prompts, the SFT model then the RLHF policy (labeler: count of '{}')\n", super::TARGET);
        let mut items = vec![];
        for ((p, b), a) in prompts.iter().zip(&before).zip(&after) {
            let (p, b, a) = (self.text.decode(p), self.text.decode(b), self.text.decode(a));
            text.push_str(&format!(
                "prompt {p:?}\n  sft  {b:?} (score {})\n  rlhf {a:?} (score {})\n",
                score(&b),
                score(&a)
            ));
            items.push(
                serde_json::json!({"prompt": p, "sft": b, "rlhf": a, "sft_score": score(&b), "rlhf_score": score(&a)}),
            );
        }
        Ok(SampleOut::new(text, serde_json::json!({"samples": items, "temperature": temp})))
    }

    fn needs(&self) -> Vec<Need> {
        vec![self.cfg.data.sft_need(), self.cfg.data.reward_need()]
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        let map = trained.tensors().into_iter().collect();
        let load = |p: &Params| p.load_matching(&map).map_err(|e| anyhow::anyhow!("rlhf: loading the {key} run: {e}"));
        match key {
            "sft" => {
                load(&self.params)?;
                load(&self.ref_params)?;
            }
            "reward" => {
                let p = Params::new(0);
                let rm = RewardNet::new(&self.model_cfg(), &p, &self.device)?;
                load(&p)?;
                self.reward = Some(rm);
            }
            _ => anyhow::bail!("rlhf: unknown need `{key}`"),
        }
        Ok(())
    }

    fn data_name(&self) -> String {
        self.cfg.data.text.clone()
    }
}

impl Rlhf {
    fn model_cfg(&self) -> ModelCfg {
        ModelCfg { vocab: self.text.vocab_size(), ..self.cfg.model.clone() }
    }
}

pub fn defaults() -> Config {
    let mut train = crate::config::TrainConfig {
        steps: 150,
        batch_size: 32,
        lr: 1e-4,
        eval_every: 25,
        ckpt_every: 0,
        clip_grad_norm: 1.0,
        ..Default::default()
    }
    .with_groups(&["policy", "value"]);
    train.groups.get_mut("value").expect("declared above").lr = Some(1e-3);
    Config { train, data: RlhfCfg::default(), model: super::model_defaults() }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let (text, notice) = crate::data::text::load_text(&c.data.text)?;
    if let Some(n) = notice {
        anyhow::bail!("rlhf needs its text: {n}");
    }
    c.data.check(&c.model)?;
    let m = ModelCfg { vocab: text.vocab_size(), ..c.model.clone() };
    let params = Params::new(c.train.seed);
    let policy = gpt(&m, &params, device)?;
    let value = linear(m.n_embd, 1, InitKind::Default, params.vb(device).pp("value"))?;
    // the same seed and names: the reference starts equal to the policy (until `attach`)
    let ref_params = Params::new(c.train.seed);
    let reference = gpt(&m, &ref_params, device)?;
    Ok(Box::new(Rlhf {
        params,
        policy,
        value,
        reference,
        ref_params,
        reward: None,
        text,
        cfg: c.clone(),
        device: device.clone(),
    }))
}

pub static FAMILY: Family =
    Family { id: "rlhf", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;

    /// The clipped objective on a small example: A > 0 stops gaining past 1 + ε, A < 0 past
    /// 1 − ε; inside the range it is ρ·A.
    #[test]
    fn the_clipped_objective_caps_the_ratio_in_the_advantages_direction() -> Result<()> {
        let dev = Device::Cpu;
        let ratios = [1.5f64, 0.5, 1.1, 0.5, 1.5];
        let adv = [1.0f32, -1.0, 2.0, 1.0, -1.0];
        let logp = Tensor::from_vec(ratios.iter().map(|r| r.ln() as f32).collect::<Vec<_>>(), 5, &dev)?;
        let old = Tensor::zeros(5, candle_core::DType::F32, &dev)?;
        let (loss, frac) = clipped_loss(&logp, &old, &Tensor::new(&adv, &dev)?, 0.2)?;
        // min(ρA, clip(ρ)A): 1.2, −0.8, 2.2, 0.5, −1.5
        let want = -(1.2 - 0.8 + 2.2 + 0.5 - 1.5) / 5.0;
        assert!((loss.to_scalar::<f32>()? as f64 - want).abs() < 1e-5, "{loss} vs {want}");
        assert_eq!(frac, 4.0 / 5.0);
        Ok(())
    }

    /// The KL penalty and returns: Σ_t (log π − log π_ref) over samples from π estimates
    /// KL(π ‖ π_ref); on two categorical distributions, weighting each outcome by its
    /// probability gives exactly the closed form Σ p log(p/q).
    #[test]
    fn the_kl_penalty_matches_the_closed_form_and_returns_sum_it() {
        let (p, q) = ([0.7f64, 0.2, 0.1], [0.4f64, 0.4, 0.2]);
        let closed: f64 = p.iter().zip(&q).map(|(a, b)| a * (a / b).ln()).sum();
        let est: f64 = (0..3)
            .map(|i| {
                let r = token_rewards(&[p[i].ln() as f32], &[q[i].ln() as f32], 1.0, 0.0);
                -p[i] * r[0]
            })
            .sum();
        assert!((est - closed).abs() < 1e-6, "{est} vs {closed}");
        let r = token_rewards(&[-1.0, -2.0], &[-1.5, -1.0], 0.1, 3.0);
        assert!((r[0] + 0.05).abs() < 1e-9 && (r[1] - (0.1 + 3.0)).abs() < 1e-9, "{r:?}");
        assert_eq!(returns(&[1.0, 2.0, 3.0]), vec![6.0, 5.0, 3.0]);
    }
}
