//! Image classification data with fixed train/val/test splits, and the fallback to the
//! built-in digits8 when a fetched set is absent.

use super::catalog::{fetched_dir, present};
use super::{digits, idx, ImageSet};
use crate::engine::rng::Rng;
use crate::error::DlError;

pub struct Splits {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    /// the dataset actually loaded
    pub name: String,
    /// a one-line notice when we fell back to another dataset
    pub notice: Option<String>,
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
                    "note: {name} is not in {}; using the built-in digits8 instead (run `make data` to fetch {name})",
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
