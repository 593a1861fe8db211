//! The character-level language-model recipe, shared by every char-LM milestone (`rnn`, `lstm`;
//! later the mixture-of-experts, optimizer and gpt studies): random windows of a text
//! (`data::text`) for training, next-character cross-entropy, validation loss and bits per
//! character on fixed windows, the unigram baseline, and sampling from a prompt.
//!
//! A milestone supplies only its model, as a [`CharModel`]: token ids in, next-character logits
//! out. Every window starts from the model's initial state, in training, evaluation and sampling
//! alike, so a recurrent model is always run the way it was trained.

use crate::config::TrainConfig;
use crate::data::text::{CharText, TextSplit};
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut, Updater, ALL};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::f64::consts::LN_2;

/// A character-level language model. `Sync`: the shards of a batch (`train.shards`) run the
/// one model side by side.
pub trait CharModel: Sync {
    /// tokens (B, T) u32 -> logits (B·T, V); row b·T + t predicts the character after (b, t).
    /// Each row starts from the model's initial (zero) state: nothing carries between calls.
    fn logits(&self, tokens: &Tensor) -> Result<Tensor>;
    /// The longest context the model accepts (a transformer's learned positions); `None` when
    /// any length works. The sampler feeds at most `min(seq_len, max_context)` characters.
    fn max_context(&self) -> Option<usize> {
        None
    }
    /// The training-mode forward pass: the logits, plus an auxiliary loss to add to the
    /// cross-entropy (a mixture of experts' balance loss) and metrics to log with it. Models
    /// whose training and evaluation passes differ (BatchNorm, dropout) override it.
    fn forward_train(&self, tokens: &Tensor) -> Result<TrainForward> {
        Ok(TrainForward { logits: self.logits(tokens)?, aux: None, metrics: Metrics::new() })
    }
    /// The evaluation forward pass: the logits and extra metrics measured on the way (e.g.
    /// expert load), which evaluation reports for the first validation batch.
    fn logits_and_probe(&self, tokens: &Tensor) -> Result<(Tensor, Metrics)> {
        Ok((self.logits(tokens)?, Metrics::new()))
    }
}

/// What `CharModel::forward_train` returns.
pub struct TrainForward {
    /// (B·T, V)
    pub logits: Tensor,
    /// a scalar added to the training loss
    pub aux: Option<Tensor>,
    pub metrics: Metrics,
}

/// Characters of the validation split scored by `evaluate`, in windows spread evenly over it.
pub const EVAL_CHARS: usize = 32_768;

/// Windows per evaluation batch.
const EVAL_BATCH: usize = 64;

/// Bits per character of a mean cross-entropy in nats.
pub fn bpc(loss_nats: f64) -> f64 {
    loss_nats / LN_2
}

/// Entropy in bits of the character frequencies of `ids`: the bits per character of the best
/// model that ignores context (a unigram model fitted to these very characters).
pub fn unigram_bpc(ids: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![0usize; vocab];
    for &i in ids {
        counts[i as usize] += 1;
    }
    let n = ids.len().max(1) as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Starts of `n` windows of `len` ids spread evenly over a split of `total` ids (deterministic,
/// the same for every seed and model, so variants are scored on the same characters).
pub fn eval_starts(total: usize, len: usize, n: usize) -> Vec<usize> {
    let last = total.saturating_sub(len);
    match n {
        0 => vec![],
        1 => vec![0],
        _ => (0..n).map(|k| k * last / (n - 1)).collect(),
    }
}

/// Draws a token from `logits` (V) at `temperature` (> 0; below 1 sharpens the distribution),
/// among the `top_k` most likely tokens only when given (ties broken by the lower index, so
/// `Some(1)` is greedy: the arg max). Probabilities are softmax(logits / temperature) over the
/// kept tokens, in f64. One uniform draw from `rng` per call, whatever `top_k`.
pub fn draw(logits: &[f32], temperature: f64, top_k: Option<usize>, rng: &mut Rng) -> usize {
    let mut kept: Vec<usize> = (0..logits.len()).collect();
    if let Some(k) = top_k.filter(|&k| k < logits.len()) {
        // a stable sort by descending logit keeps the lower index first among equals
        kept.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        kept.truncate(k.max(1));
    }
    let max = kept.iter().map(|&i| logits[i] as f64).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f32> = kept.iter().map(|&i| ((logits[i] as f64 - max) / temperature).exp() as f32).collect();
    kept[rng.categorical(&w)]
}

/// The text `name` for `CharLm::new`: (text, the name of what was loaded, the fallback notice).
/// A fetched text that is absent falls back to the built-in moby (`data::text::load_text`).
pub fn load(name: &str) -> std::result::Result<(CharText, String, Option<String>), crate::error::DlError> {
    let (text, notice) = crate::data::text::load_text(name)?;
    let loaded = if notice.is_some() { "moby".to_string() } else { name.to_string() };
    Ok((text, loaded, notice))
}

/// The text of a char-LM study (shared with the layer-norm study).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct TextCfg {
    /// moby (built in) | shakespeare | sotu (fetched; fall back to moby with a notice)
    pub text: String,
    /// characters per training window
    pub seq_len: usize,
    /// "" : the vocabulary is `text`'s characters. A text name: the vocabulary is that text's
    /// (a model trained on it can go on training on `text`); each character of `text` missing
    /// from it is replaced by a space (by '\n' or its first character if it has no space)
    #[serde(default)]
    pub vocab_of: String,
}

impl Default for TextCfg {
    fn default() -> Self {
        Self { text: "shakespeare".into(), seq_len: 64, vocab_of: String::new() }
    }
}

/// `text` spelt in `base`'s vocabulary: each character `base` lacks becomes `base`'s space
/// (its newline, else its first character when it has no space). Returns the text and how many
/// characters were replaced.
pub fn in_vocab_of(text: &CharText, base: &CharText) -> (CharText, usize) {
    let find = |c: char| base.vocab.binary_search(&c).ok();
    let stand_in = find(' ').or(find('\n')).unwrap_or(0) as u32;
    let map: Vec<Option<u32>> = text.vocab.iter().map(|&c| find(c).map(|i| i as u32)).collect();
    let mut replaced = 0;
    let ids = text
        .ids
        .iter()
        .map(|&i| {
            map[i as usize].unwrap_or_else(|| {
                replaced += 1;
                stand_in
            })
        })
        .collect();
    (CharText { vocab: base.vocab.clone(), ids }, replaced)
}

impl TextCfg {
    /// The char-LM recipe over this text, with the model `make(vocab)` builds.
    pub fn char_lm<M: CharModel + 'static>(
        &self,
        train: &TrainConfig,
        params: Params,
        device: &Device,
        make: impl FnOnce(usize) -> Result<M>,
    ) -> anyhow::Result<Box<dyn Experiment>> {
        if self.vocab_of.is_empty() {
            return experiment(&self.text, self.seq_len, train, params, device, make);
        }
        let (text, name, notice) = load(&self.text)?;
        let (base, _, base_notice) = load(&self.vocab_of)?;
        let (text, replaced) = in_vocab_of(&text, &base);
        tracing::info!(
            "{name} in the vocabulary of {}: {replaced} of {} characters replaced",
            self.vocab_of,
            text.ids.len()
        );
        let model = make(text.vocab_size())?;
        let notice = notice.or(base_notice);
        let lm = CharLm::new(model, params, (text, name, notice), self.seq_len, train.batch_size, device)?;
        Ok(Box::new(lm.with_shards(train.shards)?))
    }
}

/// The char-LM recipe on the text `text` (with its fallback), windows of `seq_len`, batches
/// (and shards) as `train` says, with the model `make(vocab)` builds.
pub fn experiment<M: CharModel + 'static>(
    text: &str,
    seq_len: usize,
    train: &TrainConfig,
    params: Params,
    device: &Device,
    make: impl FnOnce(usize) -> Result<M>,
) -> anyhow::Result<Box<dyn Experiment>> {
    let data = load(text)?;
    let model = make(data.0.vocab_size())?;
    let lm = CharLm::new(model, params, data, seq_len, train.batch_size, device)?;
    Ok(Box::new(lm.with_shards(train.shards)?))
}

pub struct CharLm<M: CharModel> {
    pub model: M,
    pub params: Params,
    pub text: CharText,
    name: String,
    notice: Option<String>,
    seq_len: usize,
    batch: usize,
    /// `train.shards`: the batch's rows split into this many shards run side by side
    shards: usize,
    unigram_bpc: f64,
    /// (B, T+1) rows of the validation split scored by `evaluate`, in batches
    eval: Vec<Tensor>,
    device: Device,
}

impl<M: CharModel> CharLm<M> {
    /// The text as `load` returns it; windows of `seq_len` characters, `batch` of them per step.
    pub fn new(
        model: M,
        params: Params,
        (text, name, notice): (CharText, String, Option<String>),
        seq_len: usize,
        batch: usize,
        device: &Device,
    ) -> Result<Self> {
        // fails early, with the message that says what to do, if the text is too short
        let val = text.part(TextSplit::Val);
        if val.len() < seq_len + 1 || seq_len == 0 {
            candle_core::bail!(
                "data.seq_len = {seq_len} does not fit the validation split of {name} ({} characters); choose 1..={}",
                val.len(),
                val.len().saturating_sub(1)
            );
        }
        let n = (EVAL_CHARS / seq_len).max(1);
        let rows: Vec<u32> =
            eval_starts(val.len(), seq_len + 1, n).iter().flat_map(|&s| val[s..s + seq_len + 1].to_vec()).collect();
        let eval = rows
            .chunks(EVAL_BATCH * (seq_len + 1))
            .map(|c| Tensor::from_vec(c.to_vec(), (c.len() / (seq_len + 1), seq_len + 1), device))
            .collect::<Result<Vec<_>>>()?;
        let unigram_bpc = unigram_bpc(text.part(TextSplit::Train), text.vocab_size());
        Ok(Self {
            model,
            params,
            text,
            name,
            notice,
            seq_len,
            batch,
            shards: 1,
            unigram_bpc,
            eval,
            device: device.clone(),
        })
    }

    /// Splits each training batch into `shards` (`train.shards`): 1..=batch.
    pub fn with_shards(mut self, shards: usize) -> std::result::Result<Self, crate::error::DlError> {
        if shards == 0 || shards > self.batch {
            return Err(crate::error::DlError::BadValue {
                context: "train.shards".into(),
                message: format!(
                    "{shards} must be between 1 and train.batch_size ({}): each shard takes at least one row of the batch",
                    self.batch
                ),
            });
        }
        self.shards = shards;
        Ok(self)
    }

    /// Training batch `rng` draws: inputs (B, T) and their targets, flattened (B·T).
    fn train_batch(&self, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let (b, t) = (self.batch, self.seq_len);
        let rows = self.text.batch(TextSplit::Train, rng, b, t).map_err(candle_core::Error::wrap)?;
        let rows = Tensor::from_vec(rows, (b, t + 1), &self.device)?;
        Ok((rows.narrow(1, 0, t)?.contiguous()?, rows.narrow(1, 1, t)?.flatten_all()?))
    }

    /// The training loss of inputs `x` (B, T) against targets `y` (B·T): the cross-entropy, plus
    /// the model's auxiliary loss if it has one.
    fn train_out(&self, x: &Tensor, y: &Tensor) -> Result<TrainOut> {
        let out = self.model.forward_train(x)?;
        let ce = crate::nn::loss::cross_entropy(&out.logits, y)?;
        let loss = match out.aux {
            Some(aux) => (ce + aux)?,
            None => ce,
        };
        Ok(TrainOut { loss, metrics: out.metrics })
    }

    /// Mean next-character loss of (B, T+1) windows: inputs [.., ..T], targets [.., 1..].
    fn loss(&self, rows: &Tensor) -> Result<(Tensor, Metrics)> {
        let t = rows.dim(1)? - 1;
        let x = rows.narrow(1, 0, t)?.contiguous()?;
        let y = rows.narrow(1, 1, t)?.flatten_all()?;
        let (logits, probe) = self.model.logits_and_probe(&x)?;
        Ok((crate::nn::loss::cross_entropy(&logits, &y)?, probe))
    }

    /// The characters after `prompt`, drawn one at a time (`draw`: at `temperature`, among the
    /// `top_k` most likely when given) from the model fed the last `seq_len` characters (or
    /// fewer, see `CharModel::max_context`).
    pub fn generate(
        &self,
        prompt: &[u32],
        n: usize,
        temperature: f64,
        top_k: Option<usize>,
        rng: &mut Rng,
    ) -> Result<Vec<u32>> {
        let window = self.model.max_context().map_or(self.seq_len, |m| m.min(self.seq_len)).max(1);
        let mut ids = prompt.to_vec();
        for _ in 0..n {
            let ctx = &ids[ids.len().saturating_sub(window)..];
            let x = Tensor::from_vec(ctx.to_vec(), (1, ctx.len()), &self.device)?;
            let last = self.model.logits(&x)?.get(ctx.len() - 1)?.to_vec1::<f32>()?; // (V,)
            ids.push(draw(&last, temperature, top_k, rng) as u32);
        }
        Ok(ids[prompt.len()..].to_vec())
    }
}

impl<M: CharModel> Experiment for CharLm<M> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        (self.text.part(TextSplit::Train).len() / (self.batch * self.seq_len).max(1)).max(1)
    }

    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let (x, y) = self.train_batch(rng)?;
        self.train_out(&x, &y)
    }

    /// With `train.shards` > 1, shard i is rows i·B/n..(i+1)·B/n of the batch, its loss (a mean
    /// over its rows, plus the auxiliary loss over them) weighted by its share of the rows.
    fn train_step(&mut self, step: usize, rng: &mut Rng, up: &mut dyn Updater) -> Result<()> {
        if self.shards <= 1 {
            let out = {
                let _span = tracing::debug_span!("forward").entered();
                self.train_loss(step, rng)?
            };
            up.update(ALL, out)?;
            return Ok(());
        }
        let (x, y) = self.train_batch(rng)?;
        let (b, t, n) = (self.batch, self.seq_len, self.shards);
        let shard = |i: usize| -> Result<TrainOut> {
            let (r0, r1) = (i * b / n, (i + 1) * b / n);
            let xs = x.narrow(0, r0, r1 - r0)?;
            let ys = y.narrow(0, r0 * t, (r1 - r0) * t)?;
            let out = self.train_out(&xs, &ys)?;
            Ok(TrainOut { loss: (out.loss * ((r1 - r0) as f64 / b as f64))?, metrics: out.metrics })
        };
        up.update_sharded(ALL, n, &shard)?;
        Ok(())
    }

    fn takes_shards(&self) -> bool {
        true
    }

    /// Val: loss (nats), bpc and the unigram baseline's bpc on `EVAL_CHARS` characters of the
    /// validation split. The text has no test split: `Test` reports nothing.
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        if split == Split::Test {
            return Ok(Metrics::new());
        }
        let (mut sum, mut n, mut probe) = (0f64, 0usize, None);
        for rows in &self.eval {
            let rows_n = rows.dim(0)?;
            let (loss, metrics) = self.loss(rows)?;
            sum += loss.to_scalar::<f32>()? as f64 * rows_n as f64;
            n += rows_n;
            probe.get_or_insert(metrics);
        }
        let loss = sum / n.max(1) as f64;
        let mut m = Metrics::from([
            ("loss".to_string(), loss),
            ("bpc".to_string(), bpc(loss)),
            ("unigram_bpc".to_string(), self.unigram_bpc),
        ]);
        m.extend(probe.unwrap_or_default());
        Ok(m)
    }

    /// `req.n` characters (default 300) after `req.prompt` (default: a newline), at
    /// `req.temperature` (default 1), among the `req.top_k` most likely (default: all).
    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::Temperature, SampleOpt::TopK]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let prompt = match &req.prompt {
            Some(p) if !p.is_empty() => p.clone(),
            _ if self.text.vocab.contains(&'\n') => "\n".to_string(),
            _ => self.text.vocab[0].to_string(),
        };
        let ids = self.text.encode(&prompt)?;
        let temperature = req.temperature.unwrap_or(1.0);
        let out = self.text.decode(&self.generate(&ids, req.n_or(300), temperature, req.top_k, rng)?);
        let text = format!("{prompt}{out}\n");
        let json = serde_json::json!({
            "data": self.name, "prompt": prompt, "text": out, "n": req.n_or(300), "temperature": temperature,
            "top_k": req.top_k,
        });
        Ok(SampleOut::new(text, json))
    }

    fn data_name(&self) -> String {
        self.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.notice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_entropy_matches_hand_values() {
        // H(1/2, 1/2) = 1 bit; H(1/2, 1/4, 1/4) = 1.5 bits (Shannon 1948); one symbol: 0 bits
        assert!((unigram_bpc(&[0, 1, 0, 1], 2) - 1.0).abs() < 1e-12);
        assert!((unigram_bpc(&[0, 0, 1, 2], 4) - 1.5).abs() < 1e-12);
        assert_eq!(unigram_bpc(&[3, 3, 3], 5), 0.0);
        assert!((bpc(LN_2 * 2.5) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn eval_windows_are_spread_over_the_split_and_stay_inside_it() {
        assert_eq!(eval_starts(100, 11, 4), [0, 29, 59, 89]);
        assert!(eval_starts(100, 11, 4).iter().all(|&s| s + 11 <= 100));
        assert_eq!(eval_starts(10, 11, 3), [0, 0, 0]); // a split shorter than a window: caught by `new`
        assert_eq!(eval_starts(50, 5, 1), [0]);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_k_keeps_only_the_k_most_likely() {
        let mut rng = Rng::new(7);
        for trial in 0..200 {
            let logits: Vec<f32> = (0..11).map(|_| rng.normal() as f32 * 3.0).collect();
            let argmax = (0..11).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
            let mut r = Rng::new(trial);
            assert_eq!(draw(&logits, 1.0, Some(1), &mut r), argmax);
            assert_eq!(draw(&logits, 5.0, Some(1), &mut r), argmax, "greedy at any temperature");
            let mut sorted = logits.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kth = sorted[2];
            for _ in 0..20 {
                assert!(logits[draw(&logits, 2.0, Some(3), &mut r)] >= kth, "{logits:?}");
            }
        }
        // ties at the top: the lower index wins, as an arg max
        assert_eq!(draw(&[1.0, 3.0, 3.0, 0.0], 1.0, Some(1), &mut Rng::new(1)), 1);
        // a k beyond the vocabulary keeps everything
        let l = [0.0f32, 0.0, 0.0];
        let hits: std::collections::BTreeSet<usize> =
            (0..200).map(|s| draw(&l, 1.0, Some(99), &mut Rng::new(s))).collect();
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn temperature_sharpens_and_a_fixed_seed_repeats() {
        // logits (0, 1): p(1) = e/(1+e) = 0.73 at T 1, σ(2) = 0.88 at T 0.5, σ(0.5) = 0.62 at T 2
        let l = [0.0f32, 1.0];
        let freq = |t: f64| (0..20_000).filter(|&s| draw(&l, t, None, &mut Rng::new(s)) == 1).count() as f64 / 2e4;
        for (t, p) in [(0.5, 0.8808), (1.0, 0.7311), (2.0, 0.6225)] {
            assert!((freq(t) - p).abs() < 0.015, "T {t}: {} vs {p}", freq(t));
        }
        let run = |seed| -> Vec<usize> {
            let mut r = Rng::new(seed);
            (0..50).map(|_| draw(&[0.3, 0.1, 0.5, 0.2], 0.8, Some(3), &mut r)).collect()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    /// A model that ignores its input and predicts fixed logits: the recipe's loss must then be
    /// the cross-entropy of those logits against the text's characters.
    struct Fixed(Tensor);
    impl CharModel for Fixed {
        fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
            let n = tokens.elem_count();
            self.0.unsqueeze(0)?.repeat((n, 1))
        }
    }

    #[test]
    fn a_uniform_model_scores_log2_v_bits_and_samples_from_the_vocabulary() -> Result<()> {
        let dev = Device::Cpu;
        let text: String = (0..4000).map(|i| ["ab", "cd", "a\n"][i % 3]).collect();
        let t = CharText::new(&text);
        let v = t.vocab_size(); // 5: \n a b c d
        let mut lm = CharLm::new(
            Fixed(Tensor::zeros(v, candle_core::DType::F32, &dev)?),
            Params::new(0),
            (t, "test".into(), None),
            16,
            4,
            &dev,
        )?;
        let m = lm.evaluate(Split::Val)?;
        assert!((m["bpc"] - (v as f64).log2()).abs() < 1e-5, "{m:?}");
        assert!(lm.evaluate(Split::Test)?.is_empty());
        let req =
            SampleRequest { n: Some(50), prompt: Some("ab".into()), temperature: Some(1.0), ..Default::default() };
        let out = lm.sample(&req, &mut Rng::new(1)).unwrap();
        assert!(out.text.starts_with("ab") && out.text.chars().count() == 2 + 50 + 1, "{}", out.text);
        let again = lm.sample(&req, &mut Rng::new(1)).unwrap();
        assert_eq!(out.text, again.text, "a fixed seed repeats");
        let greedy = SampleRequest { top_k: Some(1), ..req.clone() };
        let out = lm.sample(&greedy, &mut Rng::new(2)).unwrap();
        // uniform logits: greedy picks the lowest index, the newline, every time
        assert_eq!(out.text, format!("ab{}\n", "\n".repeat(50)));
        assert_eq!(out.json["top_k"], 1);
        let err = lm.sample(&SampleRequest { prompt: Some("abz".into()), ..req }, &mut Rng::new(1));
        let err = err.err().expect("an unknown prompt character is an error").to_string();
        assert!(err.contains("'z'"), "{err}");
        Ok(())
    }
}
