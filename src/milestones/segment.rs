//! The segmentation recipe, generic over its model (`SegModel`; `unet.rs` builds it with the
//! U-Net): canvases of pasted digits (src/data/canvas.rs), per-pixel cross-entropy over the 11
//! classes (background + 10 digits), and the standard segmentation metrics from a confusion
//! matrix over a whole split: pixel accuracy and the mean over classes of IoU = TP / (TP + FP +
//! FN) (PASCAL VOC's definition, background included), plus the mean over the 10 digit classes
//! alone. Metric names: `acc` (pixel accuracy, so `compare`'s accuracy columns show it), `miou`,
//! `miou_digits`, `loss`. `sample` renders input, true and predicted masks as a PNG.

use crate::data::batch::EpochSampler;
use crate::data::canvas::{self, SegSet, CLASSES};
use crate::data::{vision, ImageSet};
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// source of the pasted digits: mnist | fashion | digits8 (falls back to digits8 when not fetched)
    pub dataset: String,
    /// side of the square canvases
    pub size: usize,
    /// training canvases, generated on the fly from the training digits (one epoch = this many)
    pub train_canvases: usize,
    /// validation and test canvases, from the held-out and the test digits
    pub val_canvases: usize,
    pub test_canvases: usize,
}

impl Default for DataCfg {
    fn default() -> Self {
        Self { dataset: "mnist".into(), size: 64, train_canvases: 50_000, val_canvases: 200, test_canvases: 500 }
    }
}

/// Fixed generator seeds, one per split, independent of the run's seed (like vision's fixed
/// splits), so every variant and seed is scored on the same canvases.
const SEEDS: [u64; 3] = [0x5e9_0001, 0x5e9_0002, 0x5e9_0003];
const EVAL_BATCH: usize = 25;

/// What the recipe needs of a segmentation model: per-pixel class logits.
pub trait SegModel {
    /// (B, 1, S, S) images -> (B, K, S, S) logits, one map per class; `train` selects training
    /// mode (e.g. batch norm's batch statistics).
    fn logits(&self, x: &Tensor, train: bool) -> Result<Tensor>;
}

pub struct Segmenter<M: SegModel> {
    net: M,
    params: Params,
    /// the training digits, pasted into canvas `i` on demand
    digits: ImageSet,
    size: usize,
    sampler: EpochSampler,
    val: SegSet,
    test: SegSet,
    digit_weight: f64,
    device: Device,
    data: String,
    notice: Option<String>,
}

impl<M: SegModel> Segmenter<M> {
    pub fn new(
        net: M,
        params: Params,
        c: &DataCfg,
        digit_weight: f64,
        batch: usize,
        seed: u64,
        device: &Device,
    ) -> anyhow::Result<Self> {
        if c.size < 32 || c.train_canvases == 0 || c.val_canvases == 0 || c.test_canvases == 0 {
            anyhow::bail!(
                "unet: data.size must be ≥ 32 (digits are pasted whole) and every split non-empty; got {c:?}"
            );
        }
        let src = vision::load(&c.dataset, 0)?;
        Ok(Self {
            net,
            params,
            size: c.size,
            sampler: EpochSampler::new(seed, c.train_canvases, batch),
            val: canvas::generate(&src.val, c.val_canvases, c.size, SEEDS[1]),
            test: canvas::generate(&src.test, c.test_canvases, c.size, SEEDS[2]),
            digits: src.train,
            digit_weight,
            device: device.clone(),
            data: src.name,
            notice: src.notice,
        })
    }

    /// (B, 1, S, S) images and (B·S·S) u32 labels of canvases `idx` of `set`.
    fn tensors(&self, set: &SegSet, idx: &[usize]) -> Result<(Tensor, Tensor)> {
        let x: Vec<f32> = idx.iter().flat_map(|&i| set.image(i).iter().copied()).collect();
        let y: Vec<u32> = idx.iter().flat_map(|&i| set.label(i).iter().map(|&l| l as u32)).collect();
        let s = set.size;
        Ok((
            Tensor::from_vec(x, (idx.len(), 1, s, s), &self.device)?,
            Tensor::from_vec(y, idx.len() * s * s, &self.device)?,
        ))
    }

    /// Logits (B, K, S, S) as (B·S·S, K), one row per pixel in label order.
    fn pixel_logits(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let z = self.net.logits(x, train)?;
        let (b, k, h, w) = z.dims4()?;
        z.permute((0, 2, 3, 1))?.reshape((b * h * w, k))
    }

    fn split(&self, split: Split) -> &SegSet {
        match split {
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    /// Predicted labels (B·S·S) of canvases `idx` of `set`, and the loss (weighted as in
    /// training, so the curves compare), in eval mode.
    fn predict(&self, set: &SegSet, idx: &[usize]) -> Result<(Vec<u32>, f64)> {
        let (x, y) = self.tensors(set, idx)?;
        let z = self.pixel_logits(&x, false)?;
        let loss = weighted_cross_entropy(&z, &y, self.digit_weight)?.to_scalar::<f32>()? as f64;
        Ok((z.argmax(1)?.to_vec1::<u32>()?, loss))
    }
}

/// Per-pixel cross-entropy with digit pixels weighted `w` times a background pixel:
/// (Σ_bg CE + w·Σ_digit CE) / (n_bg + w·n_digit), the class-balancing part of the paper's weight
/// map (w = 1: the plain mean). z (N, K), y (N,) u32 with 0 = background.
pub fn weighted_cross_entropy(z: &Tensor, y: &Tensor, w: f64) -> Result<Tensor> {
    if w == 1.0 {
        return crate::nn::loss::cross_entropy(z, y);
    }
    let labels = y.to_vec1::<u32>()?;
    let (fg, bg): (Vec<u32>, Vec<u32>) = (0..labels.len() as u32).partition(|&i| labels[i as usize] > 0);
    let mut parts = vec![];
    for (rows, weight) in [(fg, w), (bg, 1.0)] {
        if !rows.is_empty() {
            let n = rows.len();
            let idx = Tensor::from_vec(rows, n, z.device())?;
            let ce = crate::nn::loss::cross_entropy(&z.index_select(&idx, 0)?, &y.index_select(&idx, 0)?)?;
            parts.push((ce, weight * n as f64));
        }
    }
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let mut loss = (&parts[0].0 * (parts[0].1 / total))?;
    for (ce, m) in &parts[1..] {
        loss = (loss + (ce * (m / total))?)?;
    }
    Ok(loss)
}

/// conf[t][p]: pixels of true class t predicted as p.
pub type Confusion = [[u64; CLASSES]; CLASSES];

pub fn confusion(truth: &[u8], pred: &[u32]) -> Confusion {
    let mut m = [[0u64; CLASSES]; CLASSES];
    for (&t, &p) in truth.iter().zip(pred) {
        m[t as usize][p as usize] += 1;
    }
    m
}

/// IoU_k = TP / (TP + FP + FN) of each class in `classes` that occurs in the truth or the
/// prediction (a class absent from both has no IoU and is left out of the mean).
pub fn mean_iou(m: &Confusion, classes: std::ops::Range<usize>) -> f64 {
    let ious: Vec<f64> = classes
        .filter_map(|k| {
            let tp = m[k][k];
            let fn_: u64 = m[k].iter().sum::<u64>() - tp;
            let fp: u64 = (0..CLASSES).map(|t| m[t][k]).sum::<u64>() - tp;
            (tp + fp + fn_ > 0).then(|| tp as f64 / (tp + fp + fn_) as f64)
        })
        .collect();
    if ious.is_empty() {
        0.0
    } else {
        ious.iter().sum::<f64>() / ious.len() as f64
    }
}

pub fn pixel_accuracy(m: &Confusion) -> f64 {
    let total: u64 = m.iter().flatten().sum();
    (0..CLASSES).map(|k| m[k][k]).sum::<u64>() as f64 / total.max(1) as f64
}

impl<M: SegModel> Experiment for Segmenter<M> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.sampler.indices(step);
        let s = self.size;
        let (mut x, mut y) = (Vec::with_capacity(idx.len() * s * s), Vec::with_capacity(idx.len() * s * s));
        for &i in &idx {
            let (im, lab) = canvas::canvas(&self.digits, s, SEEDS[0], i);
            x.extend(im);
            y.extend(lab.iter().map(|&l| l as u32));
        }
        let x = Tensor::from_vec(x, (idx.len(), 1, s, s), &self.device)?;
        let y = Tensor::from_vec(y, idx.len() * s * s, &self.device)?;
        let z = self.pixel_logits(&x, true)?;
        let loss = weighted_cross_entropy(&z, &y, self.digit_weight)?;
        let hits = z.argmax(1)?.eq(&y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()? as f64;
        Ok(TrainOut { loss, metrics: Metrics::from([("acc".to_string(), hits)]) })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = self.split(split);
        let mut m = [[0u64; CLASSES]; CLASSES];
        let mut loss = 0.0;
        for start in (0..set.n).step_by(EVAL_BATCH) {
            let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(set.n)).collect();
            let (pred, l) = self.predict(set, &idx)?;
            let a = set.size * set.size;
            let c = confusion(&set.labels[start * a..(start + idx.len()) * a], &pred);
            m.iter_mut().flatten().zip(c.iter().flatten()).for_each(|(a, b)| *a += b);
            loss += l * idx.len() as f64;
        }
        Ok(Metrics::from([
            ("loss".to_string(), loss / set.n as f64),
            ("acc".to_string(), pixel_accuracy(&m)),
            ("miou".to_string(), mean_iou(&m, 0..CLASSES)),
            ("miou_digits".to_string(), mean_iou(&m, 1..CLASSES)),
        ]))
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let set = &self.test;
        let n = req.n_at_most_of(4, 8, "that many test images are drawn with their masks", set.n, "the test set");
        let idx: Vec<usize> = (0..n).map(|_| rng.below(set.n)).collect();
        let (pred, _) = self.predict(set, &idx)?;
        let a = set.size * set.size;
        let mut rows = vec![];
        let mut items = vec![];
        let mut lines = vec![];
        for (k, &i) in idx.iter().enumerate() {
            let p = &pred[k * a..(k + 1) * a];
            let m = confusion(set.label(i), p);
            let (miou, acc) = (mean_iou(&m, 0..CLASSES), pixel_accuracy(&m));
            let digits = |lab: &mut dyn Iterator<Item = usize>| {
                let mut d: Vec<usize> = lab.filter(|&l| l > 0).map(|l| l - 1).collect();
                d.sort();
                d.dedup();
                d
            };
            let truth = digits(&mut set.label(i).iter().map(|&l| l as usize));
            let found = digits(&mut p.iter().map(|&l| l as usize));
            lines.push(format!(
                "  canvas {i:>4}: mean IoU {miou:.3}, pixel accuracy {:.1}%, digits {truth:?}, predicted {found:?}",
                acc * 100.0
            ));
            items.push(
                serde_json::json!({"index": i, "miou": miou, "pix_acc": acc, "digits": truth, "predicted": found}),
            );
            rows.push((set.image(i), set.label(i), p));
        }
        let picture = super::masks::segment_picture(set.size, &rows);
        let text = format!(
            "{n} test canvas{} from {}: input | true mask | predicted mask (background black; digits 0-9 in the colours {})\n{}\n",
            if n == 1 { "" } else { "es" },
            self.data,
            super::masks::COLOR_NAMES.join(", "),
            lines.join("\n"),
        );
        let out = SampleOut::new(text, serde_json::json!({"data": self.data, "images": items}));
        let keyed = crate::picture::Picture::Keyed {
            image: picture,
            caption: "each row: input | true mask | predicted mask. Mask colours: background, then digits 0-9".into(),
            key: super::masks::key(),
        };
        Ok(out.with_picture("masks", keyed))
    }

    fn data_name(&self) -> String {
        self.data.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.notice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PASCAL VOC's IoU = TP / (TP + FP + FN), worked by hand on 6 pixels: class 0 truth at
    /// pixels {0,1,2}, predicted at {0,1,3}: TP 2, FP 1, FN 1 -> 0.5; class 1 truth {3,4},
    /// predicted {4}: 1/2; class 2 truth {5}, predicted {2,5}: 1/2; class 3 never occurs.
    #[test]
    fn iou_and_pixel_accuracy_by_hand() {
        let truth = [0u8, 0, 0, 1, 1, 2];
        let pred = [0u32, 0, 2, 0, 1, 2];
        let m = confusion(&truth, &pred);
        assert_eq!(m[0][0], 2);
        assert_eq!(m[1][0], 1);
        assert!((mean_iou(&m, 0..CLASSES) - 0.5).abs() < 1e-12);
        assert!((pixel_accuracy(&m) - 4.0 / 6.0).abs() < 1e-12);
        // a perfect prediction of one class: IoU 1; a class predicted but absent: IoU 0 counts
        let m = confusion(&[0, 0, 0], &[0, 0, 1]);
        assert!((mean_iou(&m, 0..CLASSES) - (2.0 / 3.0 + 0.0) / 2.0).abs() < 1e-12);
        assert!((mean_iou(&m, 1..CLASSES) - 0.0).abs() < 1e-12);
        assert_eq!(mean_iou(&confusion(&[0], &[0]), 1..CLASSES), 0.0); // no digit anywhere
    }

    /// The weighted loss against its definition Σ w_i·CE_i / Σ w_i, with CE_i = −log softmax(z_i)[y_i]
    /// from candle's log_softmax, and w = 1 against the plain mean.
    #[test]
    fn weighted_cross_entropy_is_the_weighted_mean_of_per_pixel_losses() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(4);
        let (n, k) = (9, CLASSES);
        let z = Tensor::from_vec((0..n * k).map(|_| rng.normal() as f32).collect::<Vec<_>>(), (n, k), &dev)?;
        let labels: Vec<u32> = vec![0, 3, 0, 0, 10, 1, 0, 0, 5];
        let y = Tensor::new(labels.as_slice(), &dev)?;
        let logp = candle_nn::ops::log_softmax(&z, 1)?.to_vec2::<f32>()?;
        for w in [1.0, 8.0] {
            let (mut num, mut den) = (0f64, 0f64);
            for (i, &l) in labels.iter().enumerate() {
                let wi = if l > 0 { w } else { 1.0 };
                num -= wi * logp[i][l as usize] as f64;
                den += wi;
            }
            let got = weighted_cross_entropy(&z, &y, w)?.to_scalar::<f32>()? as f64;
            assert!((got - num / den).abs() < 1e-5, "w {w}: {got} vs {}", num / den);
        }
        Ok(())
    }
}
