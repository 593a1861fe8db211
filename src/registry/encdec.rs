//! Catalogue section 4, transformers: the encoder–decoders (`transformer`, `t5`).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{t5, transformer};

const TRANSFORMER_INFO: &str = "The Transformer (Vaswani et al. 2017) translates without recurrence: an encoder of self-attention blocks reads the whole source at once, a decoder of blocks with causal self-attention, attention over the encoder's output (cross-attention) and an MLP writes the translation, positions given by sinusoids added to the embeddings. Every position of a layer is computed at the same time, so training parallelises over the sentence where an LSTM must step through it; the paper's headline was a higher BLEU than the recurrent models with attention (WMT'14 English→German 28.4) at a fraction of their training cost. Here the task and recipe are those of `attention` (see `dlhist info attention`): English→Spanish verse pairs, training on the 5,972 pairs of at most 16 words, testing on the 806 test pairs of up to 24 words, the same vocabularies, length-bucketed batches of 64, 1,500 updates (16 epochs), greedy decoding (never <unk>) and corpus BLEU-4. The model (`nn::encdec`): width 64, 4 heads, 2 encoder and 2 decoder blocks, MLP 4x, pre-LN, dropout 0.1 on the embeddings and on every sublayer's output, embeddings scaled by √C, the output layer tied to the target embedding (about 541k parameters against attention's LSTMs); the source's padding is a key mask, the self-attention is the fused flash op and the cross-attention its cross version (ops::attention_cross: queries from the decoder, keys and values from the encoder, padded keys never scored). Adam β2 0.98, lr 3e-3 with 100 warm-up steps and a cosine decay to 1e-4 (in place of the paper's inverse square root), clipping at 1. The preset was chosen on validation BLEU in exploratory runs before the claim protocol was written: width 64 at lr 1e-3 6.6, at lr 3e-3 12.2; width 96 (lr 1e-3) 9.9; 3+3 blocks (lr 2e-3) 11.2; width 128 with 1+1 blocks 9.7, with 2+2 blocks 12.6 at three times the time. `dlhist sample transformer --prompt \"In the beginning\"` translates the prompt and writes the cross-attention (the mean over decoder blocks and heads) as a heatmap, one row per output word. CLAIM PROTOCOL (written before calibrating): one run of `transformer` and one of `attention` at their presets (seed 1234; same data, batches and number of updates); the claim: the transformer's test BLEU is above attention's by at least a margin set to about half the gain measured in the calibration runs, and its training time per epoch (the mean time of the logged updates, forward, backward and optimizer step, evaluation excluded, times the updates per epoch) is below attention's. CALIBRATION (2026-12-04, `dlhist --threads 2 replay transformer` for seed 1234, `dlhist --threads 2 train transformer --set train.seed=1` and the same for attention; on the shared 2-core machine under a load average of about 10 from other sessions): test BLEU transformer 13.34 vs attention 10.08 (seed 1234) and 12.82 vs 7.65 (seed 1), gains of 3.26 and 5.17, so the margin is 1.5 BLEU, about half the smaller gain; on sources of more than 20 tokens 11.26 vs 9.85 and 10.43 vs 6.70; val loss 2.936 vs 3.088 and 2.951 vs 3.290. Time per epoch (the claim's mean of the logged updates): 7.89 s vs 6.62 s (1.19x) and 6.12 s vs 5.08 s (1.20x); the median update 46.9 vs 68.6 ms and 43.4 vs 34.7 ms, the fastest update 24.6 vs 20.7 ms and 25.5 vs 18.2 ms. So at this scale on 2 CPU cores the transformer translates better but an epoch is about 20% slower than the LSTM with attention (whose fused LSTM op steps through 16-word sentences cheaply; the transformer's advantage, parallel positions, matters on long sequences and wide accelerators): the time half of the claim does not reproduce and the claim FAILs with its numbers; `below 1x` stays as the paper's claim. Whole runs took 128 s and 101 s (transformer) and 111 s and 81 s (attention), evaluation included. The replay after the last merge (`dlhist --threads 2 replay transformer --budget full`) measured the same BLEU (13.34 vs 10.08) and 7.34 s vs 5.21 s per epoch (1.41x; median update 83.1 vs 58.2 ms), 222 s for the claim, on the loaded machine. Without the verse pairs (`dlhist data fetch verses`) both train on the synthetic cipher of moby text and replay reports the claim as SKIP (not checked).";
const T5_INFO: &str = "T5 (Raffel et al. 2019) casts every task as text to text: one encoder–decoder, one vocabulary, one cross-entropy loss, the task named by a prefix of the input (`translate English to German: …`, `cola sentence: …`), the answer written as words, even a class label. It is pretrained without labels by span corruption (§3.1.4): 15% of the tokens are dropped in spans of mean length 3, each span replaced by a sentinel <x_i>, and the target lists the sentinels followed by the spans they hide; the same model is then trained on the tasks. Here, at toy scale: the encoder–decoder of `transformer` (`nn::encdec`: width 64, 4 heads, 2 + 2 pre-LN blocks, MLP 4x, dropout 0.1) with one shared lowercased word vocabulary (at most 8,000 entries: specials, 8 sentinels, the prompt and label words, the words of the training verse pairs seen at least 3 times, then the most frequent words of the other texts) and the source and target embeddings tied. `t5-pretrain` trains it by span corruption (a new corruption of each sentence every time it is fed) on both sides of the 5,972 training verse pairs and 6,000 training sentences each of shakespeare, moby and sotu: 1,000 updates of 64 sentences, Adam β2 0.98, lr 3e-3, 100 warm-up steps, cosine decay to 1e-4. `t5` starts from its newest finished run (train.init_from) and trains one model on two tasks mixed in every batch: `translate English to Spanish: <verse>` → the Spanish verse (attention's verse pairs and split) and `source: <sentence>` → the name of the text it comes from (bible, shakespeare, moby or sotu; 1,500 training and 200 validation and test sentences of 5 to 24 words per text, sentences assigned to splits by a hash of their words); 3,000 updates of 64, the same optimizer (about half of each batch is verse pairs: some 16 epochs of them, as `transformer`'s 1,500 updates of pairs only). `t5-scratch` is t5 from a random init. Metrics: test BLEU-4 of greedy translations (as `attention`) and provenance accuracy (the greedy answer must be exactly the label). `dlhist sample t5 --prompt \"source: Call me Ishmael.\"` or `--prompt \"translate English to Spanish: in the beginning\"`; `dlhist sample t5-pretrain --prompt \"call me <x0> .\"` fills a sentinel. CLAIM PROTOCOL (written before calibrating): one t5-pretrain run and t5 started from it (seed 1234); the claim: one model with one loss does both tasks, test BLEU at least T5_BLEU and provenance accuracy at least T5_ACC, set to about half the BLEU measured in the calibration and halfway between chance (25%) and the accuracy measured. A first calibration at 750 updates of `t5` (the budget first written in this protocol) gave test BLEU 0.54 (greedy translations degenerate into repeated words: undertrained) with provenance accuracy 79.0% (pretraining 28 s, t5 39 s); after seeing it the budget was raised to 3,000 updates, before any threshold was set. CALIBRATION (thresholds set from the first calibration run, 2026-12-04, seed 1234: test BLEU 5.74, provenance accuracy 83.0%): 2026-12-05, `dlhist --threads 2 replay t5` (194 s on a 2-core machine running about 2x slower than on 2026-12-05's idle runs): span-corruption val loss 9.864 -> 3.047 in 1,000 updates, then test BLEU 6.05 and provenance accuracy 83.4% (bible 87%, moby 76%, shakespeare 80%, sotu 90%; every answer a text's name): PASS. WHAT PRETRAINING BUYS HERE: nothing; it costs. `t5-scratch` (the same 3,000 updates from a random init, `dlhist --threads 2 train t5-scratch`, 295 s) reaches test BLEU 12.50 and accuracy 81.3%, so at this scale pretraining halves the BLEU and adds 2 points of accuracy. The pretrained model starts the two tasks at val loss 10.17 (random init: 9.49) and its training loss stays about 0.3 nats above the scratch run's (3.40 vs 3.04 after 600 updates). This was first taken for a loading bug, and checked: a `t5-pretrain` run of one update at lr 1e-12 with seed 7, loaded by `t5` (69 tensors loaded, 0 missing, 0 unexpected), evaluates at step 0 to exactly the val loss of `t5-scratch --seed 7` (9.51326), and with seed 1234 the two runs' training curves agree to the last printed digit; so `train.init_from` loads every tensor and carries no optimizer state or schedule step. The likely reason (not tested further): 1,000 updates of span corruption teach this small model little beyond word frequencies and the sentinel format (its loss falls from 9.6 to 3.6 in 70 updates, then only to 3.0 by 1,000), and the decoder has to unlearn writing sentinels; the paper pretrains for 2^19 updates before 2^18 of fine-tuning, here 1,000 before 3,000. The protocol was not changed after seeing this.  Without the verse pairs (`dlhist data fetch verses`) the translation task is the synthetic cipher and replay reports the claim as SKIP (not checked).";

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
