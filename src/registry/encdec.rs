//! Catalogue section 4, transformers: the encoder–decoders (`transformer`, `t5`).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{t5, transformer};

const TRANSFORMER_INFO: &str = "TODO";
const T5_INFO: &str = "TODO";

pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "transformer",
        year: 2017,
        paper: "Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin, Attention is all you need, NIPS 2017",
        study: "translation",
        family: &transformer::FAMILY,
        summary: "attention alone translates the verses better than the LSTM with attention, and each epoch is faster",
        info: TRANSFORMER_INFO,
        preset: preset!("transformer"),
        smoke: smoke!("transformer"),
        claim: Some(Claim { text: "beats `attention` on test BLEU and trains faster per epoch", metric: "test_bleu" }),
    },
    Entry {
        name: "t5-pretrain",
        year: 2019,
        paper: "Raffel, Shazeer, Roberts, Lee, Narang, Matena, Zhou, Li & Liu, Exploring the limits of transfer learning with a unified text-to-text transformer, JMLR 2020 (arXiv 2019), §3.1.4 span corruption",
        study: "text-to-text",
        family: &t5::FAMILY,
        summary: "span-corruption pretraining of the text-to-text model (the first stage of `t5`)",
        info: T5_INFO,
        preset: preset!("t5-pretrain"),
        smoke: smoke!("t5-pretrain"),
        claim: None,
    },
    Entry {
        name: "t5",
        year: 2019,
        paper: "Raffel, Shazeer, Roberts, Lee, Narang, Matena, Zhou, Li & Liu, Exploring the limits of transfer learning with a unified text-to-text transformer, JMLR 2020 (arXiv 2019)",
        study: "text-to-text",
        family: &t5::FAMILY,
        summary: "one model and one loss translate verses and name a sentence's source, both written as text",
        info: T5_INFO,
        preset: preset!("t5"),
        smoke: smoke!("t5"),
        claim: Some(Claim { text: "one model and one loss serve both tasks: it translates the verses and names a sentence's source", metric: "test_bleu" }),
    },
    Entry {
        name: "t5-scratch",
        year: 2019,
        paper: "Raffel et al. 2019 (the multitask model without pretraining, for comparison)",
        study: "text-to-text",
        family: &t5::FAMILY,
        summary: "the same two tasks without span-corruption pretraining",
        info: T5_INFO,
        preset: preset!("t5-scratch"),
        smoke: smoke!("t5-scratch"),
        claim: None,
    }]
}
