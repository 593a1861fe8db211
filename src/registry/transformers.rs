//! Catalogue section 4, transformers: `gpt` (nanoGPT's CPU recipe), `gpt-3min`, and the size
//! ladder `gpt-xs`, `gpt-s`, `gpt-m`; fine-tuning a trained gpt: `lora` and `full-finetune`.

use super::{preset, smoke, Claim, Entry};
use crate::milestones::gpt;

const GPT_INFO: &str = "A decoder-only transformer language model (Radford, Narasimhan, Salimans & Sutskever 2018; GPT-2: Radford et al. 2019): token and learned position embeddings, then blocks of causal multi-head self-attention and a 4x-wide GELU MLP, each inside a residual connection after a LayerNorm (GPT-2's pre-LN arrangement), a final LayerNorm and a linear head over the vocabulary. Every position predicts the next token; the causal mask keeps a position from seeing the ones after it, so one pass trains all T predictions of a window at once. Here a char-LM on shakespeare (moby when not fetched; `make data` fetches it). The `gpt` preset is nanoGPT's CPU recipe for Shakespeare (Karpathy's nanoGPT README: 4 layers, 4 heads, 128 dims, block 64, batch 12, 2,000 iterations, AdamW β2 0.99 and weight decay 0.1 on the matrices, lr 1e-3 with 100 warmup steps and cosine decay to 1e-4, dropout 0, clipping at 1, GPT-2's init: N(0, 0.02²) everywhere, the two projections back into the residual stream N(0, (0.02/√(2·4))²), zero biases). Two differences from nanoGPT's model: the head is not tied to the token embedding, and the linears and LayerNorms have biases (`benches/pytorch_bench.py --recipe gpt` trains the same model in PyTorch). nanoGPT reports val ≈ 1.88 in about 3 minutes on a CPU. Validation: the last 10% of the text, scored once after training on 512 windows of 64 characters spread evenly over it (32,768 characters). The claim (protocol fixed before the calibration runs): after 2,000 iterations the validation loss is within noise of PyTorch's on the same recipe and data (at most its 1.90 + 0.03), in at most half PyTorch's training time on this machine (68 s on 2 threads, so ≤ 34 s). Training time is the run's wall time over its 2,000 steps (batches, forward, backward, clipping, AdamW, log lines; no evaluation, no checkpoint inside), the same span PyTorch's script times. The time half held only on the machine it was calibrated on (2 cores of an AMD EPYC with AVX-512), when otherwise idle; on the Intel Xeon (2 cores, AVX-512 with AVX512-FP16, no AMX) this project has run on since 2026-12-05 it FAILs: 65.2 s in the replay of 2026-12-05, and 0.74x PyTorch's time at best on 2026-12-07 (README's Performance). Elsewhere read the seconds beside the verdict. On moby the claim is not checked.\n\nCALIBRATION RUNS (2026-12-04, `dlhist --threads 2 train gpt`, seed 1234, shakespeare): val loss 1.8526 in each of three runs (the run is deterministic at a fixed seed and thread count); training time 54.0 s with the load average at 4 (other sessions training; 54.3 s of CPU over both threads), 222 s at load 11 (57.5 s of CPU), 102 s inside `compare gpt-xs gpt-s gpt-m`. The machine was never idle while these were measured, so the time half was not seen to pass: 55 s of CPU over two threads would be about 28-30 s of wall time on two idle cores, inside the goal, but that is an estimate, not a measurement. PyTorch: its 1.90 and 68 s are the issue's measurement on this machine when idle; a run of `benches/pytorch_bench.py --recipe gpt --threads 2` beside the loaded machine was stopped unfinished after 2,632 s (844 s of CPU: OpenMP threads spinning on oversubscribed cores). The val threshold 1.93 is PyTorch's 1.90 plus 0.03 set before the runs; dlhist's 1.853 is below PyTorch's.\n\nLATER, ON A QUIET MACHINE (2026-12-05 00:18-00:22 UTC, load average 1.7 from other sessions, nothing else of ours running; same code and protocol): `dlhist --threads 2 train gpt` 33.2 s and 32.7 s, val 1.8526, interleaved with `benches/pytorch_bench.py --recipe gpt --threads 2` 61.0 s and 68.8 s, val 1.8378 (PyTorch 2.15; its seed, not ours, so the losses differ within seed noise): median 33.0 s vs 64.9 s, 0.51x; then `dlhist --threads 2 replay gpt --budget full`: 33.7 s, PASS, with 0.3 s to spare, so on a busier machine it FAILs on time. `dlhist sample gpt --prompt \"ROMEO:\" --n 500 --temperature 0.8 --top-k 40` writes text; a character the text never contains is an error naming it.\n\nSINCE 2026-12-07 (the protocol unchanged): the preset splits each batch of 12 windows into two shards of 6 (`train.shards = 2`) whose forward and backward passes run side by side, one per thread, their gradients summed before the one update. The val loss is 1.85256 split and unsplit (the sums round differently, so the weights differ in their last bits). On the Zen 4 machine of that day (AMD EPYC family 25, model 17), three interleaved rounds gave 58.7, 55.9 and 61.0 s against PyTorch's 103.7, 94.2 and 99.9 s: 0.59x at the medians, the time half not met there, and the replay's fixed 34 s FAILs (README's Performance). Later that day the step's tail (the shards' gradient sum, the norm, clipping, AdamW) ran in two passes instead of four, with the same weights bit for bit; on an Intel Xeon (family 6, model 167) three interleaved rounds gave 40.0, 44.7 and 44.4 s against PyTorch's 71.4, 72.1 and 70.1 s: 0.62x, not met. On 2026-12-08 the learned positions were added inside the embedding op (same bits); on a Zen 4 EPYC (family 25, model 17) two interleaved rounds gave 51.3 and 50.5 s against PyTorch's 85.1 and 83.6 s: 0.60x, not met (there the products alone take about 16 ms of a 24-26 ms step, at the core's peak).";

const GPT_3MIN_INFO: &str = "The `gpt` recipe given three minutes of training on this project's 2 cores instead of about one: the same model (4 layers, 4 heads, 128 dims, 823,124 parameters, block 64, batch 12), 7,000 iterations instead of 2,000 (350 warmup, then cosine decay to 1e-4 over the run), otherwise `gpt`'s recipe: 3.5x its compute, 1.2 epochs of shakespeare's training text. No claim; its val loss is reported beside `gpt`'s by `dlhist compare gpt gpt-3min`. Why this size: with a fixed budget of time, a smaller model that sees more tokens beat larger ones that see fewer (Hoffmann et al. 2022 found the same trade at scale). RUNS (`dlhist --threads 2 train gpt-3min`, seed 1234, shakespeare; wall time of the whole command, /usr/bin/time, on 2 otherwise idle cores of an Intel Xeon): the first preset, 6 layers, 6 heads, 192 dims (2,714,196 parameters), 4,000 iterations, reached val 1.6295 (train 1.572) but took 289 s on 2026-12-07 (its 2026-12-04 calibration ran loaded, 411 s, and its 160-170 s on idle cores was an estimate from CPU time that did not hold). PROTOCOL for the resize, written before the runs: three configurations, one run each, the lowest val loss within 180 s of wall time wins. (a) that model at 2,400 iterations (120 warmup): val 1.7254, 171 s. (b) `gpt`'s model at 7,000 iterations (350 warmup): val 1.5853 (train 1.502), 164 s. (c) 5 layers, 5 heads, 160 dims (1,583,924 parameters) at 4,000 iterations (200 warmup): val 1.6461, 178 s. (b) is the preset; `gpt` itself reaches 1.8526 in 2,000 iterations. Three configurations were tried; a better one for three minutes may exist.";

const LADDER_INFO: &str = "Kaplan et al. (2020) found that a language model's test loss falls as a power law in its number of parameters, L(N) ≈ (N_c/N)^α with α ≈ 0.076 for non-embedding parameters, when data and compute do not limit it; Brown et al. (2020) carried the trend to GPT-3's 175 billion. Here a ladder of three sizes of the `gpt` model, each at least 5x the parameters of the one below, trained with the `gpt` recipe on the same tokens (2,000 iterations of 12 windows of 64 characters of shakespeare, moby when not fetched): `gpt-xs` 1 layer, 2 heads, 32 dims; `gpt-s` 2 layers, 4 heads, 64 dims; `gpt-m` 4 layers, 4 heads, 128 dims (the `gpt` model). `dlhist compare gpt-xs gpt-s gpt-m` fits ln(val loss) = ln a − α·ln N by least squares over all trainable parameters N, prints a, α and R², and draws the log–log plot (scaling.png). The claim (protocol fixed before the calibration runs): val loss falls with size, each rung below the one before, so the fitted exponent is positive. At this scale the loss is far from the irreducible entropy of the text and the tokens are fixed, so the exponent is not Kaplan's; it is reported, not checked.\n\nCALIBRATION RUNS (2026-12-04, `dlhist --threads 2 compare gpt-xs gpt-s gpt-m`, seed 1234, shakespeare, a loaded machine): gpt-xs 20,276 parameters val 2.3502 (3.1 s), gpt-s 115,028 val 2.0768 (12.3 s), gpt-m 823,124 val 1.8526 (102 s with other jobs running; 54 s in a quieter run); fit val loss = 4.419·N^(−0.0641), R² 0.997. Each rung is 0.22-0.27 below the one before (one seed each; the margin of the claim is that gap); the exponent, 0.064, is close to Kaplan et al.'s 0.076 by coincidence more than by law (three points, a fixed and small token budget, all parameters counted).";

const LORA_INFO: &str = "Low-rank adaptation (Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang & Chen 2021): to adapt a trained model to a new task, freeze its weights W and learn, beside each adapted projection, a product B·A of rank r (A: r x in, small random; B: out x r, zero at the start, so training starts from the base model exactly), scaled by α/r: the layer computes W·x + b + (α/r)·B·(A·x). The adapters can be folded in afterwards, W + (α/r)·B·A, so inference costs nothing extra; a test checks that merged and unmerged weights give the same logits. Here the base is a `gpt` run (`train.init_from = \"gpt\"`: the newest finished `gpt` run; without one the error says to run `dlhist train gpt`, about a minute), the character LM trained on shakespeare, and the new text is the State of the Union addresses (sotu; the built-in moby when not fetched). The vocabulary stays the base model's (`data.vocab_of = \"shakespeare\"`): each sotu character shakespeare never contains (digits, %, $, accented letters…) becomes a space, so the new text is read with the base model's embedding and head. `lora`: rank-4 adapters (α 8) on every attention projection (c_attn's q, k and v at once, and c_proj) of the 4 blocks, 12,288 trainable parameters; everything else frozen, so the checkpoint holds the adapters plus the base run's path and sha256 (checked when loading; `dlhist sample lora` loads base + adapters). `full-finetune`: the same start, data and 600 steps of 12 windows of 64 characters, every parameter trainable (823,124), lr 5e-4 (LoRA's 2e-3: the adapters start at zero). `dlhist compare lora full-finetune` prints val loss, trainable parameters and checkpoint bytes of each. The claim (protocol fixed before the calibration runs): one `gpt` run, then `lora` and `full-finetune` from it; LoRA's val loss on sotu is at most 1.05x full fine-tuning's, with fewer than 2% of its trainable parameters. Val loss: the last 10% of sotu, 512 windows of 64 characters, once at the end. On the moby fallback the claim is not checked.\n\nCALIBRATION RUN (2026-12-05 03:11-03:17 UTC, `dlhist --threads 2 replay lora --budget full`, seed 1234, shakespeare -> sotu, a loaded machine: load average 10-11 from other sessions, a test build of ours beside it for part of the time): gpt val 1.8526 in 141.7 s; lora val 1.9855, 12,288 trainable parameters (823,124 frozen), checkpoint 50,904 bytes, 85.6 s; full-finetune val 1.8226, 823,124 trainable, checkpoint 3,297,304 bytes, 90.7 s. Ratio 1.0894 > 1.05: FAIL (the parameter half holds: 1.49%). One run, one configuration, no tuning after it (a larger lr or rank, or more steps, may close the gap; the protocol stays as written). The replay took 336 s of wall time on the loaded machine (90 s of CPU), above the 5-minute goal there.";

pub fn entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "gpt",
            year: 2018,
            paper: "Radford, Narasimhan, Salimans & Sutskever, Improving language understanding by generative pre-training, 2018; recipe: Karpathy, nanoGPT, 2023",
            study: "gpt",
            family: &gpt::FAMILY,
            summary: "nanoGPT's CPU recipe reaches PyTorch's val loss in half its training time",
            info: GPT_INFO,
            preset: preset!("gpt"),
            smoke: smoke!("gpt"),
            claim: Some(Claim {
                text: "nanoGPT's CPU recipe reaches PyTorch's val loss (≤ 1.90 + 0.03) in at most half its training time (≤ 34 s)",
                metric: "val_loss",
            }),
        },
        Entry {
            name: "gpt-3min",
            year: 2019,
            paper: "Radford, Wu, Child, Luan, Amodei & Sutskever, Language models are unsupervised multitask learners, 2019 (more tokens)",
            study: "gpt",
            family: &gpt::FAMILY,
            summary: "the best gpt trained in three minutes here",
            info: GPT_3MIN_INFO,
            preset: preset!("gpt-3min"),
            smoke: smoke!("gpt-3min"),
            claim: None,
        },
        Entry {
            name: "gpt-xs",
            year: 2020,
            paper: "Kaplan, McCandlish, Henighan, Brown, Chess, Child, Gray, Radford, Wu & Amodei, Scaling laws for neural language models, 2020",
            study: "gpt-scaling",
            family: &gpt::FAMILY,
            summary: "the size ladder: val loss falls with parameters, as a power law",
            info: LADDER_INFO,
            preset: preset!("gpt-xs"),
            smoke: smoke!("gpt-xs"),
            claim: Some(Claim {
                text: "val loss falls with size across gpt-xs, gpt-s, gpt-m (same tokens); the fitted power-law exponent is positive",
                metric: "power-law exponent α of val loss against parameters",
            }),
        },
        Entry {
            name: "gpt-s",
            year: 2020,
            paper: "Kaplan et al., 2020 (the middle rung)",
            study: "gpt-scaling",
            family: &gpt::FAMILY,
            summary: "the ladder's middle rung",
            info: LADDER_INFO,
            preset: preset!("gpt-s"),
            smoke: smoke!("gpt-s"),
            claim: None,
        },
        Entry {
            name: "gpt-m",
            year: 2020,
            paper: "Kaplan et al., 2020 (the top rung: the gpt model)",
            study: "gpt-scaling",
            family: &gpt::FAMILY,
            summary: "the ladder's top rung, the gpt model",
            info: LADDER_INFO,
            preset: preset!("gpt-m"),
            smoke: smoke!("gpt-m"),
            claim: None,
        },
        Entry {
            name: "lora",
            year: 2021,
            paper: "Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang & Chen, LoRA: Low-rank adaptation of large language models, 2021",
            study: "gpt",
            family: &gpt::FAMILY,
            summary: "rank-4 adapters adapt a trained gpt to a new text almost as well as full fine-tuning, with <2% of its parameters",
            info: LORA_INFO,
            preset: preset!("lora"),
            smoke: smoke!("lora"),
            claim: Some(Claim {
                text: "LoRA's val loss is within 5% of full fine-tuning's with fewer than 2% of its trainable parameters",
                metric: "val loss of lora over full-finetune's",
            }),
        },
        Entry {
            name: "full-finetune",
            year: 2021,
            paper: "Hu et al., 2021 (the reference: every parameter fine-tuned)",
            study: "gpt",
            family: &gpt::FAMILY,
            summary: "the trained gpt fine-tuned whole on a new text: LoRA's reference",
            info: LORA_INFO,
            preset: preset!("full-finetune"),
            smoke: smoke!("full-finetune"),
            claim: None,
        },
    ]
}
