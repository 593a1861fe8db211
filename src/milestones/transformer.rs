//! `transformer`: the encoder–decoder of Vaswani et al. 2017 (`nn::encdec`) on the translation
//! recipe of `attention` (`translate.rs`: the same verse pairs, vocabularies, batches, budget,
//! greedy decoding and BLEU), so the two compare on equal terms. The claim is in
//! `src/claims/encdec.rs`.

use super::seq2seq::Translation;
use super::translate::{self, Tensors, TranslationModel, Translator};
use super::{from_table, to_table, Family};
use crate::config::{ScheduleKind, TrainConfig};
use crate::data::pairs::{BOS, EOS, PAD, UNK};
use crate::error::DlError;
use crate::nn::dropout::DropPass;
use crate::nn::encdec::{encoder_decoder, EncDecCfg, EncoderDecoder};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

pub type Config = super::Config<translate::DataCfg, EncDecCfg>;

/// The data of `attention` (`translate::defaults()`), its batch size and number of updates;
/// the optimizer settings are the transformer's own (Adam with β2 = 0.98 and a warm-up, as the
/// paper; a cosine decay in place of its inverse square root).
pub fn defaults() -> Config {
    let t = translate::defaults();
    Config {
        train: TrainConfig {
            lr: 3e-3,
            beta2: 0.98,
            warmup_steps: 100,
            schedule: ScheduleKind::Cosine,
            min_lr: 1e-4,
            clip_grad_norm: 1.0,
            ..t.train
        },
        data: t.data,
        model: EncDecCfg { n_embd: 64, n_head: 4, n_enc: 2, n_dec: 2, mlp_ratio: 4, dropout: 0.1 },
    }
}

pub fn build(c: &Config, device: &Device) -> anyhow::Result<Translator<EncoderDecoder>> {
    if c.data.reverse_source {
        return Err(DlError::BadValue {
            context: "data.reverse_source".into(),
            message: "the transformer reads the whole source at once; reversing it is seq2seq's trick".into(),
        }
        .into());
    }
    Translator::new(&c.train, &c.data, device, |data, params| {
        Ok(encoder_decoder(&c.model, Some(data.src_vocab.len()), data.tgt_vocab.len(), params, device)?)
    })
}

pub static FAMILY: Family = Family {
    id: "transformer",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(build(&from_table::<Config>(t)?, d)?)),
};

impl TranslationModel for EncoderDecoder {
    fn batch_loss(&self, t: &Tensors, rng: Option<&mut Rng>) -> Result<Tensor> {
        let mut drop = match rng {
            Some(r) => DropPass::train(self.cfg.dropout, r),
            None => DropPass::eval(),
        };
        self.loss(&t.src, &t.keys, &t.dec_in, (&t.rows, &t.targets), &mut drop)
    }

    /// Cached greedy decoding; with `attention`, each sentence's cross-attention weights (the
    /// mean over decoder blocks and heads) for its output words.
    fn translate(&self, t: &Tensors, max_len: usize, attention: bool) -> Result<Vec<Translation>> {
        let ids = self.greedy(&t.src, &t.keys, (BOS, EOS), &[PAD, BOS, UNK], max_len)?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, ids) in ids.into_iter().enumerate() {
            let mut attn = vec![];
            if attention && !ids.is_empty() {
                // the position reading [<bos> y1 … y_{k-1}] wrote y_k
                let mut dec_in = vec![BOS];
                dec_in.extend(&ids[..ids.len() - 1]);
                let dec_in = Tensor::from_vec(dec_in, (1, ids.len()), t.src.device())?;
                let map = self.cross_attention_map(&t.src.narrow(0, i, 1)?, &t.keys[i..=i], &dec_in)?;
                attn = map.squeeze(0)?.to_vec2()?;
            }
            out.push(Translation { ids, attention: attn });
        }
        Ok(out)
    }

    fn attention_name(&self) -> &'static str {
        "cross-attention"
    }
}
