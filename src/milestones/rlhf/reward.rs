//! `reward-model`: the SFT transformer with a scalar head on the last position's final hidden
//! state, started from an `sft` run (its `head` to the vocabulary is unused and frozen), trained
//! with the Bradley–Terry loss −log σ(r(preferred) − r(other)) on pairs ranked by the scripted
//! labeler (`super::score`). A pair: a prompt cut from the text, the text's own continuation,
//! and the continuation of another random place; the labeler prefers the one with more `e`s
//! (ties are redrawn). Validation: the loss and pairwise accuracy on fixed pairs of the
//! validation split.

use super::{hidden_and_logits, rows, score, Config, RlhfCfg};
use crate::data::text::{CharText, TextSplit};
use crate::experiment::{Experiment, Metrics, Need, Split, TrainOut};
use crate::milestones::gpt::{gpt, Gpt};
use crate::milestones::{from_table, to_table, Family};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};

/// A learned reward: the gpt trunk and a scalar head.
pub struct RewardNet {
    pub net: Gpt,
    pub head: Linear,
}

impl RewardNet {
    /// Parameters: the gpt's names (as `sft`'s, so its runs load) and `rm_head.*`.
    pub fn new(m: &crate::milestones::gpt::ModelCfg, params: &Params, device: &Device) -> Result<Self> {
        let net = gpt(m, params, device)?;
        let head = linear(m.n_embd, 1, InitKind::Default, params.vb(device).pp("rm_head"))?;
        Ok(Self { net, head })
    }

    /// Rewards (B,) of whole sequences (B, T): the head on the last position's hidden state.
    pub fn reward(&self, seqs: &Tensor) -> Result<Tensor> {
        let t = seqs.dim(1)?;
        let (h, _) = hidden_and_logits(&self.net, seqs)?;
        self.head.forward(&h.narrow(1, t - 1, 1)?.squeeze(1)?)?.squeeze(1)
    }
}

/// −mean log σ(r_w − r_l), the Bradley–Terry loss, computed stably as mean softplus(r_l − r_w).
pub fn bradley_terry(r_w: &Tensor, r_l: &Tensor) -> Result<Tensor> {
    let d = (r_l - r_w)?;
    (d.relu()? + ((d.abs()? * -1.0)?.exp()? + 1.0)?.log()?)?.mean_all()
}

/// `n` labelled pairs from `split`: (prompt + preferred, prompt + other) rows.
pub fn pairs(
    cfg: &RlhfCfg,
    text: &CharText,
    split: TextSplit,
    rng: &mut Rng,
    n: usize,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let ids = text.part(split);
    let (p, r) = (cfg.prompt_len, cfg.response_len);
    let last = ids.len() - p - r;
    let (mut win, mut lose) = (vec![], vec![]);
    while win.len() < n {
        let s = rng.below(last);
        let o = rng.below(last);
        let (own, other) = (&ids[s + p..s + p + r], &ids[o + p..o + p + r]);
        let (a, b) = (score(&text.decode(own)), score(&text.decode(other)));
        if a == b {
            continue;
        }
        let (w, l) = if a > b { (own, other) } else { (other, own) };
        win.push([&ids[s..s + p], w].concat());
        lose.push([&ids[s..s + p], l].concat());
    }
    (win, lose)
}

pub struct RewardModel {
    params: Params,
    rm: RewardNet,
    text: CharText,
    cfg: Config,
    device: Device,
}

impl RewardModel {
    fn loss_acc(&self, win: &[Vec<u32>], lose: &[Vec<u32>]) -> Result<(Tensor, f64)> {
        let n = win.len();
        let all = [win, lose].concat();
        let r = self.rm.reward(&rows(&all, &self.device)?)?;
        let (rw, rl) = (r.narrow(0, 0, n)?, r.narrow(0, n, n)?);
        let acc = rw.gt(&rl)?.to_dtype(candle_core::DType::F32)?.mean_all()?.to_scalar::<f32>()? as f64;
        Ok((bradley_terry(&rw, &rl)?, acc))
    }
}

impl Experiment for RewardModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        (self.text.part(TextSplit::Train).len()
            / (self.cfg.data.prompt_len + self.cfg.data.response_len)
            / self.cfg.train.batch_size.max(1))
        .max(1)
    }

    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let (w, l) = pairs(&self.cfg.data, &self.text, TextSplit::Train, rng, self.cfg.train.batch_size);
        let (loss, acc) = self.loss_acc(&w, &l)?;
        Ok(TrainOut { loss, metrics: Metrics::from([("acc".to_string(), acc)]) })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        // the text has one held-out split: validation and test score the same fixed pairs
        let mut rng = Rng::derive(0, "reward-model/eval", split as u64);
        let (w, l) = pairs(&self.cfg.data, &self.text, TextSplit::Val, &mut rng, 4 * self.cfg.data.eval_prompts);
        let (loss, acc) = self.loss_acc(&w, &l)?;
        Ok(Metrics::from([("loss".to_string(), loss.to_scalar::<f32>()? as f64), ("acc".to_string(), acc)]))
    }

    fn needs(&self) -> Vec<Need> {
        vec![self.cfg.data.sft_need()]
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        anyhow::ensure!(key == "sft", "reward-model: unknown need `{key}`");
        let map = trained.tensors().into_iter().collect();
        self.params.load_matching(&map).map_err(|e| anyhow::anyhow!("reward-model: loading the sft run: {e}"))?;
        Ok(())
    }

    fn data_name(&self) -> String {
        self.cfg.data.text.clone()
    }
}

pub fn defaults() -> Config {
    let train = crate::config::TrainConfig {
        steps: 400,
        batch_size: 32,
        lr: 1e-3,
        eval_every: 100,
        ckpt_every: 0,
        ..Default::default()
    };
    Config { train, data: RlhfCfg::default(), model: super::model_defaults() }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let (text, notice) = crate::data::text::load_text(&c.data.text)?;
    if let Some(n) = notice {
        anyhow::bail!("reward-model needs its text: {n}");
    }
    c.data.check(&c.model)?;
    let params = Params::new(c.train.seed);
    let m = crate::milestones::gpt::ModelCfg { vocab: text.vocab_size(), ..c.model.clone() };
    let rm = RewardNet::new(&m, &params, device)?;
    params.freeze(&["head.".to_string()]).map_err(anyhow::Error::msg)?;
    Ok(Box::new(RewardModel { params, rm, text, cfg: c.clone(), device: device.clone() }))
}

pub static FAMILY: Family = Family {
    id: "reward-model",
    defaults: || to_table(&defaults()),
    build: |t, d| build(&from_table::<Config>(t)?, d),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// −log σ(Δ) on a small example, against the closed form.
    #[test]
    fn bradley_terry_is_minus_log_sigmoid_of_the_margin() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[2.0f32, -1.0, 30.0], &dev)?;
        let l = Tensor::new(&[0.5f32, 1.0, -30.0], &dev)?;
        let got = bradley_terry(&w, &l)?.to_scalar::<f32>()? as f64;
        let want = [1.5f64, -2.0, 60.0].iter().map(|d| (1.0 + (-d).exp()).ln()).sum::<f64>() / 3.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn pairs_prefer_the_response_the_labeler_scores_higher() {
        let text = CharText::new(&"the sea; a whale; here we see eve; old man; ".repeat(40));
        let cfg = RlhfCfg { prompt_len: 4, response_len: 6, ..Default::default() };
        let (w, l) = pairs(&cfg, &text, TextSplit::Train, &mut Rng::new(3), 50);
        for (a, b) in w.iter().zip(&l) {
            assert_eq!(a[..4], b[..4], "the same prompt");
            assert!(score(&text.decode(&a[4..])) > score(&text.decode(&b[4..])));
        }
    }
}
