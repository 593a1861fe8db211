//! `dalle2`: hierarchical text-to-image generation with CLIP latents (Ramesh et al. 2022,
//! "unCLIP") at toy scale. A trained `clip` gives every training digit an image embedding z_i
//! and every caption a text embedding z_t. Two parts learn from them: a prior, z_t → ẑ_i (here an
//! MLP regressing the unit image embedding; the paper's is autoregressive or a diffusion model),
//! and a decoder, a diffusion U-Net (`nn::time_unet`) that denoises the image conditioned on z_i
//! projected into its time embedding, with z_i dropped to zero for a fraction of the images so
//! that sampling can use classifier-free guidance. To draw: caption → z_t → prior → ẑ_i →
//! decoder. Measured by a trained `lenet` on images drawn for "a handwritten N".

use super::dalle::gen::{clip_config, clip_from, judge_labels};
use super::diffusion::sampler::{self, Sampler};
use super::diffusion::schedule::{NoiseSchedule, ScheduleKind};
use super::vae::load_images;
use super::{clip, from_table, generative, lenet, to_table, Family};
use crate::config::TrainConfig;
use crate::data::vision::Splits;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, Need, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::nn::time_unet::{time_unet, TimeUNet, TimeUNetCfg};
use crate::params::Params;
use crate::picture::Picture;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};
use clip::data::{digit_caption, TRAIN_TEMPLATES, ZERO_SHOT};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (resized to 28x28; mnist falls back to it when not fetched)
    pub dataset: String,
    /// the CLIP whose embeddings condition everything, as MILESTONE[:KEY=VALUE…] on its preset
    pub clip: String,
    /// the judge: a `lenet` run that labels the drawn images
    pub classifier: String,
    /// images drawn per class at the test evaluation (the claim's)
    pub eval_per_class: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// U-Net feature channels per level, finest first (28, 14, 7 pixels)
    pub channels: Vec<usize>,
    /// groups of each group norm
    pub groups: usize,
    /// the prior MLP's hidden width
    pub prior_hidden: usize,
    /// fraction of training images whose image embedding is dropped (classifier-free guidance)
    pub p_uncond: f64,
    /// guidance scale w at sampling (1 = plain conditional)
    pub guidance: f64,
    /// DDIM steps when drawing
    pub sample_steps: usize,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 1500, batch_size: 32, lr: 1e-3, ema: 0.995, eval_every: 500, ..Default::default() },
        data: DataCfg { dataset: "mnist".into(), clip: "clip".into(), classifier: "lenet".into(), eval_per_class: 10 },
        model: ModelCfg {
            channels: vec![16, 32, 64],
            groups: 8,
            prior_hidden: 256,
            p_uncond: 0.1,
            guidance: 3.0,
            sample_steps: 50,
        },
    }
}

/// Diffusion steps T of the (linear) noise schedule.
const T: usize = 1000;

pub struct Dalle2 {
    params: Params,
    net: TimeUNet,
    prior: (Linear, Linear),
    schedule: NoiseSchedule,
    data: Splits,
    cfg: Config,
    clip: Option<clip::Clip>,
    judge: Option<lenet::LeNet>,
    /// unit CLIP image embeddings of the training images (N, D), made on first use
    z_img: Option<Tensor>,
    device: Device,
}

pub fn build(c: &Config, device: &Device) -> anyhow::Result<Dalle2> {
    let m = &c.model;
    if !(0.0..1.0).contains(&m.p_uncond) || m.sample_steps == 0 {
        return Err(DlError::BadValue {
            context: "model".into(),
            message: "need 0 ≤ p_uncond < 1 and sample_steps ≥ 1".into(),
        }
        .into());
    }
    let data = load_images(&c.data.dataset, 0)?;
    let dim = clip_config(&c.data.clip)?.model.dim;
    let params = Params::new(c.train.seed);
    let vb = params.vb(device);
    let ucfg =
        TimeUNetCfg { in_channels: 1, channels: m.channels.clone(), groups: m.groups, classes: 0, cond_dim: dim };
    Ok(Dalle2 {
        net: time_unet(&ucfg, vb.pp("decoder"))?,
        prior: (
            linear(dim, m.prior_hidden, InitKind::He, vb.pp("prior.fc1"))?,
            linear(m.prior_hidden, dim, InitKind::Default, vb.pp("prior.fc2"))?,
        ),
        params,
        schedule: NoiseSchedule::new(ScheduleKind::Linear, T),
        data,
        cfg: c.clone(),
        clip: None,
        judge: None,
        z_img: None,
        device: device.clone(),
    })
}

pub static FAMILY: Family = Family {
    id: "dalle2",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(build(&from_table::<Config>(t)?, d)?)),
};

impl Dalle2 {
    /// The CLIP in use: the attached run, or (tests, gradient checks) an untrained one.
    fn clip(&mut self) -> anyhow::Result<&clip::Clip> {
        if self.clip.is_none() {
            self.clip = Some(clip::build(&clip_config(&self.cfg.data.clip)?, &self.device)?);
        }
        Ok(self.clip.as_ref().expect("set above"))
    }

    /// Unit CLIP image embeddings of grey 28x28 images in [0, 1] (n·784 values).
    fn embed(&mut self, pixels: &[f32]) -> anyhow::Result<Tensor> {
        let set = crate::data::ImageSet {
            pixels: pixels.to_vec(),
            labels: vec![0; pixels.len() / 784],
            h: 28,
            w: 28,
            classes: 10,
        };
        let c = self.clip()?;
        let (imgs, _) = clip::data::digit_images(&set, c.data.size);
        Ok(c.embed_images(&imgs.iter().map(Vec::as_slice).collect::<Vec<_>>())?.detach())
    }

    /// ẑ_i = the prior of unit text embeddings (B, D), normalised.
    fn prior(&self, z_t: &Tensor) -> Result<Tensor> {
        let h = self.prior.0.forward(z_t)?.relu()?;
        crate::nn::contrastive::l2_normalize(&self.prior.1.forward(&h)?)
    }

    /// Text embeddings (B, D) of captions (detached: CLIP is not trained here).
    fn text(&mut self, captions: &[String]) -> anyhow::Result<Tensor> {
        Ok(self.clip()?.embed_texts(captions)?.detach())
    }

    /// The decoder's loss ‖ε − ε̂(x_t, t, z_i)‖² with z_i dropped to 0 with probability `p`, on
    /// grey images `x0` in [0, 1] (n·784) and their embeddings `z` (n, D).
    fn decoder_loss(&self, x0: &[f32], z: &Tensor, p: f64, rng: &mut Rng) -> Result<Tensor> {
        let n = x0.len() / 784;
        let ts: Vec<usize> = (0..n).map(|_| rng.below(T)).collect();
        let eps: Vec<f32> = (0..x0.len()).map(|_| rng.normal() as f32).collect();
        let xt: Vec<f32> = (0..x0.len())
            .map(|k| {
                let ab = self.schedule.alpha_bar[ts[k / 784]];
                ab.sqrt() as f32 * (2.0 * x0[k] - 1.0) + (1.0 - ab).sqrt() as f32 * eps[k]
            })
            .collect();
        let keep: Vec<f32> = (0..n).map(|_| if rng.uniform() < p { 0.0 } else { 1.0 }).collect();
        let z = z.broadcast_mul(&Tensor::from_vec(keep, (n, 1), &self.device)?)?;
        let tt: Vec<f32> = ts.iter().map(|&t| t as f32).collect();
        let pred = self.net.forward_cond(&Tensor::from_vec(xt, (n, 1, 28, 28), &self.device)?, &tt, None, Some(&z))?;
        (pred - Tensor::from_vec(eps, (n, 1, 28, 28), &self.device)?)?.sqr()?.mean_all()
    }

    /// Images drawn for captions: prior, then DDIM with guidance; n·784 grey values in [0, 1].
    fn draw(&mut self, captions: &[String], w: f64, rng: &mut Rng) -> anyhow::Result<Vec<f32>> {
        let zt = self.text(captions)?;
        let z = self.prior(&zt)?;
        let n = captions.len();
        let zeros = z.zeros_like()?;
        let (net, dev) = (&self.net, &self.device);
        let mut denoise = |x: &Tensor, t: &[f32]| -> Result<Tensor> {
            // one pass over [x with ẑ_i; x with none]
            let tt: Vec<f32> = t.iter().chain(t).copied().collect();
            let e = net.forward_cond(&Tensor::cat(&[x, x], 0)?, &tt, None, Some(&Tensor::cat(&[&z, &zeros], 0)?))?;
            let (ec, eu) = (e.narrow(0, 0, n)?, e.narrow(0, n, n)?);
            &eu + ((ec - &eu)? * w)?
        };
        let how = Sampler::Ddim { eta: 0.0 };
        let tr = sampler::sample(
            &self.schedule,
            how,
            self.cfg.model.sample_steps,
            (n, 1, 28, 28),
            &mut denoise,
            rng,
            0,
            &mut || {},
            dev,
        )?;
        Ok(tr.samples.iter().map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0)).collect())
    }
}

impl Experiment for Dalle2 {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        (self.data.train.len() / self.cfg.train.batch_size).max(1)
    }

    /// One loss: the decoder's denoising loss plus the prior's squared error to the image
    /// embedding, from a caption of the image's class in a random training template.
    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let err = |e: anyhow::Error| candle_core::Error::Msg(format!("{e:#}"));
        if self.z_img.is_none() {
            let mut parts = vec![];
            let px = self.data.train.pixels.clone();
            for chunk in px.chunks(784 * 2000) {
                parts.push(self.embed(chunk).map_err(err)?);
            }
            self.z_img = Some(Tensor::cat(&parts, 0)?);
        }
        let b = self.cfg.train.batch_size;
        let idx: Vec<usize> = (0..b).map(|_| rng.below(self.data.train.len())).collect();
        let sub = self.data.train.subset(&idx);
        let ids = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect::<Vec<_>>(), b, &self.device)?;
        let z = self.z_img.as_ref().expect("made above").index_select(&ids, 0)?;
        let caps: Vec<String> = sub
            .labels
            .iter()
            .map(|&l| digit_caption(TRAIN_TEMPLATES[rng.below(TRAIN_TEMPLATES.len())], l as usize))
            .collect();
        let zt = self.text(&caps).map_err(err)?;
        let prior_loss = (self.prior(&zt)? - &z)?.sqr()?.sum(1)?.mean_all()?;
        let dec = self.decoder_loss(&sub.pixels, &z, self.cfg.model.p_uncond, rng)?;
        let metrics = Metrics::from([("prior_loss".to_string(), prior_loss.to_scalar::<f32>()? as f64)]);
        Ok(TrainOut { loss: (dec + prior_loss)?, metrics })
    }

    /// loss: the decoder's loss on 500 images of the split with their own embeddings; prior_cos:
    /// the mean cosine of ẑ_i for "a handwritten N" with those images' z_i; at test with the
    /// judge attached, acc: the fraction of `eval_per_class` images drawn per class for "a
    /// handwritten N" that lenet labels N.
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let err = |e: anyhow::Error| candle_core::Error::Msg(format!("{e:#}"));
        let set = if split == Split::Val { self.data.val.clone() } else { self.data.test.clone() };
        let sub = set.subset(&(0..set.len().min(500)).collect::<Vec<_>>());
        let z = self.embed(&sub.pixels).map_err(err)?;
        let mut rng = Rng::derive(0xda112, "eval", split as u64);
        let mut m = Metrics::from([(
            "loss".to_string(),
            self.decoder_loss(&sub.pixels, &z, 0.0, &mut rng)?.to_scalar::<f32>()? as f64,
        )]);
        let caps: Vec<String> = sub.labels.iter().map(|&l| digit_caption(ZERO_SHOT, l as usize)).collect();
        let zt = self.text(&caps).map_err(err)?;
        let zh = self.prior(&zt)?;
        m.insert("prior_cos".into(), (zh * &z)?.sum(1)?.mean_all()?.to_scalar::<f32>()? as f64);
        if split == Split::Test && self.judge.is_some() {
            let classes: Vec<usize> =
                (0..10).flat_map(|c| std::iter::repeat_n(c, self.cfg.data.eval_per_class)).collect();
            let caps: Vec<String> = classes.iter().map(|&c| digit_caption(ZERO_SHOT, c)).collect();
            let px = self.draw(&caps, self.cfg.model.guidance, &mut rng).map_err(err)?;
            let labels = judge_labels(self.judge.as_ref().expect("checked"), &px, &self.device)?;
            let right = labels.iter().zip(&classes).filter(|(a, b)| a == b).count();
            m.insert("acc".into(), right as f64 / classes.len().max(1) as f64);
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::Guidance]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let prompt = req.prompt.clone().unwrap_or_else(|| digit_caption(ZERO_SHOT, 7));
        let unknown = self.clip()?.data.unknown(&prompt);
        if !unknown.is_empty() || crate::data::emoji::words(&prompt).is_empty() {
            return Err(DlError::Usage(format!(
                "the prompt has words CLIP never saw in a caption: {}; e.g. --prompt \"a handwritten 7\"",
                if unknown.is_empty() { "(no words at all)".into() } else { unknown.join(", ") }
            ))
            .into());
        }
        let (n, w) = (req.n_or(16), req.guidance.unwrap_or(self.cfg.model.guidance));
        let px = self.draw(&vec![prompt.clone(); n], w, rng)?;
        let mut text = format!(
            "{n} images drawn for \"{prompt}\" (prior, then {} DDIM steps, guidance {w})\n",
            self.cfg.model.sample_steps
        );
        let mut json = serde_json::json!({"prompt": prompt, "n": n, "guidance": w});
        if let Some(j) = &self.judge {
            let labels = judge_labels(j, &px, &self.device)?;
            text.push_str(&format!(
                "lenet reads them as: {}\n",
                labels.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(" ")
            ));
            json["judge"] = serde_json::json!(labels);
        }
        let unit: Vec<f32> = px.iter().map(|v| 2.0 * v - 1.0).collect();
        Ok(SampleOut::new(text, json).with_picture("grid", Picture::Image(generative::grid(&unit, 28))))
    }

    fn needs(&self) -> Vec<Need> {
        let d = &self.cfg.data;
        let mut v = vec![];
        let mut add = |key: &'static str, spec: &str, dataset: Option<&str>, why: &str| {
            let mut parts = spec.split(':').filter(|p| !p.is_empty());
            if let Some(milestone) = parts.next() {
                let mut sets: Vec<String> = parts.map(str::to_string).collect();
                sets.extend(dataset.map(|d| format!("data.dataset={d}")));
                v.push(Need { key, milestone: milestone.into(), sets, why: why.into() });
            }
        };
        add("clip", &d.clip, None, "the embeddings of captions and images");
        add("judge", &d.classifier, Some(&self.data.name), "the classifier that labels the drawn digits");
        v
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        match key {
            "clip" => {
                self.clip = Some(clip_from(&self.cfg.data.clip, trained, &self.device)?);
                self.z_img = None;
            }
            "judge" => {
                let p = Params::new(0);
                self.judge = Some(lenet::lenet(&lenet::ModelCfg::default(), &p, &self.device)?);
                p.load(&trained.tensors().into_iter().collect())
                    .map_err(|m| anyhow::anyhow!("dalle2: the judge is LeNet-5 at its default shape: {m}"))?;
            }
            other => anyhow::bail!("dalle2: unknown need `{other}`"),
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
    fn prior_and_decoder_train_from_one_loss_and_every_parameter_gets_a_gradient() -> anyhow::Result<()> {
        let mut c = defaults();
        c.train.batch_size = 4;
        c.data.dataset = "digits8".into();
        c.data.clip = "clip:data.image_size=16:data.train_digits=100:data.test_digits=20:model.channels=[4, 8]:model.text_width=8".into();
        c.model = ModelCfg { channels: vec![8, 16], groups: 4, prior_hidden: 16, ..c.model };
        let mut d = build(&c, &Device::Cpu)?;
        let out = d.train_loss(0, &mut Rng::new(1))?;
        assert_every_param_gets_a_gradient(&d.params, &out.loss)?;
        let m = d.evaluate(Split::Val)?;
        assert!(m["loss"].is_finite() && m["prior_cos"].abs() <= 1.0 + 1e-5, "{m:?}");
        Ok(())
    }
}
