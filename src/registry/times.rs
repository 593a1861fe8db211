//! How long `dlhist train NAME` takes at its preset on 2 cores, where it was measured: the hint
//! of a command that needs a run and finds none ("Train one first: dlhist train diffusion
//! (about 5 min on 2 cores)"). Entries without a measured time get the command alone.

/// (name, duration in words), measured with `dlhist --threads 2 train NAME` (after `make data`);
/// the generative ones (training and the final FD) per seed from the replay of 2026-12-06 10:46
/// (a quiet machine: gan 517–581 s at 18,000 updates, 223–242 s at 8,000 on 2026-12-06 13:33,
/// 261–279 s at 9,000 at 17:21, plus about 25 s for the lenet of its FD on a fresh machine;
/// diffusion and ddpm 4.5–5 min with their FD sampling, clip 58 s, dalle2 130 s plus the clip and
/// lenet it needs); diffusion-cfg is estimated as diffusion.
const TIMES: &[(&str, &str)] = &[
    ("mlp", "15 s"),
    ("cnn", "12 s"),
    ("lenet", "12 s"),
    ("rnn", "15 s"),
    ("clip", "1 min"),
    ("dalle", "6 min, with the vq-vae, lenet and clip it needs"),
    ("dalle2", "4 min, with the clip and lenet it needs"),
    ("gan", "5 min, with the lenet it needs"),
    ("diffusion", "5 min"),
    ("ddpm", "5 min"),
    ("ddpm-cosine", "5 min"),
    ("diffusion-cfg", "5 min"),
    // from the runs' times that `dlhist info NAME` quotes (2026-12-04/05, some under load,
    // rounded up); the transformer family's are per run, without the run they start from.
    // Checked with `/usr/bin/time dlhist --threads 2 train NAME` on 2 otherwise idle cores
    // (an Intel Xeon) on 2026-12-07: mlp 15.6 s, attention 55 s, gpt 51 s, lora 19 s,
    // full-finetune 16 s, vq-vae 64 s, vae 139 s, gpt-3min 167 s
    ("unet", "1 min"),
    ("attention", "1 min"),
    ("transformer", "2 min"),
    ("gpt", "1 min"),
    ("gpt-3min", "3 min"),
    ("gpt-xs", "5 s"),
    ("gpt-s", "15 s"),
    ("gpt-m", "1 min"),
    ("lora", "30 s"),
    ("full-finetune", "30 s"),
    ("bert-pretrain", "4 min"),
    ("roberta-pretrain", "4 min"),
    ("vit", "90 s"),
    ("rlhf", "2 min, with the sft and reward-model runs it needs"),
    ("vae", "2.5 min"),
    ("vq-vae", "1 min"),
];

/// The measured training time of `name` at its preset, if there is one.
pub fn train_time(name: &str) -> Option<&'static str> {
    TIMES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_timed_name_is_a_milestone_and_named_once() {
        for (i, (name, _)) in super::TIMES.iter().enumerate() {
            assert!(crate::registry::get(name).is_ok(), "{name} is not a milestone");
            assert!(!super::TIMES[..i].iter().any(|(n, _)| n == name), "{name} is timed twice");
        }
    }
}
