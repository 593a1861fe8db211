//! Catalogue section 4, transformers: the encoder–decoders (`transformer`, `t5`).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{t5, transformer};

const TRANSFORMER_INFO: &str = "The Transformer (Vaswani et al. 2017) translates without recurrence: an encoder of self-attention blocks reads the whole source at once, a decoder of blocks with causal self-attention, attention over the encoder's output (cross-attention) and an MLP writes the translation, positions given by sinusoids added to the embeddings. Every position of a layer is computed at the same time, so training parallelises over the sentence where an LSTM must step through it; the paper's headline was a higher BLEU than the recurrent models with attention (WMT'14 English→German 28.4) at a fraction of their training cost. Here the task and recipe are those of `attention` (see `dlhist info attention`): English→Spanish verse pairs, training on the 5,972 pairs of at most 16 words, testing on the 806 test pairs of up to 24 words, the same vocabularies, length-bucketed batches of 64, 1,500 updates (16 epochs), greedy decoding (never <unk>) and corpus BLEU-4. The model (`nn::encdec`): width 64, 4 heads, 2 encoder and 2 decoder blocks, MLP 4x, pre-LN, dropout 0.1 on the embeddings and on every sublayer's output, embeddings scaled by √C, the output layer tied to the target embedding (about 541k parameters against attention's LSTMs); the source's padding is a key mask, the self-attention is the fused flash op and the cross-attention its cross version (ops::attention_cross: queries from the decoder, keys and values from the encoder, padded keys never scored). Adam β2 0.98, lr 3e-3 with 100 warm-up steps and a cosine decay to 1e-4 (in place of the paper's inverse square root), clipping at 1. The preset was chosen on validation BLEU in exploratory runs before the claim protocol was written: width 64 at lr 1e-3 6.6, at lr 3e-3 12.2; width 96 (lr 1e-3) 9.9; 3+3 blocks (lr 2e-3) 11.2; width 128 with 1+1 blocks 9.7, with 2+2 blocks 12.6 at three times the time. `dlhist sample transformer --prompt \"In the beginning\"` translates the prompt and writes the cross-attention (the mean over decoder blocks and heads) as a heatmap, one row per output word. CLAIM PROTOCOL (written before calibrating): one run of `transformer` and one of `attention` at their presets (seed 1234; same data, batches and number of updates); the claim: the transformer's test BLEU is above attention's by at least a margin set to about half the gain measured in the calibration runs, and its training time per epoch (the mean time of the logged updates, forward, backward and optimizer step, evaluation excluded, times the updates per epoch) is below attention's. CALIBRATION: both models at seeds 1234 and 1, to be measured. Without `make data` both train on the synthetic cipher of moby text and the claim says NOT CHECKED.";
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
