//! Label-preserving image augmentation (Krizhevsky, Sutskever & Hinton 2012, §4.1): a random crop
//! of the original size from the image zero-padded by `pad` pixels on every side (a random shift
//! of up to `pad` pixels each way), and a random horizontal flip. Every draw comes from the rng the
//! caller passes (a training step's own stream), so a resumed run augments exactly as a straight one.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// crop from the image zero-padded by this many pixels on each side; 0 = no crops
    pub pad: usize,
    /// mirror left–right with probability 1/2
    pub flip: bool,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip
    }

    /// Augments each `h`×`w` image of `pixels` (images back to back) in place. Per image it draws
    /// the crop's row and column offsets in the padded image, each uniform in [0, 2·pad], then
    /// (with `flip`) one bit for the mirror.
    pub fn apply(&self, pixels: &mut [f32], h: usize, w: usize, rng: &mut Rng) {
        if self.is_identity() || h * w == 0 {
            return;
        }
        let p = self.pad as isize;
        let mut src = vec![0f32; h * w];
        for img in pixels.chunks_exact_mut(h * w) {
            let dy = rng.below(2 * self.pad + 1) as isize - p; // out(r, c) = in(r + dy, c + dx)
            let dx = rng.below(2 * self.pad + 1) as isize - p;
            let mirror = self.flip && rng.below(2) == 1;
            src.copy_from_slice(img);
            for r in 0..h {
                for c in 0..w {
                    let cc = if mirror { w - 1 - c } else { c }; // flip the crop
                    let (sr, sc) = (r as isize + dy, cc as isize + dx);
                    let inside = (0..h as isize).contains(&sr) && (0..w as isize).contains(&sc);
                    img[r * w + c] = if inside { src[sr as usize * w + sc as usize] } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crop at (dy, dx) of the zero-padded image, mirrored or not, written independently of
    /// `apply`: pad the image explicitly, cut the window, then reverse its rows.
    fn reference(img: &[f32], h: usize, w: usize, pad: usize, dy: isize, dx: isize, mirror: bool) -> Vec<f32> {
        let (ph, pw) = (h + 2 * pad, w + 2 * pad);
        let mut padded = vec![0f32; ph * pw];
        for r in 0..h {
            padded[(r + pad) * pw + pad..(r + pad) * pw + pad + w].copy_from_slice(&img[r * w..(r + 1) * w]);
        }
        let (oy, ox) = ((dy + pad as isize) as usize, (dx + pad as isize) as usize);
        let mut out = vec![];
        for r in 0..h {
            let mut row = padded[(r + oy) * pw + ox..(r + oy) * pw + ox + w].to_vec();
            if mirror {
                row.reverse();
            }
            out.extend(row);
        }
        out
    }

    #[test]
    fn each_image_is_a_padded_crop_maybe_mirrored_and_every_shift_and_flip_occurs() {
        let (h, w, pad) = (5, 4, 2);
        let img: Vec<f32> = (0..h * w).map(|i| 1.0 + i as f32).collect(); // all distinct, no zeros
        let a = Augment { pad, flip: true };
        let n = 400;
        let mut batch: Vec<f32> = img.iter().copied().cycle().take(n * h * w).collect();
        a.apply(&mut batch, h, w, &mut Rng::new(5));
        let mut seen = std::collections::BTreeSet::new();
        for out in batch.chunks(h * w) {
            let found = (-2..=2)
                .flat_map(|dy| (-2..=2).flat_map(move |dx| [false, true].map(move |m| (dy, dx, m))))
                .find(|&(dy, dx, m)| reference(&img, h, w, pad, dy, dx, m) == out);
            seen.insert(found.expect("every output is a crop of the padded image, maybe mirrored"));
        }
        // 5 x 5 shifts x 2 mirrors = 50 outcomes; 400 draws miss a given one with probability 3e-4
        assert_eq!(seen.len(), 50, "only {} of 50 (shift, flip) outcomes seen", seen.len());
        // the same stream gives the same batch; no augmentation leaves the pixels alone
        let mut again: Vec<f32> = img.iter().copied().cycle().take(n * h * w).collect();
        a.apply(&mut again, h, w, &mut Rng::new(5));
        assert_eq!(again, batch);
        let mut same = img.clone();
        Augment::default().apply(&mut same, h, w, &mut Rng::new(5));
        assert_eq!(same, img);
    }
}
