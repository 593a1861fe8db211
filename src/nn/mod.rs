//! Layers, written the candle-nn way (a constructor taking a `VarBuilder`), for what candle-nn
//! lacks or gets wrong for training. Each layer's math is one `*_ref` function
//! composed of candle ops with a backward, so a fused op (src/ops) can replace it in one place.

pub mod activation;
pub mod attention;
pub mod batchnorm;
pub mod bce;
pub mod clip;
pub mod contrastive;
pub mod conv;
pub mod cross_attention;
pub mod decoder;
pub mod dropout;
pub mod embedding;
pub mod encdec;
pub mod encoder;
pub mod groupnorm;
pub mod latent;
pub mod linear;
pub mod lora;
pub mod loss;
pub mod lstm;
pub mod mlp;
pub mod moe;
pub mod norm;
pub mod patch;
pub mod skipgram;
pub mod time_unet;
pub mod transformer;
pub mod unet;
pub mod vq;

#[cfg(test)]
pub(crate) mod tests {
    use crate::params::Params;
    use candle_core::{Result, Tensor};

    /// Backprops `loss` and asserts that every trainable parameter in `params` gets a gradient
    /// that is finite and not all zero (an op without a backward silently cuts it).
    pub fn assert_every_param_gets_a_gradient(params: &Params, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        let mut bad = vec![];
        for (name, var) in params.trainable() {
            match grads.get(var.as_tensor()) {
                None => bad.push(format!("{name}: no gradient")),
                Some(g) => {
                    let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
                    if g.iter().any(|x| !x.is_finite()) {
                        bad.push(format!("{name}: non-finite gradient"));
                    } else if g.iter().all(|&x| x == 0.0) {
                        bad.push(format!("{name}: all-zero gradient"));
                    }
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
        Ok(())
    }
}
