//! Catalogue section 4, learning from human feedback: `sft` → `reward-model` → `rlhf`
//! (InstructGPT at toy scale, three stages chained through run directories).

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{gpt, rlhf};

macro_rules! chain {
    () => {
        "The chain (InstructGPT, Ouyang et al. 2022, at toy scale; src/milestones/rlhf/): (1) `sft` is a small gpt (2 layers, 4 heads, 64 dims, block 32) trained as a char-LM on the built-in moby text, the `gpt` recipe; here the \"demonstrations\" are the text itself: a prompt is 16 characters of it and a response the next 16. (2) `reward-model` starts from an `sft` run (found or trained on demand, kept under checkpoints/sft/) and replaces the head over the vocabulary by a scalar head on the last position's hidden state; it learns from pairs ranked by a SCRIPTED LABELER whose rule is: a response's score is the number of letters `e` or `E` in it; of two responses to one prompt the labeler prefers the higher score (ties are not labelled). A pair is a prompt with the text's own 16-character continuation and the continuation of another random place. Loss: Bradley–Terry, −log σ(r(preferred) − r(other)); validation: its pairwise accuracy on 256 fixed pairs of the held-out last 10% of the text. (3) `rlhf` starts its policy from the same `sft` run, keeps a frozen copy as the reference, and runs PPO (Schulman et al. 2017) against the `reward-model` run: each step samples a 16-character response (temperature 1) to each of 32 prompts from the policy; per-token reward −β·(log π − log π_SFT) with β = 0.05 (Ziegler et al. 2019's KL penalty), plus the reward model's score on the last token; returns to go (γ = 1), advantages = return − value, whitened; 2 policy updates per batch with the clipped ratio (ε = 0.2), then one update of the value head (a linear layer on the policy's detached hidden states, squared error to the returns). Policy and value are the engine's two parameter groups (`[train.groups.policy]`, `[train.groups.value]`): Adam lr 1e-4 and 1e-3, clipping at 1. Every 25 updates and before the first, `rlhf` evaluates on 64 fixed prompts of the held-out text (the same sampling seed each time): `score` (the labeler's mean score of the policy's responses, what the humans wanted), `reward` (the reward model's), `kl` (mean over responses of Σ_t log π(y_t) − log π_SFT(y_t), a sampled estimate of KL(π ‖ π_SFT) in nats per response) `sft_loss` (the policy's next-character loss on the SFT text, 64 windows of 32: the \"val loss\" of the issue) and `loss` = β·kl − reward, the negated objective PPO maximises (it falls as RLHF works; the smoke replay checks that). Train lines log the same per update on the rollouts. `dlhist sample rlhf` shows the same prompts continued by the SFT model and by the policy, with the same random draws, and their scores (--prompt, --n, --seed, --temperature). "
    };
}

const SFT_INFO: &str = concat!(chain!(), "`sft` itself has no claim: it is the `gpt` char-LM recipe at a small size (`dlhist sample sft --prompt \"the whale\"`). ");
const RM_INFO: &str = concat!(
    chain!(),
    "`reward-model` has no claim of its own; its held-out pairwise accuracy is `val_acc` (0.5 is chance). "
);
const RLHF_INFO: &str = concat!(chain!(), "CLAIM PROTOCOL (written before the calibration runs): `dlhist replay rlhf` trains the chain at the `rlhf` preset (sft, reward-model and rlhf as needed); the claim holds if the labeler's mean score of the policy's responses on the held-out prompts rises by at least 0.5 (letters `e` per 16-character response) from before the first PPO update to the end, while the final KL to the SFT model stays at most 4 nats per response. Both thresholds were fixed before any run.\n\nCALIBRATION RUN (2026-12-05, `dlhist --threads 2 replay rlhf --budget full --json`, seed 1234, moby, a machine loaded by other sessions' training): sft val loss 4.435 → 1.973 after 1,500 updates (about 25 s); reward-model held-out pairwise accuracy 1.00 (val loss 0.0056) after 400 updates; rlhf over 150 PPO updates (17.6 s): the learned reward of the held-out responses rose −0.687 → 2.939, but the labeler's score FELL 1.359 → 0.391 and the KL to the SFT model reached 23.8 nats per response (SFT-text loss 1.966 → 2.951): the policy found what the reward model rewards and the labeler does not (reward over-optimisation, Gao et al. 2022); the reward model had only seen pairs of the text's own continuations, never the policy's samples. The claim FAILS at this preset (106 s for the whole chain, sft trained more than once because a needed run is not found again). Not tuned after seeing the result; a larger β, a reward model trained on SFT samples, or fewer updates are the obvious next tries. ");

pub fn entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "sft",
            year: 2022,
            paper: "Ouyang et al., Training language models to follow instructions with human feedback, NeurIPS 2022 (stage 1, supervised fine-tuning)",
            study: "rlhf",
            family: &gpt::FAMILY,
            summary: "RLHF stage 1: a small gpt trained on prompts and responses of a text",
            info: SFT_INFO,
            preset: preset!("sft"),
            smoke: smoke!("sft"),
            claim: None,
        },
        Entry {
            name: "reward-model",
            year: 2022,
            paper: "Ouyang et al., NeurIPS 2022 (stage 2); Christiano et al., Deep RL from human preferences, NeurIPS 2017",
            study: "rlhf",
            family: &rlhf::reward::FAMILY,
            summary: "RLHF stage 2: a reward model learns a scripted labeler's preferences (Bradley–Terry)",
            info: RM_INFO,
            preset: preset!("reward-model"),
            smoke: smoke!("reward-model"),
            claim: None,
        },
        Entry {
            name: "rlhf",
            year: 2022,
            paper: "Ouyang et al., NeurIPS 2022 (stage 3); Schulman et al., Proximal policy optimization, 2017; Ziegler et al., Fine-tuning language models from human preferences, 2019",
            study: "rlhf",
            family: &rlhf::ppo::FAMILY,
            summary: "RLHF stage 3: PPO against the reward model raises the labeler's score with bounded KL to the SFT model",
            info: RLHF_INFO,
            preset: preset!("rlhf"),
            smoke: smoke!("rlhf"),
            claim: Some(Claim {
                text: "PPO raises the labeler's score of the policy's responses while its KL to the SFT model stays bounded",
                metric: "final val_score − initial val_score",
            }),
        },
    ]
}
