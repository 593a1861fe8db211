//! What the image-generating milestones share: their `[data]` section, images scaled to
//! [−1, 1] and back, sample grids, and the Fréchet distance (FD) that `eval` reports for each,
//! so `dlhist compare gan diffusion` compares them on one number.
//!
//! FD (as the FID of Heusel et al. 2017, with a small classifier in place of Inception): the
//! images go through a trained LeNet-5 (`lenet`, resampled to its 28x28 input as lenet trains
//! on them), the 84 activations of its last hidden layer are fitted by a Gaussian for the
//! generated and for the real images of the split, and the Fréchet distance between the two
//! Gaussians is reported (`report::fd`). Lower is better; a set against itself scores 0. The
//! lenet run is a [`Need`]: cli/ finds the newest finished `lenet` run with the configured
//! settings on this dataset, or trains one once and keeps it, and attaches its weights here.

use super::lenet::{self, LeNet};
use crate::data::vision::{self, Splits};
use crate::data::ImageSet;
use crate::experiment::{Need, Split};
use crate::params::Params;
use crate::picture::Image;
use crate::report::fd::{frechet_distance, Gaussian};
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (mnist/fashion fall back to digits8 when not fetched)
    pub dataset: String,
    /// the classifier whose last hidden layer gives FD's features, as NAME[:KEY=VALUE...] (its
    /// preset with these overrides, on this run's dataset): trained once and kept under
    /// checkpoints/NAME/; "" = no FD
    pub fd_net: String,
    /// generated images per FD measurement (compared with every real image of the split)
    pub fd_samples: usize,
}

impl Default for DataCfg {
    fn default() -> Self {
        Self { dataset: "mnist".into(), fd_net: "lenet".into(), fd_samples: 1000 }
    }
}

/// The data in [−1, 1] (what tanh and a Gaussian diffusion produce).
pub fn load(cfg: &DataCfg) -> anyhow::Result<Splits> {
    if cfg.fd_samples < 2 {
        return Err(crate::error::DlError::BadValue {
            context: "data.fd_samples".into(),
            message: format!("a covariance needs at least 2 samples, got {}", cfg.fd_samples),
        }
        .into());
    }
    let mut data = vision::load(&cfg.dataset, 0)?;
    data.map_sets(|s| ImageSet { pixels: s.pixels.iter().map(|v| 2.0 * v - 1.0).collect(), ..s.clone() });
    Ok(data)
}

/// The lenet run FD needs, for `dataset` (the data actually loaded), from `data.fd_net`.
pub fn fd_need(cfg: &DataCfg, dataset: &str) -> Option<Need> {
    fd_need_spec(&cfg.fd_net, dataset)
}

/// The lenet run FD needs, from a spec `MILESTONE[:KEY=VALUE…]` ("" = no FD), for `dataset`.
pub fn fd_need_spec(spec: &str, dataset: &str) -> Option<Need> {
    let mut parts = spec.split(':').filter(|p| !p.is_empty());
    let milestone = parts.next()?.to_string();
    let mut sets: Vec<String> = parts.map(str::to_string).collect();
    sets.push(format!("data.dataset={dataset}"));
    Some(Need { key: "fd", milestone, sets, why: format!("the features of the Fréchet distance on {dataset}") })
}

/// `Experiment::attach` of a milestone whose one need is the FD's feature net (`fd_need`).
pub fn attach_fd(
    fd: &mut Option<FdProbe>,
    key: &str,
    trained: &Params,
    device: &Device,
    who: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(key == "fd", "{who}: unknown need `{key}`");
    *fd = Some(FdProbe::new(trained, device)?);
    Ok(())
}

/// Images (n·S·S values in [−1, 1]) as an image set in [0, 1] of side `side`.
pub fn to_unit_set(pixels: &[f32], side: usize) -> ImageSet {
    let n = pixels.len() / (side * side);
    ImageSet {
        pixels: pixels.iter().map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0)).collect(),
        labels: vec![0; n],
        h: side,
        w: side,
        classes: 10,
    }
}

/// Images given as n·S·S values in [−1, 1], each drawn `28/S` times larger (8x8 digits: 3x).
pub fn images(pixels: &[f32], side: usize) -> Vec<Image> {
    let set = to_unit_set(pixels, side);
    let k = (28 / side).max(1);
    (0..set.len()).map(|i| Image::gray(side, side, set.image(i).to_vec()).upscale(k)).collect()
}

/// A square grid (8x8 for 64) of images given as n·S·S values in [−1, 1].
pub fn grid(pixels: &[f32], side: usize) -> Image {
    Image::square_grid(&images(pixels, side), 2, 0.5)
}

/// The FD feature net and the Gaussian fits of the real images of each split (made on first use).
pub struct FdProbe {
    net: LeNet,
    device: Device,
    real: [Option<Gaussian>; 2],
}

impl FdProbe {
    /// LeNet-5 at its default shape with the weights of a trained `lenet` run.
    pub fn new(trained: &Params, device: &Device) -> anyhow::Result<Self> {
        let params = Params::new(0);
        let net = lenet::lenet(&lenet::ModelCfg::default(), &params, device)?;
        let map = trained.tensors().into_iter().collect();
        params.load(&map).map_err(|m| anyhow::anyhow!("the FD feature net is LeNet-5 at its default shape: {m}"))?;
        Ok(Self { net, device: device.clone(), real: [None, None] })
    }

    /// The features (n rows of 84) of images in [0, 1], resampled to 28x28 as lenet sees them.
    pub fn features(&self, set: &ImageSet) -> Result<Vec<f32>> {
        let set = vision::resize(set, lenet::ModelCfg::default().image_size);
        let mut out = Vec::with_capacity(set.len() * 84);
        for start in (0..set.len()).step_by(1000) {
            let idx: Vec<usize> = (start..(start + 1000).min(set.len())).collect();
            let sub = set.subset(&idx);
            let x = Tensor::from_vec(sub.pixels, (idx.len(), 1, set.h, set.w), &self.device)?;
            out.extend(self.net.features(&x)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    fn fit(&self, set: &ImageSet) -> Result<Gaussian> {
        let f = self.features(set)?;
        Ok(Gaussian::fit(&f, f.len() / set.len()))
    }

    /// FD between `generated` (images in [0, 1]) and the real images of `split` in `data` (in
    /// [−1, 1], as `load` gives them).
    pub fn fd(&mut self, generated: &ImageSet, data: &Splits, split: Split) -> Result<f64> {
        let set = if split == Split::Val { &data.val } else { &data.test };
        self.fd_with(generated, split, || to_unit_set(&set.pixels, set.h))
    }

    /// FD between `generated` and `real`, the images of `split`, both in [0, 1].
    pub fn fd_unit(&mut self, generated: &ImageSet, real: &ImageSet, split: Split) -> Result<f64> {
        self.fd_with(generated, split, || real.clone())
    }

    /// FD against the real images of `split`, whose Gaussian is fitted once per split.
    fn fd_with(&mut self, generated: &ImageSet, split: Split, real: impl FnOnce() -> ImageSet) -> Result<f64> {
        let k = if split == Split::Val { 0 } else { 1 };
        if self.real[k].is_none() {
            self.real[k] = Some(self.fit(&real())?);
        }
        let real = self.real[k].as_ref().expect("fitted above");
        Ok(frechet_distance(&self.fit(generated)?, real))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_need_takes_the_spec_and_the_dataset() {
        let cfg = DataCfg { fd_net: "lenet:train.steps=100".into(), ..Default::default() };
        let n = fd_need(&cfg, "digits8").expect("a need");
        assert_eq!((n.key, n.milestone.as_str()), ("fd", "lenet"));
        assert_eq!(n.sets, ["train.steps=100", "data.dataset=digits8"]);
        assert!(fd_need(&DataCfg { fd_net: String::new(), ..Default::default() }, "mnist").is_none());
    }

    /// FD through an (untrained) LeNet: the real test set against itself is 0, against a
    /// darkened copy of itself it is not.
    #[test]
    fn fd_of_a_set_with_itself_is_zero_and_of_a_changed_set_is_not() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let trained = Params::new(5);
        lenet::lenet(&lenet::ModelCfg::default(), &trained, &dev)?;
        let mut probe = FdProbe::new(&trained, &dev)?;
        let data = load(&DataCfg { dataset: "digits8".into(), ..Default::default() })?;
        let same = to_unit_set(&data.test.pixels, data.test.h);
        assert!(probe.fd(&same, &data, Split::Test)?.abs() < 1e-6);
        let dim = ImageSet { pixels: same.pixels.iter().map(|v| v * 0.5).collect(), ..same.clone() };
        assert!(probe.fd(&dim, &data, Split::Test)? > 1e-3);
        Ok(())
    }
}
