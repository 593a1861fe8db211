//! `dalle`: text-to-image as language modelling (Ramesh et al. 2021) at toy scale. A trained
//! `vq-vae` turns each 28x28 digit into 7x7 = 49 codes; one causal transformer (`gpt`'s model)
//! reads a short caption and then the image's codes as one sequence, [text | image], and learns
//! to predict each code from the caption and the codes before it. To draw: write the caption,
//! sample 49 codes one at a time, decode them with the VQ-VAE. DALL·E then ranks its samples by
//! CLIP's score for the caption and keeps the best; here a trained `clip` does the same.
//! Measured by a trained `lenet`: the fraction of images drawn for "a handwritten N" that it
//! labels N. Needs three runs (trained on demand and kept): vq-vae, lenet, clip. Drawing in
//! `gen.rs`.

pub mod gen;

use super::gpt::{gpt, Gpt, GptInit, ModelCfg as GptCfg};
use super::vae::load_images;
use super::{from_table, lenet, to_table, vqvae, Family};
use crate::config::{OptimKind, ScheduleKind, TrainConfig};
use crate::data::vision::Splits;
use crate::experiment::{Experiment, Metrics, Need, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (resized to 28x28; mnist falls back to it when not fetched)
    pub dataset: String,
    /// the tokenizer: a `vq-vae` run, as MILESTONE[:KEY=VALUE…] on top of its preset
    pub vq_net: String,
    /// the judge: a `lenet` run that labels the drawn images
    pub classifier: String,
    /// the reranker: a `clip` run ("" = no reranking)
    pub clip: String,
    /// images drawn per class at each evaluation (test: the claim's)
    pub eval_per_class: usize,
    /// candidates per kept image when reranking with CLIP (DALL·E: 512; 1 = no reranking)
    pub rerank: usize,
}

pub type Config = super::Config<DataCfg, GptCfg>;

/// Caption tokens before the image's codes (captions are padded to it).
pub const TEXT_LEN: usize = 3;
/// Codes per image (the VQ-VAE's 7x7 grid).
pub const CODES: usize = vqvae::VqVaeNet::GRID * vqvae::VqVaeNet::GRID;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 3000,
            batch_size: 32,
            optimizer: OptimKind::Adamw,
            lr: 1e-3,
            beta2: 0.99,
            weight_decay: 0.1,
            warmup_steps: 100,
            schedule: ScheduleKind::Cosine,
            min_lr: 1e-4,
            clip_grad_norm: 1.0,
            eval_every: 1000,
            ..Default::default()
        },
        data: DataCfg {
            dataset: "mnist".into(),
            vq_net: "vq-vae".into(),
            classifier: "lenet".into(),
            clip: "clip".into(),
            eval_per_class: 20,
            rerank: 4,
        },
        // the vocabulary is set by `build` (caption words, then the codes)
        model: GptCfg { vocab: 0, block: TEXT_LEN + CODES - 1, init: GptInit::Gpt2, ..Default::default() },
    }
}

pub struct Dalle {
    pub model: Gpt,
    pub params: Params,
    pub data: Splits,
    pub cfg: Config,
    /// the VQ-VAE (random until the trained one is attached) and its codebook size
    vq: vqvae::VqVaeNet,
    /// every training image's 49 codes, made on first use with the attached VQ-VAE
    codes: Option<Vec<u32>>,
    judge: Option<lenet::LeNet>,
    clip: Option<super::clip::Clip>,
    device: Device,
}

pub fn build(c: &Config, device: &Device) -> anyhow::Result<Dalle> {
    let data = load_images(&c.data.dataset, 0)?;
    let vq_cfg = vqvae::ModelCfg::default();
    let vq = vqvae::net(&vq_cfg, &Params::new(0), device)?;
    let mut cfg = c.clone();
    cfg.model.vocab = gen::WORDS.len() + vq_cfg.codes;
    cfg.model.block = TEXT_LEN + CODES - 1;
    let params = Params::new(c.train.seed);
    let model = gpt(&cfg.model, &params, device)?;
    Ok(Dalle { model, params, data, cfg, vq, codes: None, judge: None, clip: None, device: device.clone() })
}

pub static FAMILY: Family = Family {
    id: "dalle",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(build(&from_table::<Config>(t)?, d)?)),
};

/// A need given as MILESTONE[:KEY=VALUE…] ("" = none), with data.dataset when `dataset` is set.
fn need(key: &'static str, spec: &str, dataset: Option<&str>, why: &str) -> Option<Need> {
    let mut parts = spec.split(':').filter(|p| !p.is_empty());
    let milestone = parts.next()?.to_string();
    let mut sets: Vec<String> = parts.map(str::to_string).collect();
    sets.extend(dataset.map(|d| format!("data.dataset={d}")));
    Some(Need { key, milestone, sets, why: why.into() })
}

impl Dalle {
    /// The training images' codes, made once (with whichever VQ-VAE is attached by then).
    fn codes(&mut self) -> Result<&[u32]> {
        if self.codes.is_none() {
            let set = &self.data.train;
            let mut all = Vec::with_capacity(set.len() * CODES);
            for start in (0..set.len()).step_by(500) {
                let idx: Vec<usize> = (start..(start + 500).min(set.len())).collect();
                let x = vqvae::image_batch(set, &idx, &self.device)?;
                all.extend(self.vq.encode(&x)?.flatten_all()?.to_vec1::<u32>()?);
            }
            self.codes = Some(all);
        }
        Ok(self.codes.as_deref().expect("made above"))
    }
}

impl Experiment for Dalle {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        (self.data.train.len() / self.cfg.train.batch_size).max(1)
    }

    /// A batch of (caption, codes) sequences: each training image with a caption of its class
    /// from a random template; the loss is on the 49 codes only (the caption is given).
    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let b = self.cfg.train.batch_size;
        let n = self.data.train.len();
        let idx: Vec<usize> = (0..b).map(|_| rng.below(n)).collect();
        let labels: Vec<u8> = idx.iter().map(|&i| self.data.train.labels[i]).collect();
        let codes = self.codes()?.to_vec();
        let seqs: Vec<Vec<u32>> = idx
            .iter()
            .zip(&labels)
            .map(|(&i, &l)| {
                let text = gen::encode_words(&gen::caption(l as usize, rng.below(gen::TEMPLATES.len())))
                    .expect("templates use known words");
                gen::sequence(&text, &codes[i * CODES..(i + 1) * CODES])
            })
            .collect();
        let loss = gen::code_loss(&self.model, &seqs, &self.device)?;
        Ok(TrainOut { loss, metrics: Metrics::new() })
    }

    /// loss: the code cross-entropy of the split's images under "a handwritten N"; with the
    /// judge attached, acc (the fraction of `eval_per_class` images drawn per class that lenet
    /// labels as prompted) and, at test with CLIP attached, acc_rerank (the best of `rerank`
    /// candidates per image by CLIP's score).
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = if split == Split::Val { &self.data.val } else { &self.data.test };
        let n = set.len().min(500);
        let idx: Vec<usize> = (0..n).collect();
        let x = vqvae::image_batch(set, &idx, &self.device)?;
        let codes = self.vq.encode(&x)?.flatten_all()?.to_vec1::<u32>()?;
        let seqs: Vec<Vec<u32>> = (0..n)
            .map(|i| {
                let text = gen::encode_words(&gen::caption(set.labels[i] as usize, 0)).expect("known words");
                gen::sequence(&text, &codes[i * CODES..(i + 1) * CODES])
            })
            .collect();
        let mut m = Metrics::from([(
            "loss".to_string(),
            gen::code_loss(&self.model, &seqs, &self.device)?.to_scalar::<f32>()? as f64,
        )]);
        if self.judge.is_some() {
            let mut rng = Rng::derive(0xda11e, "eval", split as u64);
            let per = self.cfg.data.eval_per_class;
            m.insert("acc".into(), gen::accuracy(self, per, 1, &mut rng)?);
            if split == Split::Test && self.clip.is_some() && self.cfg.data.rerank > 1 {
                m.insert("acc_rerank".into(), gen::accuracy(self, per, self.cfg.data.rerank, &mut rng)?);
            }
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::Temperature, SampleOpt::TopK]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        gen::sample(self, req, rng)
    }

    fn needs(&self) -> Vec<Need> {
        let d = &self.cfg.data;
        let ds = Some(self.data.name.as_str());
        [
            need("vq", &d.vq_net, ds, "the image tokenizer (7x7 codes per digit)"),
            need("judge", &d.classifier, ds, "the classifier that labels the drawn digits"),
            need("clip", &d.clip, None, "the reranker of the drawn images"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        let map = trained.tensors().into_iter().collect();
        match key {
            "vq" => {
                let p = Params::new(0);
                self.vq = vqvae::net(&vqvae::ModelCfg::default(), &p, &self.device)?;
                p.load(&map)
                    .map_err(|m| anyhow::anyhow!("dalle: the tokenizer is the vq-vae at its default shape: {m}"))?;
                self.codes = None;
            }
            "judge" => {
                let p = Params::new(0);
                self.judge = Some(lenet::lenet(&lenet::ModelCfg::default(), &p, &self.device)?);
                p.load(&map).map_err(|m| anyhow::anyhow!("dalle: the judge is LeNet-5 at its default shape: {m}"))?;
            }
            "clip" => self.clip = Some(gen::clip_from(&self.cfg.data.clip, trained, &self.device)?),
            other => anyhow::bail!("dalle: unknown need `{other}`"),
        }
        Ok(())
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    #[test]
    fn trains_on_codes_of_a_random_tokenizer_and_every_parameter_gets_a_gradient() -> anyhow::Result<()> {
        let mut c = defaults();
        c.train.batch_size = 4;
        c.data.dataset = "digits8".into();
        c.model = GptCfg { n_layer: 1, n_embd: 16, n_head: 2, ..c.model };
        let mut d = build(&c, &Device::Cpu)?;
        let out = d.train_loss(0, &mut Rng::new(1))?;
        assert_every_param_gets_a_gradient(&d.params, &out.loss)?;
        let m = d.evaluate(Split::Val)?;
        assert!(m["loss"].is_finite() && !m.contains_key("acc"), "{m:?}");
        Ok(())
    }
}
