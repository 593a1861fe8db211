//! `clip`: contrastive language–image pretraining (Radford et al. 2021) at toy scale. An image
//! tower and a text tower (`nn::clip`) map an image and a caption to unit vectors in one space;
//! the symmetric InfoNCE loss (`nn::contrastive`) pulls each image towards its own caption and
//! away from the other captions of the batch, with a learned temperature. Trained on emoji
//! (captions: name and keywords) and handwritten digits (captions from templates); measured by
//! retrieval between held-out emoji and their captions, and by zero-shot classification of
//! held-out digits: each test image gets the class whose caption "a handwritten N" (a template
//! never trained on) lies closest. Data in `data.rs`; samples in `sample.rs`.

pub mod data;
mod sample;

use super::{from_table, to_table, Family};
use crate::config::{ScheduleKind, TrainConfig};
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::clip::{pad_ids, ImageEncoder, TextEncoder};
use crate::nn::contrastive::{info_nce, recall_at_k, transpose};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use candle_nn::init::Init;
use data::{digit_caption, ClipData, Item, Spec, TRAIN_TEMPLATES, ZERO_SHOT};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// side of the square images (emoji are box-downscaled from 64; digits padded as 28 in 32)
    pub image_size: usize,
    /// held-out emoji for the retrieval test (a fixed split, the same for every seed)
    pub test_emoji: usize,
    /// emoji for the validation loss
    pub val_emoji: usize,
    /// training digits (a fixed subset; 0: all 55,000)
    pub train_digits: usize,
    /// held-out test digits for the zero-shot accuracy
    pub test_digits: usize,
    /// digits per training batch, beside batch_size − digits emoji (at most 10: one per class,
    /// so no two captions of a batch name the same digit)
    pub digits_per_batch: usize,
    /// caption words seen fewer times in training become <unk>
    pub min_count: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// channels of the image tower's stride-2 3x3 conv stages
    pub channels: Vec<usize>,
    /// width of the text tower's word embeddings and hidden layer
    pub text_width: usize,
    /// the shared embedding's dimension
    pub dim: usize,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 2000,
            batch_size: 128,
            lr: 2e-3,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 100,
            eval_every: 500,
            ..Default::default()
        },
        data: DataCfg {
            image_size: 32,
            test_emoji: 200,
            val_emoji: 100,
            train_digits: 5000,
            test_digits: 1000,
            digits_per_batch: 10,
            min_count: 1,
        },
        model: ModelCfg { channels: vec![32, 64, 128], text_width: 128, dim: 64 },
    }
}

/// CLIP's cap on the learned logit scale: exp(4.6052) = 100.
const MAX_LOG_SCALE: f64 = 4.6052;

pub struct Clip {
    pub image: ImageEncoder,
    pub text: TextEncoder,
    /// the log of the inverse temperature, ln(1/0.07) at first as CLIP's
    pub log_scale: Tensor,
    pub params: Params,
    pub data: ClipData,
    digits_per_batch: usize,
    batch: usize,
    device: Device,
}

pub fn build(c: &Config, device: &Device) -> anyhow::Result<Clip> {
    let d = &c.data;
    if d.digits_per_batch > 10 || d.digits_per_batch >= c.train.batch_size || d.image_size < 8 {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "data.digits_per_batch / data.image_size".into(),
            message: "need digits_per_batch ≤ 10 and below train.batch_size, and image_size ≥ 8".into(),
        });
    }
    let data = data::load(&Spec {
        image_size: d.image_size,
        test_emoji: d.test_emoji,
        val_emoji: d.val_emoji,
        train_digits: d.train_digits,
        test_digits: d.test_digits,
        min_count: d.min_count,
    })?;
    let params = Params::new(c.train.seed);
    let vb = params.vb(device);
    let m = &c.model;
    Ok(Clip {
        image: ImageEncoder::new(&m.channels, m.dim, vb.pp("image"))?,
        text: TextEncoder::new(data.words.len(), m.text_width, m.dim, vb.pp("text"))?,
        log_scale: vb.get_with_hints((), "log_scale", Init::Const((1.0f64 / 0.07).ln()))?,
        params,
        data,
        digits_per_batch: d.digits_per_batch,
        batch: c.train.batch_size,
        device: device.clone(),
    })
}

pub static FAMILY: Family = Family {
    id: "clip",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(build(&from_table::<Config>(t)?, d)?)),
};

/// Images per forward pass when embedding a whole split.
const CHUNK: usize = 256;

impl Clip {
    /// Unit embeddings (N, dim) of images given as (3, S, S) slices.
    pub fn embed_images(&self, images: &[&[f32]]) -> Result<Tensor> {
        let s = self.data.size;
        let mut parts = vec![];
        for chunk in images.chunks(CHUNK) {
            let flat: Vec<f32> = chunk.iter().flat_map(|i| i.iter().map(|v| v - 0.5)).collect();
            parts.push(self.image.forward(&Tensor::from_vec(flat, (chunk.len(), 3, s, s), &self.device)?)?);
        }
        Tensor::cat(&parts, 0)
    }

    /// Unit embeddings (N, dim) of captions.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.data.encode(t.as_ref())).collect();
        let (flat, mask, l) = pad_ids(&ids);
        let n = ids.len();
        self.text
            .forward(&Tensor::from_vec(flat, (n, l), &self.device)?, &Tensor::from_vec(mask, (n, l), &self.device)?)
    }

    fn scale(&self) -> Result<Tensor> {
        self.log_scale.minimum(MAX_LOG_SCALE)
    }

    /// Cosine similarities (rows: images, columns: texts), row-major.
    fn similarity(&self, images: &[&[f32]], texts: &[String]) -> Result<Vec<f32>> {
        let (zi, zt) = (self.embed_images(images)?, self.embed_texts(texts)?);
        zi.matmul(&zt.t()?)?.flatten_all()?.to_vec1()
    }

    /// The (image, caption) pairs of a split's emoji, or of one digit per class when there are none.
    fn pairs(&self, split: Split) -> Vec<(&[f32], String)> {
        let emoji = match split {
            Split::Val => &self.data.emoji.val,
            Split::Test => &self.data.emoji.test,
        };
        if !emoji.is_empty() {
            return emoji.iter().map(|i: &Item| (i.chw.as_slice(), i.caption.clone())).collect();
        }
        let (imgs, labels) = &self.data.digits.val;
        (0..10)
            .filter_map(|c| labels.iter().position(|&l| l as usize == c))
            .map(|i| (imgs[i].as_slice(), digit_caption(TRAIN_TEMPLATES[0], labels[i] as usize)))
            .collect()
    }

    /// Zero-shot accuracy on the test digits: the class whose "a handwritten N" is closest.
    pub fn zero_shot(&self) -> Result<f64> {
        let (imgs, labels) = &self.data.digits.test;
        let classes: Vec<String> = (0..10).map(|c| digit_caption(ZERO_SHOT, c)).collect();
        let refs: Vec<&[f32]> = imgs.iter().map(Vec::as_slice).collect();
        let sim = self.similarity(&refs, &classes)?;
        let right = (0..labels.len())
            .filter(|&i| {
                let row = &sim[i * 10..(i + 1) * 10];
                let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
                best == labels[i] as usize
            })
            .count();
        Ok(right as f64 / labels.len().max(1) as f64)
    }
}

impl Experiment for Clip {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        (self.data.emoji.train.len() / (self.batch - self.digits_per_batch)).max(1)
    }

    /// A batch: batch_size − k random training emoji with their captions, and k digits of k
    /// different classes, each with a caption from a random training template.
    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let k = self.digits_per_batch;
        let emoji = &self.data.emoji.train;
        let n_e = if emoji.is_empty() { 0 } else { self.batch - k };
        let mut images: Vec<&[f32]> = vec![];
        let mut texts: Vec<String> = vec![];
        for _ in 0..n_e {
            let it = &emoji[rng.below(emoji.len())];
            images.push(&it.chw);
            texts.push(it.caption.clone());
        }
        let (imgs, labels) = &self.data.digits.train;
        let mut classes: Vec<usize> = (0..10).collect();
        rng.shuffle(&mut classes);
        let per_class = if n_e == 0 { k.max(2) } else { k };
        for &c in classes.iter().cycle().take(per_class.min(10)) {
            let of: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == c).collect();
            if of.is_empty() {
                continue;
            }
            images.push(&imgs[of[rng.below(of.len())]]);
            texts.push(digit_caption(TRAIN_TEMPLATES[rng.below(TRAIN_TEMPLATES.len())], c));
        }
        let (zi, zt) = (self.embed_images(&images)?, self.embed_texts(&texts)?);
        let loss = info_nce(&zi, &zt, &self.scale()?)?;
        Ok(TrainOut { loss, metrics: Metrics::new() })
    }

    /// loss (InfoNCE over the split's emoji as one batch); r1/r5/r10 image→text and text→image
    /// among the split's emoji (`chance_r10` = 10/N); zero_shot (test digits, "a handwritten N").
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let pairs = self.pairs(split);
        let images: Vec<&[f32]> = pairs.iter().map(|p| p.0).collect();
        let texts: Vec<String> = pairs.iter().map(|p| p.1.clone()).collect();
        let (zi, zt) = (self.embed_images(&images)?, self.embed_texts(&texts)?);
        let mut m = Metrics::new();
        m.insert("loss".into(), info_nce(&zi, &zt, &self.scale()?)?.to_scalar::<f32>()? as f64);
        m.insert("zero_shot".into(), self.zero_shot()?);
        if !self.data.emoji.test.is_empty() {
            let n = pairs.len();
            let sim: Vec<f32> = zi.matmul(&zt.t()?)?.flatten_all()?.to_vec1()?;
            let sim_t = transpose(&sim, n);
            for k in [1, 5, 10] {
                m.insert(format!("r{k}_i2t"), recall_at_k(&sim, n, k));
                m.insert(format!("r{k}_t2i"), recall_at_k(&sim_t, n, k));
            }
            m.insert("chance_r10".into(), 10.0 / n as f64);
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::Image]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        sample::sample(self, req, rng)
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

    /// A tiny model on whatever data is here (digits8 and no emoji in CI without `make data`).
    #[test]
    fn trains_evaluates_and_every_parameter_gets_a_gradient() -> anyhow::Result<()> {
        let mut c = defaults();
        c.train.batch_size = 24;
        c.data =
            DataCfg { image_size: 16, test_emoji: 20, val_emoji: 10, train_digits: 200, test_digits: 50, ..c.data };
        c.model = ModelCfg { channels: vec![4, 8], text_width: 8, dim: 6 };
        let mut clip = build(&c, &Device::Cpu)?;
        let out = clip.train_loss(0, &mut Rng::new(1))?;
        assert_every_param_gets_a_gradient(&clip.params, &out.loss)?;
        let m = clip.evaluate(Split::Test)?;
        assert!(m["loss"].is_finite() && (0.0..=1.0).contains(&m["zero_shot"]), "{m:?}");
        assert_eq!(m.contains_key("r10_i2t"), !clip.data.emoji.test.is_empty());
        Ok(())
    }
}
