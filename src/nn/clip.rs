//! CLIP's two towers at toy scale (Radford et al. 2021 use a ResNet/ViT and a Transformer):
//! a small CNN image encoder and a bag-of-words text encoder, each ending in a linear
//! projection to a shared `dim` and L2 normalisation, so that a dot product is a cosine.
//! Reusable by later image–text milestones (reranking, an embedding prior).

use super::activation::Activation;
use super::contrastive::l2_normalize;
use super::conv::{conv2d, Conv2d};
use super::embedding::{embedding, Embedding};
use super::linear::{linear, InitKind, Linear};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Image tower: `channels.len()` stride-2 3×3 conv + ReLU stages, a global mean over space,
/// and a linear projection to `dim`. (B, 3, H, W) → (B, dim), unit rows.
pub struct ImageEncoder {
    convs: Vec<Conv2d>,
    proj: Linear,
}

impl ImageEncoder {
    pub fn new(channels: &[usize], dim: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = vec![];
        let mut c_in = 3;
        for (i, &c) in channels.iter().enumerate() {
            convs.push(conv2d(c_in, c, 3, 2, 1, vb.pp(format!("conv{i}")))?);
            c_in = c;
        }
        Ok(Self { convs, proj: linear(c_in, dim, InitKind::Default, vb.pp("proj"))? })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for c in &self.convs {
            h = Activation::Relu.forward(&c.forward(&h)?)?;
        }
        let pooled = h.flatten_from(2)?.mean(D::Minus1)?;
        l2_normalize(&self.proj.forward(&pooled)?)
    }
}

/// Text tower: word embeddings averaged over the caption's words (a padded id matrix with a
/// 0/1 mask), a hidden ReLU layer, and a linear projection to `dim`. (B, L) → (B, dim), unit rows.
pub struct TextEncoder {
    emb: Embedding,
    hidden: Linear,
    proj: Linear,
}

impl TextEncoder {
    pub fn new(vocab: usize, width: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            emb: embedding(vocab, width, 1.0 / (width as f64).sqrt(), vb.pp("emb"))?,
            hidden: linear(width, width, InitKind::He, vb.pp("hidden"))?,
            proj: linear(width, dim, InitKind::Default, vb.pp("proj"))?,
        })
    }

    /// `ids`: (B, L) u32; `mask`: (B, L) f32, 1 for words and 0 for padding (every row needs a word).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let e = self.emb.forward(ids)?; // (B, L, width)
        let summed = e.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum_keepdim(1)?)?;
        let h = self.hidden.forward_act(&mean, Activation::Relu)?;
        l2_normalize(&self.proj.forward(&h)?)
    }
}

/// Pads word-id lists to one length: (ids (B, L) u32, mask (B, L) f32) as flat row-major vectors
/// and L. Padding uses id 0 with mask 0.
pub fn pad_ids(captions: &[Vec<u32>]) -> (Vec<u32>, Vec<f32>, usize) {
    let l = captions.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![0u32; captions.len() * l];
    let mut mask = vec![0f32; captions.len() * l];
    for (b, c) in captions.iter().enumerate() {
        for (t, &w) in c.iter().enumerate() {
            ids[b * l + t] = w;
            mask[b * l + t] = 1.0;
        }
    }
    (ids, mask, l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;
    use candle_core::{Device, Tensor};

    #[test]
    fn towers_give_unit_rows_and_every_parameter_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let params = Params::new(3);
        let vb = params.vb(&dev);
        let img = ImageEncoder::new(&[4, 8], 6, vb.pp("img"))?;
        let txt = TextEncoder::new(5, 8, 6, vb.pp("txt"))?;
        let x =
            Tensor::from_vec((0..2 * 3 * 8 * 8).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>(), (2, 3, 8, 8), &dev)?;
        let (ids, mask, l) = pad_ids(&[vec![1, 2, 3], vec![4]]);
        assert_eq!((l, &mask[3..]), (3, &[1.0, 0.0, 0.0][..]));
        let ids = Tensor::from_vec(ids, (2, l), &dev)?;
        let mask = Tensor::from_vec(mask, (2, l), &dev)?;
        let (zi, zt) = (img.forward(&x)?, txt.forward(&ids, &mask)?);
        assert_eq!(zi.dims(), [2, 6]);
        let norms: Vec<f32> = zt.sqr()?.sum(1)?.to_vec1()?;
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        // Padding does not change a caption's embedding: [4] alone equals [4] padded.
        let single = txt.forward(&Tensor::new(&[[4u32]], &dev)?, &Tensor::new(&[[1f32]], &dev)?)?;
        let diff = (single - zt.narrow(0, 1, 1)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        let scale = vb.get_with_hints((), "log_scale", candle_nn::init::Init::Const(1.0))?;
        let loss = crate::nn::contrastive::info_nce(&zi, &zt, &scale)?;
        crate::nn::tests::assert_every_param_gets_a_gradient(&params, &loss)
    }
}
