//! Catalogue section 1, continued: segmentation (U-Net and its no-skip baseline).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::unet;

const UNET_INFO: &str = "U-Net (Ronneberger, Fischer & Brox 2015) labels every pixel of an image. Its encoder convolves and max-pools the image down to coarse maps that say what is there; its decoder upsamples them back to full resolution, and at each resolution it concatenates the encoder's maps of that size (the skip connections), which still know exactly where each edge is. Without the skips the decoder must recover the positions from the coarse maps alone, and outlines come out blurred. Here the images are 64x64 canvases with 2-4 real MNIST digits pasted at random positions among clutter (7x7 fragments of other digits, labelled background), and each pixel's class is background or the digit it belongs to (11 classes; generated, seeded, from the training, held-out and test digits; digits8 when MNIST is absent). The net has three levels of 8/16/32 channels, each two 3x3 convolutions with batch norm and ReLU, 2x2 max-pooling down, and a 1x1 convolution plus nearest 2x upsampling up; `unet-noskip` is the same net without the concatenations. The loss is per-pixel cross-entropy with digit pixels weighted 8x (the class-balancing part of the paper's weight map: digits are about 7% of the pixels; unweighted, both nets spent the budget learning mostly background and the mean IoU stayed at 0.10-0.25). The claim trains both for 600 updates of 16 canvases (Adam, lr 3e-3) and compares the mean IoU on 500 test canvases: per class, IoU = TP/(TP+FP+FN) over all test pixels, averaged over the 11 classes with background included (PASCAL VOC's definition; the digits-only mean is reported beside it). Skips must be ahead by at least 0.05. Measured (mean IoU, skips vs none; pixel accuracy): seed 1234 0.487 vs 0.389 (96.8% vs 95.1%), seed 7 0.452 vs 0.366, seed 99 0.449 vs 0.308; gaps 0.086-0.141. The replay at three seeds (claims::plan, README) gave per-seed gaps of +0.111, +0.115 and −0.042 (means 0.423 vs 0.361): one seed reverses, and the means' margin over 0.05 (+0.011) is within the seed noise (sd 0.09). The absolute numbers are modest because the digits overlap and the nets are small and briefly trained: `dlhist sample unet` draws input, true and predicted masks side by side as a PNG.";

pub fn entries() -> Vec<Entry> {
    vec![
    Entry {
        name: "unet",
        year: 2015,
        paper: "Ronneberger, Fischer & Brox, U-Net: convolutional networks for biomedical image segmentation, MICCAI 2015",
        study: "segmentation",
        family: &unet::FAMILY,
        summary: "skip connections beat the same encoder–decoder without them on mean IoU",
        info: UNET_INFO,
        preset: preset!("unet"),
        smoke: smoke!("unet"),
        claim: Some(Claim { text: "skip connections raise the test mean IoU by ≥ 0.05 over the same net without them", metric: "miou_gain" }),
    },
    Entry {
        name: "unet-noskip",
        year: 2015,
        paper: "Ronneberger, Fischer & Brox, MICCAI 2015 (the encoder–decoder without skips)",
        study: "segmentation",
        family: &unet::FAMILY,
        summary: "without skips: a lower mean IoU, blurred digit outlines",
        info: UNET_INFO,
        preset: preset!("unet-noskip"),
        smoke: smoke!("unet-noskip"),
        claim: Some(Claim { text: "without skip connections the test mean IoU is ≥ 0.05 lower", metric: "miou_gain" }),
    },
    ]
}
