//! Catalogue section 5, image and text: CLIP's contrastive image–text training, and DALL·E's
//! text-to-image transformer over VQ-VAE codes, reranked by CLIP, and DALL·E 2's prior and
//! diffusion decoder on CLIP's embeddings.

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{clip, dalle, dalle2};

const CLIP_INFO: &str = "Contrastive language–image pretraining (Radford et al. 2021): an image encoder and a text encoder each map their input to a unit vector in one shared space, and training pulls every image in a batch towards its own caption and away from the batch's other captions, in both directions (the symmetric InfoNCE loss over the batch's cosine similarities times a learned inverse temperature, exp(log_scale), initialised at 1/0.07 and capped at 100 as CLIP's). Nothing names a class: the supervision is the captions' words. A classifier then comes for free by writing each class as a caption and picking the closest one (zero-shot classification). At toy scale: the image tower is three stride-2 3x3 convolutions (32, 64, 128 channels) with ReLU, a mean over space and a projection to 64 dimensions; the text tower averages word embeddings of the caption, then a hidden ReLU layer and a projection (a bag of words; CLIP's is a Transformer). Data: the 1,794 emoji of the emoji set at 32x32 on white, captioned by their name and keywords (\"red heart love like …\"), 200 held out for the test and 100 for validation (a fixed split), and 5,000 MNIST training digits, black ink on white, each batch holding ten of them, one per class, with a caption from one of five templates (\"handwritten digit seven\", \"the number 7\", \"seven written by hand\", \"a digit 7 drawn in ink\", \"number seven\"). Adam lr 2e-3, 100 warm-up steps, cosine decay, batches of 118 emoji + 10 digits, 2,000 updates. Metrics: recall@1/5/10 from the held-out emoji images to their captions and back (among the 200; chance is k/200), and zero-shot accuracy on 1,000 MNIST test digits, each given the class whose caption \"a handwritten N\" (a template never used in training) lies closest.\n\nCLAIM PROTOCOL (written before calibration): train the preset once (seed 1234); the claim holds if the held-out recall@10, averaged over the two directions, is at least 5x chance (25% among 200) and the zero-shot accuracy is at least 5x chance (50%); the value is the smaller of the two multiples. Without the emoji set (or MNIST) the claim is not checked. `dlhist sample clip --image FILE.png` ranks the captions (every emoji name and the ten digit captions) for an image; `dlhist sample clip --prompt \"a red heart\"` ranks the held-out images for a caption and draws the best as a strip; a prompt word the model never saw in a caption is an error that names it.\n\nCALIBRATION RUN (`dlhist --threads 2 replay clip --json`, after `make data`, seed 1234, 2026-12-05, the machine lightly loaded by other jobs; the protocol and threshold were committed before it and not changed after): held-out emoji recall@10 55.5% image→text and 55.5% text→image against chance 5.0% (11.1x; recall@1 36.2%, recall@5 51.8%), zero-shot digit accuracy 89.0% (8.9x chance): PASS, 35 s. One seed; at the replay's three seeds (claims::plan) the smaller of the two multiples of chance was 8.92x, 8.28x and 8.31x. What the model gets wrong is as telling: `sample clip --prompt \"a red heart\"` ranks a large red circle first (colour and shape, not the idea), and a grinning face is captioned \"grenada\" before the faces (flags share its yellow and red).";

const DALLE_INFO: &str = "Zero-shot text-to-image generation (Ramesh et al. 2021, DALL·E): a discrete VAE turns an image into a grid of tokens, and one decoder-only transformer models the caption's tokens followed by the image's as a single sequence; to draw, write the caption and sample the image tokens one at a time, decode them to pixels, and let CLIP rank the candidates for the caption, keeping the best. At toy scale: the tokenizer is a trained `vq-vae` run (its preset: 128 codes on a 7x7 grid per 28x28 digit); the transformer is `gpt`'s model (4 layers, 4 heads, 128 dims, GPT-2 init) over [3 caption words | 49 codes], the loss on the codes only; captions come from five templates (\"a handwritten seven\", \"a handwritten 7\", \"the digit seven\", \"the number 7\", \"seven\"), a random one per image and step; all 55,000 MNIST training images, AdamW lr 1e-3 (β2 0.99, weight decay 0.1), 100 warm-up steps, cosine decay to 1e-4, batch 32, 3,000 updates. Drawing samples each code from the model's distribution over the codebook (temperature 1, all codes: `--temperature`, `--top-k` change it). The reranker is a trained `clip` run (its preset), scoring each candidate against \"a handwritten N\"; the judge is a trained `lenet` run (its preset, 99% on MNIST). All three runs are trained on demand the first time and kept.\n\nCLAIM PROTOCOL (written before calibration): train the preset once (seed 1234); draw 20 images for each prompt \"a handwritten zero\" … \"a handwritten nine\" without reranking; the claim holds if the judge labels at least 50% of the 200 images with the prompted class (chance: 10%). The accuracy with CLIP reranking (best of 4) is reported beside it, not part of the claim. Without MNIST (the 8x8 digits stand in) the claim is not checked. `dlhist sample dalle --prompt \"a handwritten seven\" --n 16 --out sevens.png` draws a grid (best of 4 by CLIP) and says what lenet reads in each; a prompt word outside the caption vocabulary is an error that lists the words it knows.\n\nCALIBRATION RUN (`dlhist --threads 2 replay dalle --json`, after `make data`, seed 1234, 2026-12-05, a machine loaded by other jobs; the protocol and threshold were committed before it and not changed after): the judge labels 89.0% of the 200 drawn images as prompted (PASS; chance 10%), 99.0% when each is the best of 4 by CLIP; code cross-entropy on test images 1.446 nats per code (ln 128 = 4.85 for a uniform guess); dalle trained in 142 s (839,450 parameters), its needs in 81 s (vq-vae), 13 s (lenet) and 58 s (clip); the claim took 339 s in all, over the 5 minutes a claim should take, because of those three runs (needed runs already trained with the same config are found and not trained again). One seed; not calibrated across seeds.";

const DALLE2_INFO: &str = "Hierarchical text-conditional image generation with CLIP latents (Ramesh et al. 2022, DALL·E 2 or unCLIP): instead of modelling pixels or tokens from the caption directly, generate in CLIP's space. A prior maps the caption's CLIP text embedding z_t to an image embedding ẑ_i, and a decoder, a diffusion model, draws an image from ẑ_i. The decoder is trained on the CLIP image embedding of each training image (so it learns to invert CLIP's image encoder); with the embedding dropped for some images, it can be steered by classifier-free guidance. At toy scale: CLIP is a trained `clip` run (its preset; 64-dimensional unit embeddings; not trained further here); the prior is an MLP (64 → 256 → 64, ReLU, the output normalised) regressing the unit image embedding from the text embedding of a caption of the image's class in one of clip's five training templates (the paper's priors are autoregressive or diffusion models, which model the spread of image embeddings a caption allows; a regression gives the mean); the decoder is `diffusion`'s U-Net (16/32/64 channels at 28/14/7 pixels) with the image embedding projected into its time embedding, the linear noise schedule (T = 1000, Ho et al.; chosen because `ddpm` reached the lower FD of the two schedules here), the embedding zeroed for 10% of the images; one loss, decoder plus prior, Adam lr 1e-3, batch 32, 1,500 updates, an EMA of the weights (0.995) that evaluates and draws. Drawing: caption → z_t → prior → ẑ_i → 50 DDIM steps with guidance w = 3. The judge is a trained `lenet` run (its preset).\n\nCLAIM PROTOCOL (written before calibration): train the preset once (seed 1234); draw 10 images for each prompt \"a handwritten 0\" … \"a handwritten 9\" (clip's zero-shot caption, never a training caption); the claim holds if the judge labels at least 50% of the 100 images with the prompted digit (chance 10%). Without MNIST the claim is not checked. `dlhist sample dalle2 --prompt \"a handwritten 7\" --n 16 --guidance 3` draws a grid and says what lenet reads.\n\nCALIBRATION RUN (`dlhist --threads 2 replay dalle2 --json`, after `make data`, seed 1234, 2026-12-05, a machine loaded by other jobs; the protocol and threshold were committed before it and not changed after): the judge labels 27.0% of the 100 drawn images as prompted (2.7x chance, against 50%): the claim FAILS at this budget. The prior works (its output's cosine to the test images' embeddings is 0.884); the decoder is the weak part: after 1,500 updates (0.87 epochs, 260 s of training) its samples are thin strokes and blobs, some recognisable (for \"a handwritten 7\", lenet read 4 of 16 as 7), as `diffusion` at 2,500 updates was only partly recognisable. 282 s for the claim (the clip and lenet runs were already trained). One seed. Not tuned after seeing the result.";

pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "clip",
        year: 2021,
        paper: "Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger & Sutskever, Learning transferable visual models from natural language supervision, ICML 2021",
        study: "clip",
        family: &clip::FAMILY,
        summary: "images and captions in one space: held-out retrieval and zero-shot digits far above chance",
        info: CLIP_INFO,
        preset: preset!("clip"),
        smoke: smoke!("clip"),
        claim: Some(Claim {
            text: "held-out retrieval and zero-shot digit classification reach 5x chance",
            metric: "min(recall@10 / chance, zero-shot accuracy / 10%)",
        }),
    },
    Entry {
        name: "dalle",
        year: 2021,
        paper: "Ramesh, Pavlov, Goh, Gray, Voss, Radford, Chen & Sutskever, Zero-shot text-to-image generation, ICML 2021",
        study: "dalle",
        family: &dalle::FAMILY,
        summary: "a transformer over [caption | VQ-VAE codes] draws the digit a caption names",
        info: DALLE_INFO,
        preset: preset!("dalle"),
        smoke: smoke!("dalle"),
        claim: Some(Claim {
            text: "a trained classifier labels most images drawn for \"a handwritten N\" as N",
            metric: "judge's accuracy on 200 images drawn for the ten prompts",
        }),
    },
    Entry {
        name: "dalle2",
        year: 2022,
        paper: "Ramesh, Dhariwal, Nichol, Chu & Chen, Hierarchical text-conditional image generation with CLIP latents, 2022",
        study: "dalle",
        family: &dalle2::FAMILY,
        summary: "a prior into CLIP's image space and a diffusion decoder from it: prompts steer the digits drawn",
        info: DALLE2_INFO,
        preset: preset!("dalle2"),
        smoke: smoke!("dalle2"),
        claim: Some(Claim {
            text: "prompts steer the samples: a trained classifier labels most images drawn for \"a handwritten N\" as N",
            metric: "judge's accuracy on 100 images drawn for the ten prompts",
        }),
    }]
}
