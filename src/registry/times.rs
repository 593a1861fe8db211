//! How long `dlhist train NAME` takes at its preset on 2 cores, where it was measured: the hint
//! of a command that needs a run and finds none ("Train one first: dlhist train diffusion
//! (about 5 min on 2 cores)"). Entries without a measured time get the command alone.

/// (name, duration in words), measured with `dlhist --threads 2 train NAME` (after `make data`);
/// the generative ones (training and the final FD; gan, diffusion and ddpm from the 3-seed
/// replays of 2026-12-06, per seed, on a machine running 1.9x slower than usual) are upper
/// bounds; diffusion-cfg is estimated as diffusion.
const TIMES: &[(&str, &str)] = &[
    ("mlp", "10 s"),
    ("cnn", "12 s"),
    ("lenet", "12 s"),
    ("rnn", "15 s"),
    ("clip", "35 s"),
    ("dalle", "6 min, with the vq-vae, lenet and clip it needs"),
    ("dalle2", "5 min, with the clip and lenet it needs"),
    ("gan", "9 min"),
    ("diffusion", "7 min"),
    ("ddpm", "7 min"),
    ("ddpm-cosine", "7 min"),
    ("diffusion-cfg", "7 min"),
];

/// The measured training time of `name` at its preset, if there is one.
pub fn train_time(name: &str) -> Option<&'static str> {
    TIMES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
