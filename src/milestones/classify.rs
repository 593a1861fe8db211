//! The image-classification recipe shared by every classifier milestone (mlp, the activation
//! study, the CNNs): batching, optional augmentation, cross-entropy, accuracy, and ASCII
//! predictions. A milestone supplies only its model.

use crate::data::augment::Augment;
use crate::data::batch::EpochSampler;
use crate::data::vision::Splits;
use crate::data::ImageSet;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::params::Params;
use crate::report::ascii;
use crate::rng::Rng;
use candle_core::{DType, Device, Result, Tensor, D};

/// A model mapping images (B, 1, H, W) to logits (B, classes).
pub trait ClassModel {
    fn logits(&self, x: &Tensor, train: bool, rng: &mut Rng) -> Result<Tensor>;
    /// Extra metrics measured on a fixed evaluation batch (e.g. activation sparsity).
    fn probe(&self, x: &Tensor) -> Result<Metrics> {
        let _ = x;
        Ok(Metrics::new())
    }
}

pub struct Classifier<M: ClassModel> {
    pub model: M,
    pub params: Params,
    pub data: Splits,
    sampler: EpochSampler,
    batch: usize,
    device: Device,
    /// applied to training batches only, drawing from the step's rng
    augment: Option<Augment>,
}

const EVAL_BATCH: usize = 1000;
/// Training images scored for `fit_acc`.
const FIT_EVAL: usize = 2000;

/// (B, 1, H, W) images and (B,) u32 labels for `idx`.
pub fn batch_tensors(set: &ImageSet, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
    image_tensors(set.subset(idx), device)
}

/// (B, 1, H, W) images and (B,) u32 labels of a whole set.
fn image_tensors(sub: ImageSet, device: &Device) -> Result<(Tensor, Tensor)> {
    let n = sub.len();
    let x = Tensor::from_vec(sub.pixels, (n, 1, sub.h, sub.w), device)?;
    let y = Tensor::from_vec(sub.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), n, device)?;
    Ok((x, y))
}

/// Number of correct argmax predictions.
pub fn correct(logits: &Tensor, y: &Tensor) -> Result<f64> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(y)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64)
}

impl<M: ClassModel> Classifier<M> {
    pub fn new(model: M, params: Params, data: Splits, batch: usize, seed: u64, device: &Device) -> Self {
        let sampler = EpochSampler::new(seed, data.train.len(), batch);
        Self { model, params, data, sampler, batch, device: device.clone(), augment: None }
    }

    /// Augments every training batch (random crops, flips); evaluation sees the plain images.
    pub fn with_augment(mut self, augment: Augment) -> Self {
        self.augment = (!augment.is_identity()).then_some(augment);
        self
    }

    fn split(&self, split: Split) -> &ImageSet {
        match split {
            Split::Val => &self.data.val,
            Split::Test => &self.data.test,
        }
    }
}

impl<M: ClassModel> Classifier<M> {
    /// Mean loss and accuracy, in eval mode, over the first `n` images of `set`.
    fn loss_acc(&self, set: &ImageSet, n: usize) -> Result<(f64, f64)> {
        let n = n.min(set.len());
        let mut rng = Rng::new(0); // eval uses no randomness; models ignore it when !train
        let (mut loss, mut hits) = (0.0, 0.0);
        for start in (0..n).step_by(EVAL_BATCH) {
            let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
            let (x, y) = batch_tensors(set, &idx, &self.device)?;
            let logits = self.model.logits(&x, false, &mut rng)?;
            loss += crate::nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64 * idx.len() as f64;
            hits += correct(&logits, &y)?;
        }
        Ok((loss / n as f64, hits / n as f64))
    }

    /// `fit_acc`: accuracy on (up to 2,000) training images in eval mode, the train–test gap of
    /// the regularisation studies, measured the same way as the held-out accuracy.
    fn fit(&self) -> Result<Metrics> {
        let (_, fit) = self.loss_acc(&self.data.train, FIT_EVAL)?;
        Ok(Metrics::from([("fit_acc".to_string(), fit)]))
    }
}

impl<M: ClassModel> Experiment for Classifier<M> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.sampler.indices(step);
        let (x, y) = match &self.augment {
            None => batch_tensors(&self.data.train, &idx, &self.device)?,
            Some(a) => {
                let mut sub = self.data.train.subset(&idx);
                a.apply(&mut sub.pixels, sub.h, sub.w, rng); // before the model's own draws (dropout)
                image_tensors(sub, &self.device)?
            }
        };
        let logits = self.model.logits(&x, true, rng)?;
        let loss = crate::nn::loss::cross_entropy(&logits, &y)?;
        let acc = correct(&logits, &y)? / self.batch as f64;
        Ok(TrainOut { loss, metrics: Metrics::from([("acc".to_string(), acc)]) })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = self.split(split);
        let (loss, acc) = self.loss_acc(set, set.len())?;
        let mut m = Metrics::from([("loss".to_string(), loss), ("acc".to_string(), acc)]);
        if split == Split::Val {
            m.extend(self.fit()?);
        }
        let idx: Vec<usize> = (0..set.len().min(EVAL_BATCH)).collect();
        let (x, _) = batch_tensors(set, &idx, &self.device)?;
        m.extend(self.model.probe(&x)?);
        Ok(m)
    }

    fn evaluate_fit(&mut self) -> Result<Metrics> {
        self.fit()
    }

    fn evaluates_fit(&self) -> bool {
        true
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let set = &self.data.test;
        let n = req.n_at_most_of(6, 12, "that many test digits are drawn in ASCII", set.len(), "the test set");
        let idx: Vec<usize> = (0..n).map(|_| rng.below(set.len())).collect();
        let (x, _) = batch_tensors(set, &idx, &self.device)?;
        let probs = candle_nn::ops::softmax(&self.model.logits(&x, false, rng)?, D::Minus1)?.to_vec2::<f32>()?;
        let mut blocks = vec![];
        let mut captions = vec![];
        let mut items = vec![];
        for (k, &i) in idx.iter().enumerate() {
            let (pred, conf) =
                probs[k].iter().enumerate().fold((0, 0f32), |b, (c, &p)| if p > b.1 { (c, p) } else { b });
            let truth = set.labels[i] as usize;
            blocks.push(ascii::render(set.image(i), set.h, set.w));
            let mark = if pred == truth { "ok" } else { "WRONG" };
            let name = |c: usize| crate::data::vision::class_name(&self.data.name, c);
            captions.push(format!("pred {} ({:.0}%) true {} {mark}", name(pred), conf * 100.0, name(truth)));
            items.push(serde_json::json!({
                "index": i, "label": truth, "pred": pred, "confidence": conf,
                "label_name": name(truth), "pred_name": name(pred),
            }));
        }
        // rows of up to 4 images keep the text within ~130 columns (fewer for longer class names)
        let width = blocks.iter().flatten().chain(&captions).map(|l| l.chars().count()).max().unwrap_or(1) + 3;
        let per_row = (130 / width).clamp(1, 4);
        let rows: Vec<String> =
            blocks.chunks(per_row).zip(captions.chunks(per_row)).map(|(b, c)| ascii::side_by_side(b, c)).collect();
        let text = format!("{} test images from {}:\n{}", n, self.data.name, rows.join("\n"));
        Ok(SampleOut::new(text, serde_json::json!({"data": self.data.name, "predictions": items})))
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}
