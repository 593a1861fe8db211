//! `dlhist sample t5 …`: a prompt written as text (`--prompt "translate English to Spanish: In
//! the beginning"`, `--prompt "source: Call me Ishmael."`, or after pretraining a sentence
//! with sentinels, `--prompt "In the <x0> God created"`), or test examples of each task.

use super::data::{span_corrupt, T5Vocab};
use super::{Task, T5};
use crate::data::pairs::{BOS, PAD, UNK};
use crate::data::verses::tokenize;
use crate::error::DlError;
use crate::experiment::SampleOut;
use crate::picture::Picture;
use crate::rng::Rng;
use candle_core::Tensor;

/// The prompt's tokens, with "<", "x3", ">" joined back into the sentinel "<x3>".
fn prompt_tokens(prompt: &str) -> Vec<String> {
    let raw = tokenize(prompt);
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < raw.len() {
        let is_sentinel = i + 2 < raw.len()
            && raw[i] == "<"
            && raw[i + 2] == ">"
            && raw[i + 1].strip_prefix('x').is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if is_sentinel {
            out.push(format!("<{}>", raw[i + 1]));
            i += 3;
        } else {
            out.push(raw[i].clone());
            i += 1;
        }
    }
    out
}

/// What the model may emit: after pretraining the sentinels too.
fn banned(m: &T5) -> Vec<u32> {
    match m.task {
        Task::Span => vec![PAD, BOS, UNK],
        Task::Multitask => T5Vocab::banned(),
    }
}

pub fn prompt(m: &T5, prompt: &str) -> anyhow::Result<SampleOut> {
    let tokens = prompt_tokens(prompt);
    if tokens.is_empty() {
        return Err(DlError::Usage(
            "the prompt has no words; e.g. --prompt \"translate English to Spanish: In the beginning\" or --prompt \"source: Call me Ishmael.\"".into(),
        )
        .into());
    }
    let ids = m.data.vocab.encode(&tokens);
    let unknown: Vec<&str> = tokens.iter().zip(&ids).filter(|(_, &id)| id == UNK).map(|(t, _)| t.as_str()).collect();
    let out = m.generate(&[&ids], |s| 2 * s + 4, &banned(m))?.remove(0);
    let words: Vec<String> = out.iter().map(|&i| m.data.vocab.word(i).to_string()).collect();
    let mut text = String::new();
    if !unknown.is_empty() {
        text.push_str(&format!(
            "note: not in the {}-word vocabulary, read as <unk>: {}\n",
            m.data.vocab.len(),
            unknown.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(" ")
        ));
    }
    if m.task == Task::Multitask {
        let tasks = [tokenize(super::data::TRANSLATE_PREFIX), tokenize(super::data::SOURCE_PREFIX)];
        if !tasks.iter().any(|p| tokens.starts_with(p)) {
            text.push_str(
                "note: the prompt starts with neither task prefix (`translate English to Spanish:`, `source:`)\n",
            );
        }
    }
    text.push_str(&format!("input:  {}\noutput: {}\n", tokens.join(" "), words.join(" ")));
    let json = serde_json::json!({"input": tokens, "unknown": unknown, "output": words});
    let mut sample = SampleOut::new(text, json);
    if !out.is_empty() {
        // the cross-attention of each output word over the input (mean over blocks and heads)
        let mut dec_in = vec![BOS];
        dec_in.extend(&out[..out.len() - 1]);
        let dev = &m.device;
        let map = m.model.cross_attention_map(
            &Tensor::from_vec(ids.clone(), (1, ids.len()), dev)?,
            std::slice::from_ref(&(0..ids.len())),
            &Tensor::from_vec(dec_in, (1, out.len()), dev)?,
        )?;
        let values: Vec<Vec<f32>> = map.squeeze(0)?.to_vec2()?;
        sample = sample.with_picture("cross-attention", Picture::Heatmap { rows: words, cols: tokens, values });
    }
    Ok(sample)
}

/// `n` test examples: after pretraining, corrupted sentences with the spans and the model's
/// guesses; after fine-tuning, translations and provenance answers (about half each).
pub fn test_examples(m: &T5, n: usize, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let words = |ids: &[u32]| ids.iter().map(|&i| m.data.vocab.word(i)).collect::<Vec<_>>().join(" ");
    let mut text = String::new();
    let mut items = vec![];
    match m.task {
        Task::Span => {
            let set = &m.data.corpus.test;
            for _ in 0..n.min(set.len()) {
                let s = &set[rng.below(set.len())];
                let (input, target) = span_corrupt(s, m.noise.0, m.noise.1, rng);
                let guess = m.generate(&[&input], |_| target.len() + 4, &banned(m))?.remove(0);
                let (i, t, g) = (words(&input), words(&target), words(&guess));
                text.push_str(&format!("input:  {i}\nspans:  {t}\nguess:  {g}\n\n"));
                items.push(serde_json::json!({"input": i, "spans": t, "guess": g}));
            }
        }
        Task::Multitask => {
            let (tr, pv) = (&m.data.translate.test, &m.data.provenance.test);
            for k in 0..n {
                let set = if k % 2 == 0 { tr } else { pv };
                let e = &set[rng.below(set.len())];
                let out = m.generate(&[&e.input], |s| 2 * s + 4, &banned(m))?.remove(0);
                let (i, r, o) = (words(&e.input), e.reference.join(" "), words(&out));
                text.push_str(&format!("input:     {i}\nreference: {r}\noutput:    {o}\n\n"));
                items.push(serde_json::json!({"input": i, "reference": r, "output": o}));
            }
        }
    }
    Ok(SampleOut::new(
        format!("{n} test examples ({}):\n\n{text}", m.data.name),
        serde_json::json!({"data": m.data.name, "examples": items}),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentinels_survive_the_tokenizer() {
        assert_eq!(
            super::prompt_tokens("In the <x0> God <x12>, <y>"),
            ["in", "the", "<x0>", "god", "<x12>", ",", "<", "y", ">"]
        );
    }
}
