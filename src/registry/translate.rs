//! Catalogue section 3, sequence modeling: the translation milestones (one family; the
//! variants differ by config).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::translate;

const S2S_INFO: &str = "Sequence to sequence learning (Sutskever, Vinyals & Le 2014; Cho et al. 2014): one LSTM reads the source sentence and its final state (h, c) starts a second LSTM that writes the translation word by word; it trains with teacher forcing (the decoder reads the reference's previous word) and translates greedily. Sutskever et al. found that feeding the source backwards raised BLEU on WMT'14 English→French from 25.9 to 30.6: the first source words then sit next to the first target words, which gives the optimisation short dependencies to start from. Here the task is English→Spanish verse pairs (KJV → Reina-Valera 1909): training on the 5,972 pairs with at most 16 words a side (`data.max_words`, the short pairs), testing on the 806 test pairs of up to 24 words (`data.eval_max_words`); words seen fewer than 3 times in training become <unk> (vocabularies of 2,358 English and 2,442 Spanish entries, the four specials included). Embeddings 64, LSTMs of 128, Adam lr 5e-3, gradient norm clipped at 5, 1,500 updates of 64 pairs (16 epochs); batches group sentences of similar length, the source is left-padded and the loss counts only real target tokens. The metric is corpus BLEU-4 with brevity penalty (× 100) of greedy translations (which never emit <unk>) against the full references. The claim: test BLEU with the source reversed (`seq2seq-reversed`) is at least 0.5 above reading order (`seq2seq`); the margin is about half the gain measured on two seeds. Calibrated with the first LSTM op: 3.79 vs 2.86 (seed 1234) and 3.92 vs 3.06 (seed 2); later, with the AVX-512 gemms, 3.64 vs 2.87 (seed 1234) and 3.46 vs 3.05 (seed 1). With the LSTM op of 2026-11-29 (the batch in the vector lanes: the same function, gradients equal to the reference within 1e-6 relative, only the f32 summation order differs) the margin is 3.19 vs 3.04 (seed 1234), 3.32 vs 3.18 (seed 2) and 3.08 vs 3.13 (seed 1), so the claim FAILs; the validation loss favours the reversed source in every one of these runs (3.822 vs 3.910, 3.884 vs 3.909, 3.829 vs 3.897). At BLEU near 3 the score of greedy translations moves by tenths with the rounding of the training run, so the +0.5 margin is not a robust test at this scale; it stays as calibrated and FAILs with its numbers. BLEU is low at this scale (2 CPU minutes, 6k pairs): the models write fluent biblical Spanish that follows the source only loosely, and plain seq2seq overfits after about 1,000 updates (val loss 3.72 there, 3.90 at the end). Time: one run is about 69 CPU seconds on one thread; `dlhist replay seq2seq-reversed --threads 2` (both runs) took 104 s on the shared 2-core machine. Without `make data` the milestones train on a synthetic word-by-word cipher of moby text so the pipeline runs; the claims are checked only on the real verse pairs and FAIL as not checked on the fallback.\n\n\
BEFORE (until 2026-12-05): one seed, 3.19 vs 3.04: FAIL.\n\n\
THE CLAIM'S PROTOCOL SINCE 2026-12-05 (written down before it was run): everything above (one-layer LSTM encoder and decoder of 256 as first written, a slip in the text: the runs, before and since, used the defaults above, LSTMs of 128 and embeddings of 64; the same data, budget and +0.5 BLEU threshold), at three seeds by default (the presets' train.seed and +1000, +2000): the verdict compares the mean test BLEU of the reversed source with that of reading order, and says whether the margin exceeds its spread across seeds. The paper's deeper encoder (4 layers) is left out: the encoder is one fused LSTM layer, and four would take about 2.5x the encoder time of each of the six runs, past the claim's budget of a few minutes.\n\n\
RESULT of that protocol (`dlhist --threads 2 replay seq2seq-reversed`, 2026-12-05, machine loaded by other jobs): mean test BLEU 3.21 reversed vs 2.97 in reading order (+0.24; per seed the reversed BLEU 3.19, 3.46, 2.99); the margin to the +0.5 threshold, −0.25, is within its seed sd of 0.35: FAIL, as before. Reversal helps a little on average (and in validation loss, 3.823 vs 3.886), but at BLEU near 3 the gain is inside the noise between seeds.";
const ATTN_INFO: &str = "Bahdanau, Cho & Bengio (2014) let the decoder look back at every encoder state: it scores each source position against its own state, averages the encoder states by the softmax of those scores (the context) and predicts the next word from it, so the sentence no longer has to pass through one fixed-size vector; their fig. 2 shows the BLEU of the plain encoder–decoder falling with sentence length while the attention model holds. We build the global attention of Luong, Pham & Manning (2015) instead: score h_tᵀ·W_a·h̄_s, context c_t, h̃_t = tanh(W_c·[c_t; h_t]) feeding the output layer. Bahdanau's context enters each decoder step, which forces a per-step loop; Luong's is applied to the decoder's outputs, so both LSTMs stay one fused whole-sequence op each and the scores of all decoder steps are one batched matrix. Measured once on the shared machine for the decoder plus attention, forward and backward at batch 64, 16 steps, H 128: 45 ms this way against 150 ms for Bahdanau's additive attention in a per-step loop (3.3x). Source padding is masked in the scores and the loss ignores padded targets. Same task, model size and budget as `seq2seq` (training pairs of at most 16 words, test pairs up to 24); BLEU is also reported by source-length bucket (tokens, punctuation included: 0-15, 16-20, 21-25, 26+) and split at 20 tokens (`test_bleu_short`, `test_bleu_long`; 20 tokens is about the longest training source). The claim: on test sources of more than 20 tokens attention scores at least 3 BLEU above plain seq2seq and keeps a larger share of its short-source BLEU. Measured on seeds 1234 and 2: on long sources attention 9.11 and 8.78 vs seq2seq 1.87 and 2.22, keeping 93% and 82% of its short-source BLEU against 48% and 56%; overall 9.38 and 9.57 vs 2.86 and 3.06; by bucket (seed 1234) attention 11.1, 9.1, 9.8, 8.0 vs seq2seq 4.6, 3.6, 2.0, 1.7. With the LSTM op of 2026-11-29 (batch in the vector lanes, same function): long sources 9.85 vs 2.40, keeping 95% vs 63%, overall 10.08 vs 3.04 (seed 1234). The attention model learns slowly for its first 1,000 updates (val BLEU 2.4 there) and then quickly (9.4 at 1,500), so a much shorter budget would not show it. Attention costs about 25% more time per update (86 against 69 CPU seconds for the 1,500 updates). `dlhist replay attention --threads 2` took 76 s for the attention run on the shared 2-core machine, plus about 50 s for the seq2seq run when it is not already cached. `dlhist sample attention --prompt \"In the beginning\"` translates the prompt (unknown words become <unk>, with a notice naming them) and prints the attention matrix as a table. Without `make data` it trains on a synthetic cipher of moby text; the claim is checked only on the real verse pairs.";

pub fn entries() -> Vec<Entry> {
    vec![
    Entry {
        name: "seq2seq",
        year: 2014,
        paper: "Sutskever, Vinyals & Le, Sequence to sequence learning with neural networks, NIPS 2014; Cho et al., Learning phrase representations using RNN encoder-decoder, EMNLP 2014",
        study: "translation",
        family: &translate::FAMILY,
        summary: "an LSTM encoder-decoder translates verses; reading the source in order trails reversing it",
        info: S2S_INFO,
        preset: preset!("seq2seq"),
        smoke: smoke!("seq2seq"),
        claim: Some(Claim { text: "in reading order, test BLEU is at least 0.5 below the reversed source's", metric: "test_bleu" }),
    },
    Entry {
        name: "seq2seq-reversed",
        year: 2014,
        paper: "Sutskever, Vinyals & Le, Sequence to sequence learning with neural networks, NIPS 2014 (section 3.3, reversing the source)",
        study: "translation",
        family: &translate::FAMILY,
        summary: "reversing the source sentence raises BLEU",
        info: S2S_INFO,
        preset: preset!("seq2seq-reversed"),
        smoke: smoke!("seq2seq-reversed"),
        claim: Some(Claim { text: "reversing the source raises test BLEU by at least 0.5", metric: "test_bleu" }),
    },
    Entry {
        name: "attention",
        year: 2014,
        paper: "Bahdanau, Cho & Bengio, Neural machine translation by jointly learning to align and translate, ICLR 2015 (arXiv 2014); Luong, Pham & Manning, Effective approaches to attention-based NMT, EMNLP 2015",
        study: "translation",
        family: &translate::FAMILY,
        summary: "attention holds BLEU on long sources where plain seq2seq falls",
        info: ATTN_INFO,
        preset: preset!("attention"),
        smoke: smoke!("attention"),
        claim: Some(Claim { text: "on long sources attention beats plain seq2seq by ≥ 3 BLEU and keeps more of its short-source BLEU", metric: "test_bleu_long" }),
    },
    ]
}
