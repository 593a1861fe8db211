//! Datasets and how they reach the models: loaders (idx, digits csv, char and word text, verse
//! pairs), the paper tasks, and batching.

pub mod analogy;
pub mod augment;
pub mod batch;
pub mod canvas;
pub mod catalog;
pub mod continual;
pub mod digits;
pub mod emoji;
pub mod idx;
pub mod masking;
pub mod pairs;
pub mod paper_tasks;
pub mod phrases;
pub mod provenance;
pub mod seq_tasks;
pub mod sword;
pub mod text;
pub mod verses;
pub mod vision;
pub mod words;

/// Grayscale images in [0, 1] with integer labels; image i is `pixels[i*h*w .. (i+1)*h*w]`.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    pub h: usize,
    pub w: usize,
    pub classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.h * self.w
    }
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * self.dim()..(i + 1) * self.dim()]
    }
    /// The images at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(idx.len() * self.dim());
        for &i in idx {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            pixels,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            h: self.h,
            w: self.w,
            classes: self.classes,
        }
    }
}
