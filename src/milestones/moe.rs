//! `moe` and `dense` (Shazeer, Mirhoseini, Maziarz, Davis, Le, Hinton & Dean 2017, "Outrageously
//! large neural networks: the sparsely-gated mixture-of-experts layer"): a char-LM whose LSTM
//! is followed by a feed-forward layer with a residual connection, y = h + FFN(h). In `moe`
//! the FFN is a sparsely-gated mixture of 8 experts of which each character uses the top 2
//! (nn::moe); in `dense` it is one MLP whose hidden width is 2 experts' worth, so both spend
//! the same multiply-adds per character (the gate's C·E aside) while `moe` holds 4x the FFN
//! parameters. The paper puts its MoE between stacked LSTM layers the same way.

use super::charlm::{CharModel, TextCfg, TrainForward};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Metrics};
use crate::nn::activation::Activation;
use crate::nn::embedding::{embedding, Embedding};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::nn::lstm::{lstm, Lstm};
use crate::nn::mlp::Mlp;
use crate::nn::moe::{moe, Moe};
use crate::params::Params;
use candle_core::{Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FfnKind {
    Moe,
    Dense,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// character embedding width
    pub embed: usize,
    /// LSTM hidden units H (the FFN's width in and out)
    pub hidden: usize,
    /// moe: top-k of `experts` experts | dense: one MLP of k·expert_hidden units
    pub ffn: FfnKind,
    pub experts: usize,
    /// experts per character
    pub k: usize,
    /// hidden units of one expert
    pub expert_hidden: usize,
    /// weight of the importance loss CV(Importance)² (0 = no balancing)
    pub balance: f64,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { embed: 32, hidden: 128, ffn: FfnKind::Moe, experts: 8, k: 2, expert_hidden: 128, balance: 0.1 }
    }
}

pub type Config = super::Config<TextCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 1500,
            batch_size: 32,
            lr: 3e-3,
            clip_grad_norm: 1.0,
            eval_every: 250,
            ..Default::default()
        },
        data: TextCfg::default(),
        model: ModelCfg::default(),
    }
}

pub enum Ffn {
    Moe(Moe, f64),
    Dense(Mlp),
}

pub struct CharMoe {
    pub embed: Embedding,
    pub lstm: Lstm,
    pub ffn: Ffn,
    pub head: Linear,
}

/// Parameters: `embed.weight`, `lstm.*`, `ffn.*` (moe: `ffn.gate.weight`, `ffn.expert.{e}.*`;
/// dense: `ffn.fc0.*`, `ffn.fc1.*`), `head.*`.
pub fn char_moe(cfg: &ModelCfg, vocab: usize, params: &Params, device: &Device) -> Result<CharMoe> {
    let vb = params.vb(device);
    let h = cfg.hidden;
    let ffn = match cfg.ffn {
        FfnKind::Moe => Ffn::Moe(moe(h, cfg.expert_hidden, cfg.experts, cfg.k, vb.pp("ffn"))?, cfg.balance),
        FfnKind::Dense => {
            Ffn::Dense(Mlp::new(&[h, cfg.k * cfg.expert_hidden, h], Activation::Relu, InitKind::Default, vb.pp("ffn"))?)
        }
    };
    Ok(CharMoe {
        embed: embedding(vocab, cfg.embed, 1.0, vb.pp("embed"))?,
        lstm: lstm(cfg.embed, h, true, vb.pp("lstm"))?,
        ffn,
        head: linear(h, vocab, InitKind::Default, vb.pp("head"))?,
    })
}

impl CharMoe {
    /// tokens (B, T) -> (logits (B·T, V), weighted balance loss, expert load per slot)
    fn run(&self, tokens: &Tensor) -> Result<(Tensor, Option<Tensor>, Vec<f64>)> {
        let (b, t) = tokens.dims2()?;
        let h = self.lstm.forward(&self.embed.forward(tokens)?)?.reshape((b * t, self.lstm.hidden))?; // (B·T, H)
        let (y, aux, load) = match &self.ffn {
            Ffn::Moe(m, w) => {
                let out = m.forward(&h)?;
                (out.y, Some((out.balance * *w)?), out.load)
            }
            Ffn::Dense(mlp) => (mlp.forward(&h)?, None, vec![]),
        };
        Ok((self.head.forward(&(h + y)?)?, aux, load))
    }
}

/// Load statistics of one routing: the busiest and idlest expert's share relative to an even
/// split (1.0 = even), and the coefficient of variation of the shares.
pub fn load_metrics(load: &[f64]) -> Metrics {
    if load.is_empty() {
        return Metrics::new();
    }
    let e = load.len() as f64;
    let mean = 1.0 / e;
    let cv = (load.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / e).sqrt() / mean;
    let max = load.iter().cloned().fold(0.0, f64::max);
    let min = load.iter().cloned().fold(1.0, f64::min);
    Metrics::from([("load_max".to_string(), max * e), ("load_min".to_string(), min * e), ("load_cv".to_string(), cv)])
}

impl CharModel for CharMoe {
    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(self.run(tokens)?.0)
    }

    fn forward_train(&self, tokens: &Tensor) -> Result<TrainForward> {
        let (logits, aux, load) = self.run(tokens)?;
        Ok(TrainForward { logits, aux, metrics: load_metrics(&load) })
    }

    fn logits_and_probe(&self, tokens: &Tensor) -> Result<(Tensor, Metrics)> {
        let (logits, _, load) = self.run(tokens)?;
        Ok((logits, load_metrics(&load)))
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let m = &c.model;
    if m.hidden == 0 || m.embed == 0 || m.expert_hidden == 0 || m.experts == 0 {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "[model]".into(),
            message: "embed, hidden, experts and expert_hidden must be at least 1".into()
        });
    }
    let params = Params::new(c.train.seed);
    let p = params.clone();
    c.data.char_lm(&c.train, params, device, |vocab| char_moe(m, vocab, &p, device))
}

pub static FAMILY: Family =
    Family { id: "moe", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::rng::Rng;

    #[test]
    fn moe_and_dense_spend_the_same_expert_multiply_adds_per_character() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = ModelCfg::default();
        let (pm, pd) = (Params::new(1), Params::new(1));
        char_moe(&cfg, 20, &pm, &dev)?;
        char_moe(&ModelCfg { ffn: FfnKind::Dense, ..cfg.clone() }, 20, &pd, &dev)?;
        let ffn = |p: &Params| -> usize {
            p.trainable()
                .iter()
                .filter(|(n, _)| n.starts_with("ffn.") && !n.contains("gate"))
                .map(|(_, v)| v.elem_count())
                .sum()
        };
        // dense: H·kh + kh + kh·H + H; moe: E experts of H·h + h + h·H + H, k of them active
        let (h, eh, e, k) = (cfg.hidden, cfg.expert_hidden, cfg.experts, cfg.k);
        assert_eq!(ffn(&pd), 2 * h * k * eh + k * eh + h);
        assert_eq!(ffn(&pm), e * (2 * h * eh + eh + h));
        Ok(())
    }

    #[test]
    fn load_metrics_of_an_even_and_a_skewed_routing() {
        let even = load_metrics(&[0.25; 4]);
        assert!((even["load_max"] - 1.0).abs() < 1e-12 && even["load_cv"].abs() < 1e-12);
        // shares (1/2, 1/2, 0, 0): busiest 2x even, idlest 0, CV = 1
        let skew = load_metrics(&[0.5, 0.5, 0.0, 0.0]);
        assert_eq!((skew["load_max"], skew["load_min"]), (2.0, 0.0));
        assert!((skew["load_cv"] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn every_parameter_gets_a_gradient_in_both_variants() -> Result<()> {
        let dev = Device::Cpu;
        for ffn in [FfnKind::Moe, FfnKind::Dense] {
            let cfg = ModelCfg { embed: 8, hidden: 16, expert_hidden: 8, experts: 4, ffn, ..Default::default() };
            let p = Params::new(2);
            let net = char_moe(&cfg, 11, &p, &dev)?;
            let mut rng = Rng::new(5);
            let ids: Vec<u32> = (0..4 * 17).map(|_| rng.below(11) as u32).collect();
            let ids = Tensor::from_vec(ids, (4, 17), &dev)?;
            let out = net.forward_train(&ids.narrow(1, 0, 16)?)?;
            let y = ids.narrow(1, 1, 16)?.flatten_all()?;
            let mut loss = crate::nn::loss::cross_entropy(&out.logits, &y)?;
            if let Some(aux) = out.aux {
                loss = (loss + aux)?;
            }
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }
}
