//! Catalogue section 4, generative models: the GAN and denoising diffusion (and the schedule and
//! guidance variants of diffusion), compared by the Fréchet distance of their samples.

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{diffusion, gan};

/// How FD is measured, for every generative entry's info text.
macro_rules! fd {
    () => {
        "FD, the Fréchet distance (as the FID of Heusel et al. 2017, with a small classifier in place of Inception): 1,000 generated images and all real images of the split go through a LeNet-5 trained by this project (`lenet`'s preset on the same dataset, trained once on demand and kept under checkpoints/lenet/; 8x8 digits are resampled to 28x28 as lenet sees them), a Gaussian is fitted to the 84 activations of its last hidden layer for each set, and FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½ (report/fd.rs, the square root through nalgebra). Lower is better; the test images against themselves score 0."
    };
}

const GAN_INFO: &str = concat!("Generative adversarial nets (Goodfellow et al. 2014): a generator G turns noise z into images and a discriminator D learns to tell them from real ones; each training step updates D (real → 1, generated → 0), then G, to make D call its images real. The paper's \"non-saturating\" loss −log D(G(z)) replaces log(1 − D(G(z))), whose gradient vanishes while D wins easily early on. Shapes: the MLP GAN of the PyTorch and Keras tutorials, chosen because the paper's own MNIST nets (maxout MLPs) are not specified to the unit and these are the ones people run: G 100 → 256 → 512 → 1024 → 784 with LeakyReLU 0.2 and tanh out; D 784 → 1024 → 512 → 256 → 1 with LeakyReLU 0.2 and dropout 0.3; Adam lr 2e-4, β1 0.5 (Radford et al. 2015's settings), batch 64, images in [−1, 1]. The two optimizers are the engine's two parameter groups (`[train.groups.discriminator]`, `[train.groups.generator]`), updated in one step. A GAN has no likelihood: its validation \"loss\" is the FD of 1,000 samples (the same noise at every evaluation) against the 5,000 validation images, every 500 updates. CLAIM PROTOCOL (written before calibration): train the preset; the FD falls during training: the final validation FD divided by the FD at the first evaluation after training began (step 500) must be at most a threshold set from the calibration runs below. `dlhist sample gan --n 64` draws an 8x8 grid. CALIBRATION RUNS (`dlhist --threads 2 replay gan diffusion ddpm-cosine ddpm --budget full`, MNIST, seed 1234, a loaded 2-core machine): the threshold 0.5 (FD at least halves after step 500) was fixed before the run and not changed after it; validation FD 980.7 at step 0, 607.5 at 500, 471.4 at 1,000, 142.3 at 6,000, 65.9 at 10,500, 53.9 at 12,500, 35.5 at 18,000 (not monotone: 88.99 at 10,000, 66.2 at 14,000); final/step-500 = 0.058, PASS; test FD 30.92; 18,000 updates in 657 s (660 s for the claim). SEEDS (`dlhist --threads 2 replay --seeds 3 gan diffusion ddpm ddpm-cosine`, 2026-12-06, a later build, whose seed-1 run gives test FD 30.69 where the run above gave 30.92; a machine running 1.9x slower than README's Performance table): final/step-500 = 0.0587, 0.0369, 0.0357, margin −0.457 against a seed sd of 0.013 (35x); test FD 30.69, 26.10, 23.68; 18,000 updates in 693, 635 and 648 s. THE FUSED STEP (2026-12-06, later): each hidden layer's LeakyReLU now runs inside the fused linear op, and D's update sees the real and generated images as one batch of 128 (the same losses: D has no batch statistics); about 16% faster per step. The runs are no longer bitwise those above: at a pre-activation of exactly 0 the gradient now takes the slope 0.2, as PyTorch's leaky_relu, where candle's maximum split it, and the dropout masks are drawn in another order. The same replay of `gan diffusion` (47 min, a quiet machine): final/step-500 = 0.0510, 0.0717, 0.0577, margin −0.441 against a seed sd of 0.011 (42x); test FD 30.54, 40.28, 27.67; 18,000 updates in 552, 552 and 561 s. Three seeds by default all the same, because `diffusion`, which shares its runs, needs them. EQUAL TIME AGAIN (2026-12-06 13:50 UTC, a change of protocol made after seeing the results above, written before its runs): the U-Net's direct convolutions made diffusion's update 2.7x faster while the GAN's got 1.2x faster, so the preset's 18,000 updates gave the GAN 2.4–2.7x diffusion's training time and `diffusion`'s claim no longer compared at equal time. The preset now trains 8,000 updates: on the machine of the replay above the GAN's update took 28.3 ms (510 s for 18,000) and diffusion's 85 ms (213 s for 2,500), so 8,000 GAN updates are about 1.06x diffusion's time, still at least its time as the protocol asks. The learning rate is constant, so the run is the first 8,000 updates of the longer one. The threshold (0.5) is unchanged. The change was made knowing that at diffusion's time the GAN's validation FD had been above diffusion's test FD at every seed, so it is expected to turn `diffusion`'s verdict from a FAIL within noise into a PASS; the verdicts at 18,000 updates stay recorded above. ", fd!());

const DIFFUSION_INFO: &str = concat!("Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020): noise is added to an image in T = 1000 small Gaussian steps until nothing is left, x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε, and a U-Net learns to predict ε from x_t and t (the \"simple\" loss ‖ε − ε̂‖², a reweighted variational bound). Sampling runs the chain backwards from pure noise: DDPM's ancestral sampler by default (100 steps respaced over the 1000, Nichol & Dhariwal 2021), or DDIM (Song et al. 2021) for few steps (`--sampler ddim --steps 50`; `ddim:ETA` for η > 0; η = 1 is DDPM's update, tested). The U-Net (nn/time_unet.rs): 16/32/64 channels at 28/14/7 pixels, residual blocks of GroupNorm → SiLU → 3x3 conv with a projection of the time embedding (sinusoidal, then an MLP) added between, stride-2 convolutions down, nearest-neighbour upsampling plus a 3x3 convolution up (candle's bilinear upsampling has no backward), skip concatenations as in `unet`. Adam lr 1e-3, batch 32, 2,500 updates, and an EMA of the weights (0.995), which evaluates and samples. `diffusion` uses the cosine noise schedule (Nichol & Dhariwal 2021); `ddpm` is the same with Ho et al.'s linear one; `ddpm-cosine` is `diffusion` under the name of the study's variant. CLAIM PROTOCOL (written before calibration): train `gan` and `diffusion` at their presets, which are set so that the GAN trains at least as long as the diffusion model (wall-clock seconds, both reported); the claim holds if diffusion's test FD (1,000 samples from the default sampler against the 10,000 test images) is below the GAN's test FD, and the GAN's training time is at least 0.9 of diffusion's. Without `make data` both train on the built-in 8x8 digits (a minute or two each), where the numbers are not MNIST's. `dlhist sample diffusion --n 64 --out grid.png` writes an 8x8 grid; `--frames` adds the denoising trajectory as an animated PNG and a strip. CALIBRATION RUNS (the same replay, MNIST, seed 1234, a loaded 2-core machine): diffusion test FD 55.62 after 2,500 updates in 581 s of training (the claim took 727 s with the FD's sampling of 1,000 images, 100 DDPM steps) against the GAN's 30.92 after 18,000 updates in 657 s: the claim FAILS at these presets; a separate `dlhist --threads 2 train diffusion` gave the same FD, 55.62 (776 s of training, more load). The samples are digits, many recognisable, but the model is small (279k parameters) and trained for 1.3 epochs; the GAN's MLPs (2.9M parameters) train 21 epochs in the same time. Not tuned after seeing the result. SEEDS (the replay in `dlhist info gan`, 2026-12-06): diffusion's test FD 55.12, 32.60, 35.32 against the GAN's 30.69, 26.10, 23.68 (differences −24.4, −6.5, −11.6: a FAIL at every seed; mean −14.2, seed sd 9.2, only 1.5x, so three seeds by default). Since the calibration the U-Net's step got faster (the group norm's backward vectorised), so the preset's 18,000 GAN updates now give the GAN more than diffusion's time: diffusion trained 258 s at seed 1 (a quiet machine; 369 and 378 s at seeds 2 and 3, with builds beside it), the GAN 693, 635 and 648 s. When the GAN had trained as long as diffusion, its validation FD was 144.6 (step 6,000), 54.0 and 49.4 (step 10,500), above diffusion's final test FD at every seed: at truly equal time diffusion would be ahead here. The verdict keeps the protocol (the GAN at least 0.9 of diffusion's time, its 18,000 updates fixed before the result); the replay's detail reports the GAN at diffusion's time beside it whenever the GAN trained over 1.2x longer. WITH THE GAN'S FUSED STEP (see `dlhist info gan`; the same replay of `gan diffusion`, a quiet machine): diffusion's runs are bitwise the same (55.12, 32.60, 35.32, 280 s each), the GAN's test FD 30.54, 40.28, 27.67 in 552–561 s (2.0x diffusion's time): differences −24.6, +7.7, −7.7, mean −8.2 against a seed sd of 16.1, so within noise, one seed of three passing; a FAIL on the means. At diffusion's time the GAN's validation FD was 78.9 (step 9,000), 81.3 (9,000) and 86.9 (8,500), again above diffusion's at every seed. WITH THE DIRECT CONVOLUTIONS (2026-12-06, later; kernels/README.md): the U-Net's convolutions skip im2col and give bitwise the same values, so the runs above stand; `dlhist --threads 2 train diffusion` (seed 1234, a machine loaded by other jobs) gave test FD 55.12 again, now in 212 s of training instead of 280 s. The GAN's preset, fixed before the result, now trains about 2.6x diffusion's time. TRAINING TIME, NOT WALL TIME (2026-12-06, a change of measurement made after the results above; no verdict changes): the equal-time check and the GAN's standing at diffusion's time now use each run's training time, its mean logged update time times its updates, instead of the run's wall time, which also counted the GAN's 36 FD evaluations and checkpoints (diffusion scores FD only after training). In the replay of that day (seed 1234, a quiet machine) the GAN trained 510 s (517 s of wall time) and diffusion 213 s (213 s). EQUAL TIME AGAIN (2026-12-06 13:50 UTC, a change of protocol made after seeing the results above, written before its runs): the GAN's preset now trains 8,000 updates instead of 18,000, about 1.06x diffusion's training time on 2 cores (see `dlhist info gan`), so the claim compares at equal time again, as its name says; the check (the GAN at least 0.9 of diffusion's training time, diffusion's test FD lower) is unchanged. This is expected to turn the verdict into a PASS, since at diffusion's time the GAN's validation FD was above diffusion's test FD at every seed; it is a change made after seeing that, and the verdicts at 18,000 updates stay recorded above. ", fd!());

const SCHEDULE_INFO: &str = concat!("The noise schedule decides how fast the forward process destroys the image. Ho et al. (2020) let β_t grow linearly from 1e-4 to 0.02; Nichol & Dhariwal (2021) observed that at low resolution this leaves the last part of the chain almost pure noise (ᾱ_t near 0 long before t = T), wasting steps, and proposed ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + 0.008)/1.008 · π/2), which falls more gently at both ends; they report better likelihoods and FID. `ddpm` is `diffusion` with the linear schedule, `ddpm-cosine` with the cosine one (the same as `diffusion`). CLAIM PROTOCOL (written before calibration): train both at the same budget and seed and compare their test FD (1,000 DDPM samples, 100 steps, against the 10,000 test images): the cosine schedule's FD must be at most the linear one's (cosine ≥ linear in quality). CALIBRATION RUNS (the same replay as `dlhist info diffusion`, MNIST, seed 1234): test FD cosine 55.62 vs linear 33.87 after 2,500 updates each (denoising test loss 0.0440 vs 0.0258, not comparable across schedules: the noise levels differ): the claim FAILS at this budget; `ddpm` trained in 846 s on the loaded machine. Not tuned after seeing the result. SEEDS (the replay in `dlhist info gan`, 2026-12-06): test FD cosine 55.12, 32.60, 35.32 against linear 34.23, 35.77, 30.44: the cosine schedule is worse at seeds 1 and 3 and better at seed 2; on the means 41.02 against 33.48, a FAIL, but the margin (−7.5) is within the seed sd (12.2), so three seeds by default and the verdict says it is within noise. ", fd!());

const CFG_INFO: &str = concat!("Classifier-free guidance (Ho & Salimans 2021): the diffusion U-Net also sees the image's class through an embedding added to the time embedding, and for 10% of the training images the class is replaced by \"none\", so one net learns both ε̂(x, c) and ε̂(x, ∅). Sampling mixes them, ε̂ = ε̂(x, ∅) + w·(ε̂(x, c) − ε̂(x, ∅)): w = 1 is plain conditional sampling, w > 1 trades variety for samples that look more like their class. `dlhist sample diffusion-cfg --prompt 7 --guidance 3` draws sevens; `--prompt \"1 2 3\"` takes turns; a word that is not a class is an error that lists them (digits or their names; Fashion-MNIST's class names after `--set data.dataset=fashion`). No claim yet: the entry shows the technique. Checked by eye: `dlhist --threads 2 train diffusion-cfg --set data.fd_samples=100` (2,500 updates, 451 s on a loaded 2-core machine), then `sample --prompt 7 --guidance 3 --n 16 --seed 1` drew 16 images of which 15 read as sevens. ", fd!());

pub fn entries() -> Vec<Entry> {
    vec![
    Entry {
        name: "gan",
        year: 2014,
        paper: "Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio, Generative adversarial nets, NeurIPS 2014",
        study: "generative",
        family: &gan::FAMILY,
        summary: "a generator trained against a discriminator: its samples' FD falls as it trains",
        info: GAN_INFO,
        preset: preset!("gan"),
        smoke: smoke!("gan"),
        claim: Some(Claim { text: "the FD of the GAN's samples falls during training", metric: "fd_ratio" }),
    },
    Entry {
        name: "diffusion",
        year: 2020,
        paper: "Ho, Jain & Abbeel, Denoising diffusion probabilistic models, NeurIPS 2020",
        study: "generative",
        family: &diffusion::FAMILY,
        summary: "denoising diffusion reaches a lower FD than the GAN in the same training time",
        info: DIFFUSION_INFO,
        preset: preset!("diffusion"),
        smoke: smoke!("diffusion"),
        claim: Some(Claim { text: "diffusion reaches a lower FD than the GAN at equal training time", metric: "gan_fd - diffusion_fd" }),
    },
    Entry {
        name: "ddpm",
        year: 2020,
        paper: "Ho, Jain & Abbeel, NeurIPS 2020 (the linear noise schedule)",
        study: "generative",
        family: &diffusion::FAMILY,
        summary: "diffusion with the linear noise schedule: an FD no lower than the cosine one's",
        info: SCHEDULE_INFO,
        preset: preset!("ddpm"),
        smoke: smoke!("ddpm"),
        claim: Some(Claim { text: "with the linear schedule the FD is no lower than with the cosine one", metric: "linear_fd - cosine_fd" }),
    },
    Entry {
        name: "ddpm-cosine",
        year: 2021,
        paper: "Nichol & Dhariwal, Improved denoising diffusion probabilistic models, ICML 2021",
        study: "generative",
        family: &diffusion::FAMILY,
        summary: "the cosine noise schedule reaches an FD at most the linear one's",
        info: SCHEDULE_INFO,
        preset: preset!("ddpm-cosine"),
        smoke: smoke!("ddpm-cosine"),
        claim: Some(Claim { text: "the cosine schedule reaches an FD at most the linear one's", metric: "linear_fd - cosine_fd" }),
    },
    Entry {
        name: "diffusion-cfg",
        year: 2021,
        paper: "Ho & Salimans, Classifier-free diffusion guidance, NeurIPS 2021 workshop",
        study: "generative",
        family: &diffusion::FAMILY,
        summary: "class-conditional diffusion steered by classifier-free guidance (--prompt 7 --guidance 3)",
        info: CFG_INFO,
        preset: preset!("diffusion-cfg"),
        smoke: smoke!("diffusion-cfg"),
        claim: None,
    },
    ]
}
