//! What the engine sees of a milestone: the [`Experiment`] trait and the values that cross it
//! (a batch loss, metrics, sample requests and what a sampler returns). On the ground floor:
//! milestones implement it, the engine runs it, and neither imports the other.

use crate::params::Params;
use crate::rng::Rng;
use candle_core::Tensor;
use std::collections::BTreeMap;

/// Named scalar metrics, e.g. `{"val_loss": 0.31, "val_acc": 0.91}`.
pub type Metrics = BTreeMap<String, f64>;

/// The loss of one training batch, plus anything the milestone wants logged with it.
pub struct TrainOut {
    pub loss: Tensor,
    pub metrics: Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Val,
    Test,
}

/// A variant of a milestone that takes sample options the milestone does not: those options, the
/// variant's name, and an example of its `sample` arguments (`Experiment::sample_variant`).
pub type SampleVariant = (&'static [SampleOpt], &'static str, &'static str);

/// An option of `dlhist sample`. Each milestone says which it takes
/// ([`Experiment::sample_options`]); passing another is an error that lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleOpt {
    N,
    Seed,
    Steps,
    Prompt,
    Temperature,
    TopK,
    Image,
    Sampler,
    Guidance,
    Frames,
    Interpolate,
}

impl SampleOpt {
    pub fn flag(self) -> &'static str {
        match self {
            SampleOpt::N => "--n",
            SampleOpt::Seed => "--seed",
            SampleOpt::Steps => "--steps",
            SampleOpt::Prompt => "--prompt",
            SampleOpt::Temperature => "--temperature",
            SampleOpt::TopK => "--top-k",
            SampleOpt::Image => "--image",
            SampleOpt::Sampler => "--sampler",
            SampleOpt::Guidance => "--guidance",
            SampleOpt::Frames => "--frames",
            SampleOpt::Interpolate => "--interpolate",
        }
    }
}

/// What `dlhist sample` asked for; `None` (or false) where the user gave nothing, so each
/// milestone applies its own default.
#[derive(Clone, Debug, Default)]
pub struct SampleRequest {
    /// how many samples (images, characters, sequences, …)
    pub n: Option<usize>,
    /// seeds the sampler's randomness (which test images, noise, token draws); cli/ derives the
    /// sampler's RNG from it (0 when not given)
    pub seed: Option<u64>,
    /// sampling steps (a diffusion sampler's denoising steps)
    pub steps: Option<usize>,
    /// text to start from or condition on
    pub prompt: Option<String>,
    pub temperature: Option<f64>,
    /// sample from the k most likely tokens only
    pub top_k: Option<usize>,
    /// an input image (`--image FILE.png`, decoded by cli/), e.g. to caption or rank
    pub image: Option<crate::picture::Image>,
    /// which sampler (e.g. `ddpm`, `ddim`)
    pub sampler: Option<String>,
    /// classifier-free guidance scale
    pub guidance: Option<f64>,
    /// also return the trajectory, frame by frame
    pub frames: bool,
    /// walk between samples (e.g. a VAE's latent interpolation)
    pub interpolate: bool,
    /// where a long sampler reports how far it is (cli/ draws a progress bar from it)
    pub progress: Progress,
    /// what the sampler tells the user beside its output (a capped `--n`); cli/ prints them on
    /// stderr, so `--json` stdout stays one document
    pub notes: Notes,
}

/// Notes a sampler leaves for the user (shared by the clones of a request).
#[derive(Clone, Debug, Default)]
pub struct Notes(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Notes {
    pub fn push(&self, note: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(note);
    }

    /// The notes so far, oldest first; none are left.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A sampler's progress callback: `report(done, total)` as it goes (a diffusion sampler: after
/// each denoising step). cli/ passes one that draws a progress bar; the default does nothing,
/// so milestones never touch the terminal themselves.
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>>);

impl Progress {
    pub fn new(f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }

    /// `done` of `total` units of work are finished.
    pub fn report(&self, done: usize, total: usize) {
        if let Some(f) = &self.0 {
            f(done, total)
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(callback)" } else { "Progress(none)" })
    }
}

/// A trained run of another milestone that this one uses, e.g. the `lenet` whose penultimate
/// layer gives the features of the Fréchet distance. cli/ finds the newest finished run of
/// `milestone` with exactly this config (its preset with `sets` on top), or trains one and keeps
/// it like any run, then hands its weights to [`Experiment::attach`]. Milestones never run the
/// engine themselves.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    /// what the milestone calls it; passed back to `attach`
    pub key: &'static str,
    /// the milestone whose run is needed
    pub milestone: String,
    /// `--set` overrides on its preset, e.g. `data.dataset=digits8`
    pub sets: Vec<String>,
    /// what it is for, in a few words (said when it has to be trained)
    pub why: String,
}

impl SampleRequest {
    /// `n`, or the milestone's `default` when the user gave none.
    pub fn n_or(&self, default: usize) -> usize {
        self.n.unwrap_or(default)
    }

    /// `n_or(default)`, but at most `max`: when the user's `--n` is more, a note says so and why
    /// (`why`: what limits it), so a cap is never silent.
    pub fn n_at_most(&self, default: usize, max: usize, why: &str) -> usize {
        if let Some(n) = self.n.filter(|&n| n > max) {
            self.notes.push(format!("note: --n {n} is capped at {max}: {why}"));
        }
        self.n_or(default).min(max)
    }

    /// `n_at_most(default, max, why)` drawn from a set of `len` (`what`: the set, e.g. "the test
    /// set"): a set smaller than `max` is the cap, and the note says so.
    pub fn n_at_most_of(&self, default: usize, max: usize, why: &str, len: usize, what: &str) -> usize {
        if len < max {
            self.n_at_most(default, len, &format!("{what} has that many"))
        } else {
            self.n_at_most(default, max, why)
        }
    }

    /// The options the user gave.
    pub fn given(&self) -> Vec<SampleOpt> {
        use SampleOpt::*;
        let mut v = vec![];
        let mut put = |on: bool, o: SampleOpt| {
            if on {
                v.push(o)
            }
        };
        put(self.n.is_some(), N);
        put(self.seed.is_some(), Seed);
        put(self.steps.is_some(), Steps);
        put(self.prompt.is_some(), Prompt);
        put(self.temperature.is_some(), Temperature);
        put(self.top_k.is_some(), TopK);
        put(self.image.is_some(), Image);
        put(self.sampler.is_some(), Sampler);
        put(self.guidance.is_some(), Guidance);
        put(self.frames, Frames);
        put(self.interpolate, Interpolate);
        v
    }
}

/// What a milestone's sampler produced: text for the terminal, the same as JSON, and named
/// pictures (cli/ writes each as a PNG and adds the paths to the JSON).
pub struct SampleOut {
    pub text: String,
    pub json: serde_json::Value,
    pub pictures: Vec<(String, crate::picture::Picture)>,
}

impl SampleOut {
    pub fn new(text: String, json: serde_json::Value) -> Self {
        Self { text, json, pictures: vec![] }
    }

    /// Adds a picture; `name` ends up in its file name (`sample-…-NAME.png`).
    pub fn with_picture(mut self, name: &str, picture: crate::picture::Picture) -> Self {
        self.pictures.push((name.to_string(), picture));
        self
    }
}

/// The name of the one parameter group of a milestone that declares none.
pub const ALL: &str = "all";

/// The updates of one training step, made by the engine on the milestone's behalf.
pub trait Updater {
    /// Backprops `out.loss` and updates the parameters of group `group` (its optimizer, learning
    /// rate schedule and clipping; [`ALL`] when the milestone declares no groups). Gradients that
    /// reach parameters of other groups are dropped. Returns the loss. A loss or gradient that is
    /// not finite changes nothing and ends the step with an error; the engine then stops the run.
    fn update(&mut self, group: &str, out: TrainOut) -> candle_core::Result<f64>;
    /// As `update`, for a batch split into `n` shards (`train.shards`): `shard(i)` is the loss
    /// of shard i weighted by its share of the batch, so that the shards' losses sum to the
    /// batch's (a term over the whole batch, such as a mixture of experts' balance loss, is then
    /// one per shard). The shards' forward and backward passes run side by side, one task each
    /// on the worker threads (on a GPU one after the other); their gradients are summed in shard
    /// order (so the bits do not depend on the thread count) and their metrics averaged.
    fn update_sharded(
        &mut self,
        group: &str,
        n: usize,
        shard: &(dyn Fn(usize) -> candle_core::Result<TrainOut> + Sync),
    ) -> candle_core::Result<f64>;
}

/// A named parameter group: the parameters whose names start with one of `prefixes`.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: &'static str,
    pub prefixes: Vec<String>,
}

/// A milestone's model, data and recipe, as the engine sees it.
pub trait Experiment {
    fn params(&self) -> &Params;
    /// Batches in one pass over the training set (sets the length of an epoch).
    fn steps_per_epoch(&self) -> usize;
    /// The loss of training batch number `step`. `rng` is the step's own stream (batching,
    /// dropout), derived from the seed and the step, so a resumed run sees the same batches.
    /// A milestone that makes several updates per step implements `train_step` instead.
    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> candle_core::Result<TrainOut> {
        let _ = (step, rng);
        candle_core::bail!("this milestone trains through train_step, not train_loss")
    }
    /// Parameter groups, each updated by its own optimizer (`[train.groups.NAME]` in the config
    /// sets its optimizer keys; unset keys inherit `[train]`). Every trainable parameter belongs
    /// to exactly one group. Empty (the default): one group, [`ALL`], of every parameter.
    fn groups(&self) -> Vec<Group> {
        vec![]
    }
    /// Training step number `step`: one or more updates through `up`, in order (a GAN: the
    /// discriminator's, then the generator's). The default makes one update of every parameter
    /// with `train_loss`.
    fn train_step(&mut self, step: usize, rng: &mut Rng, up: &mut dyn Updater) -> candle_core::Result<()> {
        let out = {
            let _span = tracing::debug_span!("forward").entered();
            self.train_loss(step, rng)?
        };
        up.update(ALL, out)?;
        Ok(())
    }
    /// Metrics on a held-out split; names are prefixed by the caller (`val_`, `test_`).
    fn evaluate(&mut self, split: Split) -> candle_core::Result<Metrics>;
    /// What the milestone measures on its training data in eval mode (a classifier's `fit_acc`),
    /// the whole evaluation of a run with `train.eval_heldout = false`; none by default.
    fn evaluate_fit(&mut self) -> candle_core::Result<Metrics> {
        Ok(Metrics::new())
    }
    /// Whether [`Experiment::evaluate_fit`] measures anything (a run with
    /// `train.eval_heldout = false` is refused when it does not).
    fn evaluates_fit(&self) -> bool {
        false
    }
    /// The `dlhist sample` options this milestone takes (none: it has nothing to sample);
    /// `--out` is cli/'s and always allowed.
    fn sample_options(&self) -> &'static [SampleOpt] {
        &[]
    }
    /// A variant of this milestone that takes sample options this one does not, for the refusal
    /// to name: (those options, the variant's name, an example of its `sample` arguments), e.g.
    /// unconditional diffusion: (--prompt --guidance, "diffusion-cfg", "--prompt 7 --guidance 3").
    fn sample_variant(&self) -> Option<SampleVariant> {
        None
    }
    /// Samples, predictions or generations, where the milestone has something to show.
    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let _ = (req, rng);
        anyhow::bail!("this milestone has nothing to sample; try `dlhist eval` for its metrics")
    }
    /// Whether `train_step` honours `train.shards` (the engine refuses shards > 1 otherwise).
    fn takes_shards(&self) -> bool {
        false
    }
    /// Trained runs of other milestones this one uses (see [`Need`]); none by default. A
    /// milestone built without them (a test, a gradient check) must still train; it then
    /// leaves out the metrics they serve.
    fn needs(&self) -> Vec<Need> {
        vec![]
    }
    /// Receives the trained weights of need `key` (a run of `Need::milestone`).
    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        let _ = trained;
        anyhow::bail!("this milestone needs no other run (asked to attach `{key}`)")
    }
    /// Which dataset is in use, e.g. "mnist" or "digits8".
    fn data_name(&self) -> String;
    /// A one-line notice about the data (e.g. a fallback to the built-in set).
    fn data_notice(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set smaller than a sampler's own limit caps `--n` with a note that names the set.
    #[test]
    fn a_count_above_a_small_set_is_capped_at_the_set_with_a_note() {
        let req = SampleRequest { n: Some(30), ..Default::default() };
        assert_eq!(req.n_at_most_of(6, 12, "that many fit", 5, "the test set"), 5);
        assert_eq!(req.notes.take(), ["note: --n 30 is capped at 5: the test set has that many"]);
        assert_eq!(req.n_at_most_of(6, 12, "that many fit", 500, "the test set"), 12);
        assert_eq!(req.notes.take(), ["note: --n 30 is capped at 12: that many fit"]);
        let default = SampleRequest::default();
        assert_eq!(default.n_at_most_of(6, 12, "that many fit", 5, "the test set"), 5);
        assert!(default.notes.take().is_empty(), "a default that the set cuts is no one's --n");
    }
}
