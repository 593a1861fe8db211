//! Image classification data with fixed train/val/test splits, and the fallback to the
//! built-in digits8 when a fetched set is absent.

use super::catalog::{fetched_dir, present};
use super::{digits, idx, ImageSet};
use crate::error::DlError;
use crate::rng::Rng;

pub struct Splits {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    /// the dataset actually loaded
    pub name: String,
    /// a one-line notice when we fell back to another dataset
    pub notice: Option<String>,
}

impl Splits {
    /// Replaces each of the three sets by `f` of it (e.g. a resize to the model's input size).
    pub fn map_sets(&mut self, f: impl Fn(&ImageSet) -> ImageSet) {
        for set in [&mut self.train, &mut self.val, &mut self.test] {
            *set = f(set);
        }
    }
}

fn read_idx_set(set: &str, prefix: &str) -> Result<ImageSet, DlError> {
    let dir = fetched_dir().join(set);
    let images = idx::read(&dir.join(format!("{prefix}-images-idx3-ubyte")))?;
    let labels = idx::read(&dir.join(format!("{prefix}-labels-idx1-ubyte")))?;
    if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
        return Err(DlError::Data(format!(
            "{set}/{prefix}: images {:?} and labels {:?} do not match; re-fetch with `make data`",
            images.dims, labels.dims
        )));
    }
    Ok(ImageSet {
        pixels: images.data.iter().map(|&b| b as f32 / 255.0).collect(),
        labels: labels.data,
        h: images.dims[1],
        w: images.dims[2],
        classes: 10,
    })
}

/// Fashion-MNIST's ten classes, by label.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];

/// What label `c` of dataset `data` means: a class name for Fashion-MNIST, the digit otherwise.
pub fn class_name(data: &str, c: usize) -> String {
    match FASHION_CLASSES.get(c) {
        Some(n) if data.starts_with("fashion") => n.to_string(),
        _ => c.to_string(),
    }
}

/// Loads `name` ("mnist", "fashion" or "digits8"). The validation split is held out of the
/// training images (the last 5,000 for the idx sets; a fixed 10% for digits8). `train_size`
/// > 0 keeps only that many training images (a fixed random subset, the same for every seed).
pub fn load(name: &str, train_size: usize) -> Result<Splits, DlError> {
    let (mut train, val, test, used, notice) = match name {
        "mnist" | "fashion" if present(name) => {
            let full = read_idx_set(name, "train")?;
            let n = full.len();
            let train = full.subset(&(0..n - 5000).collect::<Vec<_>>());
            let val = full.subset(&(n - 5000..n).collect::<Vec<_>>());
            (train, val, read_idx_set(name, "t10k")?, name.to_string(), None)
        }
        "mnist" | "fashion" | "digits8" => {
            let notice = (name != "digits8").then(|| {
                format!(
                    "note: {name} is not in {}; using the built-in digits8 instead (fetch it with `dlhist data fetch {name}`)",
                    fetched_dir().display()
                )
            });
            let all = digits::load();
            // a fixed split, independent of the run's seed
            let p = Rng::new(0xd161_7508).permutation(all.len());
            let (n_test, n_val) = (360, 180);
            let test = all.subset(&p[..n_test]);
            let val = all.subset(&p[n_test..n_test + n_val]);
            let train = all.subset(&p[n_test + n_val..]);
            (train, val, test, "digits8".to_string(), notice)
        }
        other => {
            return Err(DlError::BadValue {
                context: "data.dataset".into(),
                message: format!("unknown image dataset `{other}`; choose mnist, fashion or digits8"),
            })
        }
    };
    if train_size > 0 && train_size < train.len() {
        let p = Rng::new(0x5b5e_7123).permutation(train.len());
        train = train.subset(&p[..train_size]);
    }
    Ok(Splits { train, val, test, name: used, notice })
}

/// `set` resampled to `size`×`size` by bilinear interpolation (used to run 28x28 networks on the
/// 8x8 digits when MNIST is absent: the digit fills the canvas as MNIST's 20x20 box does, with
/// a 4-pixel margin like MNIST's).
pub fn resize(set: &ImageSet, size: usize) -> ImageSet {
    if set.h == size && set.w == size {
        return set.clone();
    }
    resize_box(set, size, size.saturating_sub(8).max(1)) // MNIST centres a 20x20 digit in 28x28
}

/// `set` resampled by bilinear interpolation so that the whole source image fills an
/// `inner`×`inner` box centred on a blank `size`×`size` canvas; `inner` = `size` scales the whole
/// image (e.g. 28x28 MNIST, which carries its own margin, down to 16x16).
pub fn resize_box(set: &ImageSet, size: usize, inner: usize) -> ImageSet {
    let inner = inner.min(size).max(1);
    let margin = (size - inner) / 2;
    let mut pixels = Vec::with_capacity(set.len() * size * size);
    for i in 0..set.len() {
        let img = set.image(i);
        for r in 0..size {
            for c in 0..size {
                let (rr, cc) = (r as f32 - margin as f32, c as f32 - margin as f32);
                if rr < 0.0 || cc < 0.0 || rr >= inner as f32 || cc >= inner as f32 {
                    pixels.push(0.0);
                    continue;
                }
                // source coordinates of this pixel's centre
                let y = ((rr + 0.5) * set.h as f32 / inner as f32 - 0.5).clamp(0.0, (set.h - 1) as f32);
                let x = ((cc + 0.5) * set.w as f32 / inner as f32 - 0.5).clamp(0.0, (set.w - 1) as f32);
                let (y0, x0) = (y.floor() as usize, x.floor() as usize);
                let (y1, x1) = ((y0 + 1).min(set.h - 1), (x0 + 1).min(set.w - 1));
                let (fy, fx) = (y - y0 as f32, x - x0 as f32);
                let at = |yy: usize, xx: usize| img[yy * set.w + xx];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                pixels.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    ImageSet { pixels, labels: set.labels.clone(), h: size, w: size, classes: set.classes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_digits8_to_28_keeps_labels_a_blank_margin_and_the_ink() {
        let d = digits::load();
        let r = resize(&d, 28);
        assert_eq!((r.h, r.w, r.len()), (28, 28, d.len()));
        assert_eq!(r.labels, d.labels);
        for i in 0..20 {
            let img = r.image(i);
            assert!(img[..4 * 28].iter().all(|&v| v == 0.0), "top margin is blank");
            let ink_src: f32 = d.image(i).iter().sum::<f32>() / 64.0;
            let ink_dst: f32 = img.iter().sum::<f32>() / (20.0 * 20.0);
            assert!((ink_src - ink_dst).abs() < 0.1 * ink_src.max(0.05), "{ink_src} vs {ink_dst}");
        }
    }

    /// Scaling a whole 28x28 image to 16x16 (`inner` = `size`) leaves no margin and keeps the
    /// mean intensity; bilinear interpolation of a constant is that constant.
    #[test]
    fn resize_box_with_the_full_box_scales_the_whole_image() {
        let flat = ImageSet { pixels: vec![0.5; 2 * 28 * 28], labels: vec![3, 4], h: 28, w: 28, classes: 10 };
        let r = resize_box(&flat, 16, 16);
        assert_eq!((r.h, r.w, r.labels.clone()), (16, 16, vec![3, 4]));
        assert!(r.pixels.iter().all(|&v| (v - 0.5).abs() < 1e-6));
        // a left half of ink stays a left half
        let half: Vec<f32> = (0..28 * 28).map(|i| if i % 28 < 14 { 1.0 } else { 0.0 }).collect();
        let r = resize_box(&ImageSet { pixels: half, labels: vec![0], h: 28, w: 28, classes: 10 }, 16, 16);
        let row = &r.pixels[..16];
        assert!(row[..7].iter().all(|&v| v == 1.0) && row[9..].iter().all(|&v| v == 0.0), "{row:?}");
    }
}
