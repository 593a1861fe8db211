//! The segmentation set of the `unet` milestone: 2–4 real digits pasted at random positions on
//! a square canvas (64x64 by default) with clutter, labelled per pixel with the digit's class.
//!
//! Labels: 0 = background, 1 + d for a pixel of digit d (11 classes). A digit pixel is one whose
//! pasted intensity is above 0.5. Clutter is 3–6 fragments (7x7 crops of other digits at random
//! contrast), labelled background: telling a whole digit from a stroke needs context, which is
//! what the U-Net's encoder gives. Generation is a pure function of (source, seed, index).

use super::ImageSet;
use crate::rng::Rng;

pub const CLASSES: usize = 11;

pub struct SegSet {
    /// (N, S, S) intensities in [0, 1]
    pub images: Vec<f32>,
    /// (N, S, S) labels in 0..CLASSES
    pub labels: Vec<u8>,
    pub n: usize,
    pub size: usize,
}

impl SegSet {
    pub fn image(&self, i: usize) -> &[f32] {
        let a = self.size * self.size;
        &self.images[i * a..(i + 1) * a]
    }
    pub fn label(&self, i: usize) -> &[u8] {
        let a = self.size * self.size;
        &self.labels[i * a..(i + 1) * a]
    }
}

/// A source digit at a side of at least 20 pixels: 28x28 sets as they are, 8x8 digits
/// upscaled 3x (nearest neighbour) to 24x24.
fn glyph(src: &ImageSet, i: usize) -> (Vec<f32>, usize) {
    let img = src.image(i);
    if src.w >= 20 {
        return (img.to_vec(), src.w);
    }
    let f = 3;
    let s = src.w * f;
    let mut out = vec![0.0; s * s];
    for r in 0..s {
        for c in 0..s {
            out[r * s + c] = img[(r / f) * src.w + c / f];
        }
    }
    (out, s)
}

/// Pastes glyph `g` (side `gs`) at `(top, left)`, keeping the brighter pixel; with `labels`,
/// marks pixels brighter than 0.5 with `class`.
fn paste(
    canvas: &mut [f32],
    labels: Option<(&mut [u8], u8)>,
    size: usize,
    (g, gs): (&[f32], usize),
    (top, left): (usize, usize),
    gain: f32,
) {
    let mut labels = labels;
    for r in 0..gs {
        for c in 0..gs {
            let (y, x) = (top + r, left + c);
            if y >= size || x >= size {
                continue;
            }
            let v = g[r * gs + c] * gain;
            let k = y * size + x;
            if v > canvas[k] {
                canvas[k] = v;
            }
            if let Some((lab, class)) = labels.as_mut() {
                if v > 0.5 {
                    lab[k] = *class;
                }
            }
        }
    }
}

/// Canvas number `index` of the set generated from `src` with `seed`.
pub fn canvas(src: &ImageSet, size: usize, seed: u64, index: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng::derive(seed, "canvas", index as u64);
    let mut img = vec![0f32; size * size];
    let mut lab = vec![0u8; size * size];
    // clutter first, so digits pasted later win where they overlap
    for _ in 0..3 + rng.below(4) {
        let (g, gs) = glyph(src, rng.below(src.len()));
        let (r0, c0) = (rng.below(gs - 7), rng.below(gs - 7));
        let crop: Vec<f32> = (0..49).map(|k| g[(r0 + k / 7) * gs + c0 + k % 7]).collect();
        let gain = 0.5 + 0.5 * rng.uniform() as f32;
        paste(&mut img, None, size, (&crop, 7), (rng.below(size - 6), rng.below(size - 6)), gain);
    }
    for _ in 0..2 + rng.below(3) {
        let i = rng.below(src.len());
        let (g, gs) = glyph(src, i);
        let span = size.saturating_sub(gs).max(1);
        let class = 1 + src.labels[i];
        paste(&mut img, Some((&mut lab, class)), size, (&g, gs), (rng.below(span), rng.below(span)), 1.0);
    }
    (img, lab)
}

/// `n` canvases.
pub fn generate(src: &ImageSet, n: usize, size: usize, seed: u64) -> SegSet {
    let mut images = Vec::with_capacity(n * size * size);
    let mut labels = Vec::with_capacity(n * size * size);
    for i in 0..n {
        let (im, lab) = canvas(src, size, seed, i);
        images.extend(im);
        labels.extend(lab);
    }
    SegSet { images, labels, n, size }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn canvases_are_deterministic_and_labels_sit_on_bright_digit_pixels() {
        let src = digits::load();
        let a = generate(&src, 20, 64, 7);
        let b = generate(&src, 20, 64, 7);
        assert_eq!(a.images, b.images);
        assert_eq!(a.labels, b.labels);
        assert_ne!(a.labels, generate(&src, 20, 64, 8).labels);
        for i in 0..a.n {
            let (im, lab) = (a.image(i), a.label(i));
            let mut classes: Vec<u8> = lab.iter().copied().filter(|&l| l > 0).collect();
            classes.sort();
            classes.dedup();
            assert!((1..=4).contains(&classes.len()), "canvas {i} shows {} digit classes", classes.len());
            assert!(lab.iter().all(|&l| (l as usize) < CLASSES));
            for k in 0..im.len() {
                if lab[k] > 0 {
                    assert!(im[k] > 0.5, "a digit pixel must be bright");
                }
            }
            // clutter makes bright background pixels exist somewhere in the set
        }
        let bright_background = (0..a.images.len()).filter(|&k| a.labels[k] == 0 && a.images[k] > 0.5).count();
        assert!(bright_background > 0, "clutter should put bright pixels in the background");
    }
}
